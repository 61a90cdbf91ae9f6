"""FER+ (Microsoft's relabelled FER2013) in its publisher's folder layout.

    <data_dir>/FER2013Train/  FER2013Valid/  FER2013Test/   (any subset)
        fer0000000.png ... and label.csv: no header, one row per image:
        name, face box "(0, 0, 48, 48)", 10 vote counts (neutral, happiness,
        surprise, sadness, anger, disgust, fear, contempt, unknown, NF)

Every image is stored with its 10 raw vote counts, so both label modes of the
FER+ paper come from one build: majority and probability (the vote distribution);
which images a split holds is decided when reading (fer.data.sources).
`label` is the plurality over the 8 emotions (first in label order on a tie).

Rows are taken as published or skipped with a reason, never repaired: votes must be
whole numbers 0..MAX_VOTES totalling 1..MAX_VOTES (FER+ had 10 taggers per image;
one real row totals 9), an image named in two rows is skipped in both when their
votes differ (kept once when they agree), and an image must be 48x48 as FERPlus's
generate_training_data.py writes it (not stretched or shrunk to fit).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import tensorflow_datasets as tfds

from fer import labels as labels_lib
from fer.data.builders import common

LABEL_SET = labels_lib.FERPLUS
FOLDERS: dict[str, str] = {
    "train": "FER2013Train", "validation": "FER2013Valid", "test": "FER2013Test"}
LABEL_FILE = "label.csv"
NUM_VOTES = len(labels_lib.FERPLUS_VOTE_COLUMNS)
IMAGE_SIZE = 48
MAX_VOTES = 10  # Taggers per image in FER+.


def find_splits(manual_dir: str) -> dict[str, str]:
    """{split: folder path} of the FER+ folders present; LayoutError if none or no label.csv."""
    common.require_dir(manual_dir, "the FER+ folder (holding FER2013Train/, FER2013Valid/, "
                       "FER2013Test/)")
    found = {split: os.path.join(manual_dir, folder) for split, folder in FOLDERS.items()
             if os.path.isdir(os.path.join(manual_dir, folder))}
    if not found:
        raise common.LayoutError(
            f"no FER+ split folder in {manual_dir}: expected at least one of "
            f"{list(FOLDERS.values())} (Microsoft's FERPlus layout), found "
            f"{sorted(os.listdir(manual_dir))[:10]}")
    for folder in found.values():
        if not os.path.isfile(os.path.join(folder, LABEL_FILE)):
            raise common.LayoutError(
                f"{folder} has no {LABEL_FILE}: FER+ ships one per split folder "
                f"(image name, face box, {NUM_VOTES} vote counts)")
    return found


def parse_row(row: list[str]) -> tuple[str, np.ndarray] | str:
    """(file name, votes) of one label.csv row, or why it is skipped."""
    if len(row) != 2 + NUM_VOTES:
        return f"malformed row: expected {2 + NUM_VOTES} columns, got {len(row)}"
    name = row[0].strip()
    if not name:
        return "malformed row: empty image name"
    texts = [v.strip() for v in row[2:]]
    if not all(t.isdigit() for t in texts):
        return f"bad votes: {texts} are not all whole numbers 0..{MAX_VOTES}"
    votes = np.array([int(t) for t in texts], np.int64)
    if not 0 < votes.sum() <= MAX_VOTES:
        return (f"bad votes: {votes.tolist()} total {votes.sum()}, expected 1..{MAX_VOTES} "
                "(FER+ has 10 taggers per image)")
    return name, votes.astype(np.int32)


def drop_conflicts(parsed: list[tuple[int, str, np.ndarray]]
                   ) -> tuple[list[tuple[int, str, np.ndarray]], list[tuple[int, str]]]:
    """(rows kept, [(row number, reason)] skipped) for images named in several rows.

    Repeats that agree keep their first row; an image whose rows disagree is skipped
    in all of them, as no rule says which votes are right.
    """
    rows_of: dict[str, list[tuple[int, str, np.ndarray]]] = {}
    for item in parsed:
        rows_of.setdefault(item[1], []).append(item)
    kept, skipped = [], []
    for item in parsed:
        rows = rows_of[item[1]]
        numbers = [n for n, _, _ in rows]
        if len(rows) == 1:
            kept.append(item)
        elif any(not np.array_equal(v, rows[0][2]) for _, _, v in rows):
            skipped.append((item[0], f"duplicate image: {item[1]} in rows {numbers} with "
                                     f"different votes {[v.tolist() for _, _, v in rows]}"))
        elif item[0] == numbers[0]:
            kept.append(item)
        else:
            skipped.append((item[0], f"duplicate image: {item[1]} repeats row {numbers[0]}"))
    return kept, skipped


def emotion_label(votes: np.ndarray) -> int:
    return int(np.argmax(votes[:LABEL_SET.num_classes]))


class Ferplus(tfds.core.GeneratorBasedBuilder):
    """FER+: FER2013 faces with 10 crowd votes each (Barsoum et al., 2016)."""

    VERSION = common.VERSION
    RELEASE_NOTES = common.RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Put Microsoft's FER+ folders in the manual dir (config.data_dir):
    FER2013Train/, FER2013Valid/ and/or FER2013Test/, each holding the 48x48 PNGs
    (made with FERPlus's generate_training_data.py from fer2013.csv) and label.csv.
    """

    def __init__(self, **kwargs):
        self.report = common.BuildReport()
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
                "label": tfds.features.ClassLabel(names=list(LABEL_SET.labels)),
                "votes": tfds.features.Tensor(shape=(NUM_VOTES,), dtype=np.int32),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage="https://github.com/microsoft/FERPlus",
        )

    def _split_generators(self, dl_manager):
        splits = find_splits(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(split, folder)
                for split, folder in splits.items()}

    def _generate_examples(self, split: str, folder: str):
        label_path = os.path.join(folder, LABEL_FILE)
        try:
            with open(label_path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as e:
            raise common.CorruptFileError(f"{label_path} is not a readable csv: {e}") from None
        tasks = []
        for number, row in enumerate(rows, start=1):
            if not row:
                continue
            parsed = parse_row(row)
            if isinstance(parsed, str):
                self.report.skip(split, f"{label_path}:{number}", parsed)
            else:
                tasks.append((number, *parsed))
        tasks, duplicates = drop_conflicts(tasks)
        for number, reason in duplicates:
            self.report.skip(split, f"{label_path}:{number}", reason)
        yielded = 0
        for (number, name, votes), (image, why) in common.parallel_map(
                lambda task: common.read_gray(os.path.join(folder, task[1])), tasks):
            path = os.path.join(folder, name)
            why = why or common.size_problem(image, IMAGE_SIZE)
            if why:
                self.report.skip(split, f"{path} ({LABEL_FILE} row {number})", why)
                continue
            yielded += 1
            yield f"{number}:{name}", {
                "image": image[..., None],
                "label": emotion_label(votes),
                "votes": votes,
                "file_name": name,
            }
        if not yielded:
            raise self.report.nothing_survived(split, label_path)
