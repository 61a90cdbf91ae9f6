"""What every fer TFDS builder shares: manual-download checks, image decoding,
the bad-data report, and the per-raw-folder build directory.

Bad data policy (all builders):
- a missing or wrongly laid out folder or file: `LayoutError` naming what was
  expected and where;
- a corrupt or undecodable image, or a malformed row: skipped, counted, named in
  the report at the end of the build (logged and written to `skipped.json` beside
  the build); the build never stops for one;
- a label outside the dataset's vocabulary: `LabelError` naming file and row.
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

VERSION = tfds.core.Version("1.0.0")
_T = TypeVar("_T")
_R = TypeVar("_R")
RELEASE_NOTES = {"1.0.0": "First release."}


class LayoutError(FileNotFoundError):
    """The manual download is missing or not in its publisher's layout."""


class LabelError(ValueError):
    """A label outside the dataset's vocabulary (file and row in the message)."""


@dataclasses.dataclass
class Skipped:
    split: str
    name: str     # File name or "file:row".
    reason: str

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


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

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": [s.to_dict() for s in self.skipped],
                "num_skipped": len(self.skipped), "dropped": self.dropped}


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
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    image = decode_gray(data)
    return (image, "") if image is not None else (None, "corrupt or undecodable image")


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
