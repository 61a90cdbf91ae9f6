"""FER+ (Microsoft's relabelled FER2013) in its publisher's folder layout.

    <data_dir>/FER2013Train/  FER2013Valid/  FER2013Test/   (any subset)
        fer0000000.png ... and label.csv: no header, one row per image:
        name, face box "(0, 0, 48, 48)", 10 vote counts (neutral, happiness,
        surprise, sadness, anger, disgust, fear, contempt, unknown, NF)

Every image is stored with its 10 raw vote counts, so both label modes of the
FER+ paper come from one build: majority and probability (the vote distribution);
which images a split holds is decided when reading (fer.data.sources).
`label` is the plurality over the 8 emotions (first in label order on a tie).
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
    """(file name, votes) of one label.csv row, or the reason it is malformed."""
    if len(row) != 2 + NUM_VOTES:
        return f"expected {2 + NUM_VOTES} columns, got {len(row)}"
    name = row[0].strip()
    if not name:
        return "empty image name"
    try:
        votes = np.array([int(float(v)) for v in row[2:]], np.int32)
    except ValueError:
        return f"vote counts are not numbers: {row[2:]}"
    if (votes < 0).any() or votes.sum() == 0:
        return f"vote counts must be non-negative with at least one vote: {votes.tolist()}"
    return name, votes


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
        with open(label_path, newline="") as f:
            rows = list(csv.reader(f))
        tasks = []
        for number, row in enumerate(rows, start=1):
            if not row:
                continue
            parsed = parse_row(row)
            if isinstance(parsed, str):
                self.report.skip(split, f"{label_path}:{number}", f"malformed row: {parsed}")
            else:
                tasks.append((number, *parsed))
        for (number, name, votes), (image, why) in common.parallel_map(
                lambda task: common.read_gray(os.path.join(folder, task[1])), tasks):
            if image is None:
                self.report.skip(split, os.path.join(folder, name), why)
                continue
            yield f"{number}:{name}", {
                "image": common.square(image, IMAGE_SIZE),
                "label": emotion_label(votes),
                "votes": votes,
                "file_name": name,
            }
