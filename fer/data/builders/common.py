"""What every fer TFDS builder shares: manual-download checks, image decoding,
the bad-data report, and the per-raw-folder build directory.

Bad data policy (all builders):
- a missing or wrongly laid out folder or file: `LayoutError` naming what was
  expected and where;
- a corrupt or undecodable image, or a malformed row: skipped, counted, named in
  the report at the end of the build (logged and written to `skipped.json` beside
  the build); the build never stops for one;
- a label outside the dataset's vocabulary: `LabelError` naming file and row;
- a file that cannot be read to its end (truncated or corrupt compression):
  `CorruptFileError` naming the file;
- a split that keeps no example: `NothingSurvivedError` with the first reasons and
  the count per reason.
Every skip reason reads "<kind>: <detail>"; the build prints the count per kind and
stores it in `skipped.json`, which every run on the build records (fer.data.sources).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import os
from typing import Any, Callable, Iterable, Iterator, TypeVar

import cv2
import numpy as np
import tensorflow_datasets as tfds

from fer.data.errors import (  # noqa: F401 (re-exported)
    CorruptFileError, DataError, LabelError, LayoutError, NothingSurvivedError)

VERSION = tfds.core.Version("1.0.0")
_T = TypeVar("_T")
_R = TypeVar("_R")
RELEASE_NOTES = {"1.0.0": "First release."}


@dataclasses.dataclass
class Skipped:
    split: str
    name: str     # File name or "file:row".
    reason: str

    @property
    def kind(self) -> str:
        return reason_kind(self.reason)

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def reason_kind(reason: str) -> str:
    """The kind of a skip reason: its text before the first colon."""
    return reason.split(":", 1)[0].strip()


def count_kinds(skipped: Iterable[Skipped]) -> dict[str, int]:
    """{reason kind: count}, commonest first."""
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


class BuildReport:
    """Collects skipped examples and other counts while a builder generates splits."""

    def __init__(self):
        self.skipped: list[Skipped] = []
        self.dropped: dict[str, dict[str, int]] = {}  # split -> reason -> count (by design).

    def skip(self, split: str, name: str, reason: str) -> None:
        self.skipped.append(Skipped(split, name, reason))

    def drop(self, split: str, reason: str) -> None:
        counts = self.dropped.setdefault(split, {})
        counts[reason] = counts.get(reason, 0) + 1

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {reason kind: count}} of the skipped examples."""
        splits = sorted({s.split for s in self.skipped})
        return {split: count_kinds(s for s in self.skipped if s.split == split)
                for split in splits}

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": [s.to_dict() for s in self.skipped],
                "num_skipped": len(self.skipped), "counts": self.counts(),
                "dropped": self.dropped}

    def nothing_survived(self, split: str, source: str,
                         first: int = 5) -> NothingSurvivedError:
        """The error for a split of which every example was skipped."""
        mine = [s for s in self.skipped if s.split in (split, "?")]
        if not mine:
            return NothingSurvivedError(f"{source} holds no example for split {split!r}")
        counts = ", ".join(f"{kind} {n}" for kind, n in count_kinds(mine).items())
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in mine[:first])
        return NothingSurvivedError(
            f"no example of split {split!r} in {source} survived: {len(mine)} skipped "
            f"({counts}). First reasons: {reasons}")


def registered_config(builder_cls: type, config: Any) -> Any:
    """The builder's own config object named like `config`, else `config` unchanged.

    TFDS refuses a new BuilderConfig object that carries a registered config's name.
    """
    registered = {c.name: c for c in builder_cls.BUILDER_CONFIGS}
    if isinstance(config, tfds.core.BuilderConfig) and config.name in registered:
        return registered[config.name]
    return config


def decode_gray(data: bytes) -> np.ndarray | None:
    """Encoded image bytes -> (H, W) uint8 gray, or None when undecodable."""
    if not data:
        return None
    array = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(array, cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        return None
    return image


def read_gray(path: str) -> tuple[np.ndarray | None, str]:
    """(gray image or None, why not) for an image file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "missing image: no such file"
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    image = decode_gray(data)
    return (image, "") if image is not None else (None, "corrupt or undecodable image")


def size_problem(image: np.ndarray, size: int) -> str:
    """Why a fixed-size dataset's image is refused ('' when it is size x size)."""
    if image.shape[:2] == (size, size):
        return ""
    return (f"wrong image size: {image.shape[1]}x{image.shape[0]}, expected {size}x{size}"
            " (not resized: a resize would stretch or blur a face the labels were given for)")


def square(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W) uint8 -> (size, size, 1) uint8 (area-shrink or bilinear-enlarge)."""
    if image.shape != (size, size):
        shrink = image.shape[0] > size or image.shape[1] > size
        image = cv2.resize(image, (size, size),
                           interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return image[..., None]


def require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise LayoutError(f"expected {what} at {path}, found "
                          f"{'a file' if os.path.exists(path) else 'nothing'}")


def parallel_map(fn: Callable[[_T], _R], items: Iterable[_T], *, chunk: int = 256,
                 threads: int | None = None) -> Iterator[tuple[_T, _R]]:
    """(item, fn(item)) in input order, fn run on a thread pool a chunk at a time.

    For image decoding (OpenCV releases the GIL); chunks bound the memory held.
    """
    threads = threads or min(16, os.cpu_count() or 1)
    iterator = iter(items)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        while batch := list(itertools.islice(iterator, chunk)):
            yield from zip(batch, pool.map(fn, batch))
