"""FER2013, the Kaggle/ICML 2013 challenge file `fer2013.csv` (or `fer2013.csv.gz`).

    header: emotion,pixels,Usage
    emotion: 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral
    pixels:  2304 space-separated gray levels (48x48, row-major)
    Usage:   Training -> train, PublicTest -> validation, PrivateTest -> test

A file may hold only some of the three usages; the splits present are built.
A byte-order mark before the header is read past; a file that cannot be read to its
end (truncated, not gzip, failed CRC) is a `CorruptFileError` naming it.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from fer import labels as labels_lib
from fer.data.builders import common

LABEL_SET = labels_lib.FER2013
USAGES: dict[str, str] = {"Training": "train", "PublicTest": "validation",
                          "PrivateTest": "test"}
COLUMNS = ("emotion", "pixels", "Usage")
FILE_NAMES = ("fer2013.csv", "fer2013.csv.gz")
IMAGE_SIZE = 48


def find_csv(manual: str) -> str:
    """The csv file: `manual` itself, or fer2013.csv(.gz) (or a single *.csv(.gz)) inside it."""
    if os.path.isfile(manual):
        return manual
    common.require_dir(manual, f"a folder holding {' or '.join(FILE_NAMES)}")
    for name in FILE_NAMES:
        if os.path.isfile(os.path.join(manual, name)):
            return os.path.join(manual, name)
    candidates = [n for n in sorted(os.listdir(manual)) if n.endswith((".csv", ".csv.gz"))]
    if len(candidates) == 1:
        return os.path.join(manual, candidates[0])
    raise common.LayoutError(
        f"no FER2013 csv in {manual}: expected {' or '.join(FILE_NAMES)} (Kaggle's "
        f"challenge file, columns {','.join(COLUMNS)}); found "
        f"{sorted(os.listdir(manual))[:10]}")


def open_text(path: str):
    """The csv as text; utf-8-sig reads past a byte-order mark (Excel writes one)."""
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), newline="", encoding="utf-8-sig")
    return open(path, newline="", encoding="utf-8-sig")


def lines(path: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line; CorruptFileError naming the file and line
    where reading fails (truncated or damaged gzip, bad CRC, not text)."""
    number = 0
    try:
        with open_text(path) as f:
            for number, line in enumerate(f, start=1):
                yield number, line
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
        raise common.CorruptFileError(
            f"{path} cannot be read after line {number} ({type(e).__name__}: {e}): "
            "a truncated or damaged file; download it again") from None


def _header(path: str, rows: Iterator[tuple[int, str]]) -> list[str]:
    first = next(rows, (1, ""))[1]
    return [h.strip() for h in next(csv.reader([first]), [])]


def read_rows(path: str, usage: str | None = None):
    """Yields (row number, dict of the row, or the raw list if it has the wrong length).

    With `usage`, rows of the other known usages are passed over unparsed (Kaggle's
    file ends each line with its Usage): each split's pass then parses only its rows.
    """
    rows = lines(path)
    header = _header(path, rows)
    if any(c not in header for c in COLUMNS):
        raise common.LayoutError(
            f"{path} is not a FER2013 csv: expected the header {','.join(COLUMNS)}, "
            f"found {header}")
    usage_last = header[-1] == "Usage"
    for number, line in rows:
        if not line.strip():
            continue
        if usage and usage_last:
            tail = line.rstrip("\r\n").rsplit(",", 1)[-1].strip().strip('"')
            if tail in USAGES and tail != usage:
                continue
        row = next(csv.reader([line]))
        yield number, dict(zip(header, row)) if len(row) == len(header) else row


def present_splits(path: str) -> list[str]:
    """Splits with at least one row, in Training/PublicTest/PrivateTest order."""
    seen = set()
    rows = lines(path)
    header = _header(path, rows)
    usage_last = bool(header) and header[-1] == "Usage"
    for _, line in rows:
        if usage_last:
            seen.add(line.rstrip("\r\n").rsplit(",", 1)[-1].strip().strip('"'))
        else:
            row = next(csv.reader([line]), [])
            if len(row) == len(header):
                seen.add(dict(zip(header, row))["Usage"].strip())
    splits = [split for usage, split in USAGES.items() if usage in seen]
    if not splits:
        raise common.LayoutError(
            f"{path} has no row whose Usage is one of {list(USAGES)}")
    return splits


def parse_pixels(text: str) -> np.ndarray | str:
    try:
        values = np.array(text.split(), dtype=np.int64)
    except ValueError:
        return "pixels are not integers"
    if values.size != IMAGE_SIZE * IMAGE_SIZE:
        return f"expected {IMAGE_SIZE * IMAGE_SIZE} pixels, got {values.size}"
    if values.min() < 0 or values.max() > 255:
        return "pixel values outside 0..255"
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 1)


class Fer2013(tfds.core.GeneratorBasedBuilder):
    """FER2013: 48x48 gray faces, 7 expressions (Goodfellow et al., 2013)."""

    VERSION = common.VERSION
    RELEASE_NOTES = common.RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Put Kaggle's fer2013.csv (or fer2013.csv.gz) in the manual dir (config.data_dir),
    or point config.data_dir at the file itself. Columns: emotion,pixels,Usage.
    """

    def __init__(self, *, csv_path: str = "", **kwargs):
        """`csv_path`: the csv itself (config.data_dir may name the file, and TFDS's
        manual dir must be a folder); '' = found in the manual dir."""
        self.report = common.BuildReport()
        self._reported: set[str] = set()
        self._csv_path = csv_path
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
                "label": tfds.features.ClassLabel(names=list(LABEL_SET.labels)),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage=("https://www.kaggle.com/c/challenges-in-representation-learning-"
                      "facial-expression-recognition-challenge"),
        )

    def _split_generators(self, dl_manager):
        path = self._csv_path or find_csv(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(path, split)
                for split in present_splits(path)}

    def _generate_examples(self, path: str, split: str):
        name = os.path.basename(path)
        usage_of_split = {v: k for k, v in USAGES.items()}[split]
        yielded = 0
        for number, row in read_rows(path, usage=usage_of_split):
            where = f"{name}:{number}"  # The stored file_name.
            row_at = f"{path}:{number}"  # What a skip names.
            if not isinstance(row, dict):
                self._skip_once("?", row_at, f"malformed row: expected {len(COLUMNS)} "
                                f"columns, got {len(row)}")
                continue
            usage = row["Usage"].strip()
            if usage not in USAGES:
                self._skip_once("?", row_at, f"malformed row: unknown Usage {usage!r}")
                continue
            if USAGES[usage] != split:
                continue
            try:
                emotion = int(row["emotion"].strip())
            except ValueError:
                self.report.skip(split, row_at, f"malformed row: emotion {row['emotion']!r} "
                                 "is not an integer")
                continue
            if not 0 <= emotion < LABEL_SET.num_classes:
                raise common.LabelError(
                    f"{path} row {number}: emotion {emotion} is outside FER2013's labels "
                    f"0..{LABEL_SET.num_classes - 1} {LABEL_SET.labels}")
            pixels = parse_pixels(row["pixels"])
            if isinstance(pixels, str):
                self.report.skip(split, row_at, f"malformed row: {pixels}")
                continue
            yielded += 1
            yield number, {"image": pixels, "label": emotion, "file_name": where}
        if not yielded:
            raise self.report.nothing_survived(split, path)

    def _skip_once(self, split: str, where: str, reason: str) -> None:
        """Rows that belong to no split are seen by every split's pass: report them once."""
        if where not in self._reported:
            self._reported.add(where)
            self.report.skip(split, where, reason)
