"""AffectNet (Mollahosseini et al., 2017), the official manual-annotation download.

    <data_dir>/Manually_Annotated_Images/<subDirectory_filePath>
    <data_dir>/training.csv, validation.csv (either may be absent), header:
        subDirectory_filePath,face_x,face_y,face_width,face_height,
        facial_landmarks,expression,valence,arousal

Pruned to the 8 expressions (codes 8 None, 9 Uncertain and 10 Non-Face are dropped
and counted, as the seed does); each face box is cropped, converted to gray and
resized to the config's stored size (`gray<N>`, N >= 48). training.csv -> train,
validation.csv -> validation (500 per class, the standard test set). The seed's
random 90/10 split and its "reduced" 10% subset are chosen when reading
(fer.data.sources.affectnet_protocol), so one build serves every protocol.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np
import tensorflow_datasets as tfds

from fer import labels as labels_lib
from fer.data.builders import common

LABEL_SET = labels_lib.AFFECTNET
IMAGES_DIR = "Manually_Annotated_Images"
CSV_FILES: dict[str, str] = {"train": "training.csv", "validation": "validation.csv"}
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
NUM_CODES = 11  # 0..7 expressions, then labels_lib.AFFECTNET_DROPPED_CODES.
DEFAULT_STORED_SIZE = 96


@dataclasses.dataclass
class AffectnetConfig(tfds.core.BuilderConfig):
    image_size: int = DEFAULT_STORED_SIZE


def config_for(image_size: int) -> AffectnetConfig:
    size = max(48, int(image_size))
    return AffectnetConfig(name=f"gray{size}", image_size=size,
                           description=f"gray face crops resized to {size}x{size}")


def find_files(manual_dir: str) -> tuple[str, dict[str, str]]:
    """(images dir, {split: csv path}); LayoutError naming what is missing."""
    common.require_dir(manual_dir, f"the AffectNet folder (holding {IMAGES_DIR}/ and "
                       f"{' / '.join(CSV_FILES.values())})")
    images = os.path.join(manual_dir, IMAGES_DIR)
    common.require_dir(images, f"AffectNet's {IMAGES_DIR}/ folder")
    csvs = {split: os.path.join(manual_dir, name) for split, name in CSV_FILES.items()
            if os.path.isfile(os.path.join(manual_dir, name))}
    if not csvs:
        raise common.LayoutError(
            f"no AffectNet annotation file in {manual_dir}: expected "
            f"{' and/or '.join(CSV_FILES.values())} with columns {','.join(COLUMNS)}")
    return images, csvs


class Affectnet(tfds.core.GeneratorBasedBuilder):
    """AffectNet, manually annotated part, 8 expressions, gray face crops."""

    VERSION = common.VERSION
    RELEASE_NOTES = common.RELEASE_NOTES
    BUILDER_CONFIGS = [config_for(DEFAULT_STORED_SIZE)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    AffectNet is licence-gated (http://mohammadmahoor.com/affectnet/). Put the
    official download in the manual dir (config.data_dir): Manually_Annotated_Images/
    plus training.csv and validation.csv, unchanged.
    """

    def __init__(self, *, config=None, **kwargs):
        self.report = common.BuildReport()
        super().__init__(config=common.registered_config(type(self), config), **kwargs)

    @property
    def stored_size(self) -> int:
        return int(self.builder_config.image_size)

    def _info(self) -> tfds.core.DatasetInfo:
        n = self.stored_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(n, n, 1)),
                "label": tfds.features.ClassLabel(names=list(LABEL_SET.labels)),
                "valence": tfds.features.Scalar(dtype=np.float32),
                "arousal": tfds.features.Scalar(dtype=np.float32),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage="http://mohammadmahoor.com/affectnet/",
        )

    def _split_generators(self, dl_manager):
        images, csvs = find_files(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(split, path, images)
                for split, path in csvs.items()}

    def _generate_examples(self, split: str, csv_path: str, images: str):
        with open(csv_path, newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            missing = [c for c in COLUMNS if c not in header]
            if missing:
                raise common.LayoutError(
                    f"{csv_path} lacks AffectNet's columns {missing}: expected the header "
                    f"{','.join(COLUMNS)}, found {header}")
            tasks = (self._parse(split, f"{csv_path}:{number}", header, row, images,
                                 csv_path, number)
                     for number, row in enumerate(reader, start=2) if row)
            # Decoding full-size photos dominates: threads (cv2 releases the GIL).
            yielded = 0
            for task, (example, where, why) in common.parallel_map(
                    self._load, (t for t in tasks if t is not None)):
                if example is None:
                    self.report.skip(split, where, why)
                else:
                    yielded += 1
                    yield task["key"], example
        if not yielded:
            raise self.report.nothing_survived(split, csv_path)

    def _parse(self, split, where, header, row, images, csv_path, number):
        """The row's work item, or None (skipped or dropped, and recorded)."""
        if len(row) != len(header):
            self.report.skip(split, where, f"malformed row: expected {len(header)} "
                             f"columns, got {len(row)}")
            return None
        fields = dict(zip(header, (v.strip() for v in row)))
        try:
            numbers = [float(fields[k]) for k in ("expression", "face_x", "face_y",
                                                  "face_width", "face_height", "valence",
                                                  "arousal")]
        except ValueError:
            numbers = [math.nan]
        if not all(math.isfinite(v) for v in numbers) or not numbers[0].is_integer():
            self.report.skip(split, where, "malformed row: expression, face box, valence "
                             "or arousal not a finite number (expression a whole one)")
            return None
        code, box = int(numbers[0]), [int(v) for v in numbers[1:5]]
        valence, arousal = numbers[5:]
        if not 0 <= code < NUM_CODES:
            raise common.LabelError(
                f"{csv_path} row {number}: expression {code} is outside AffectNet's codes "
                f"0..{NUM_CODES - 1} (0..7 {LABEL_SET.labels}, "
                f"{labels_lib.AFFECTNET_DROPPED_CODES})")
        if code in labels_lib.AFFECTNET_DROPPED_CODES:
            self.report.drop(split, labels_lib.AFFECTNET_DROPPED_CODES[code])
            return None
        return {"key": f"{number}", "where": where, "box": box, "code": code,
                "valence": valence, "arousal": arousal,
                "file_name": fields["subDirectory_filePath"],
                "path": os.path.join(images, fields["subDirectory_filePath"])}

    def _load(self, task):
        """(example or None, where, why): decode, crop, resize. Thread-safe."""
        image, why = common.read_gray(task["path"])
        if image is None:
            return None, task["path"], why
        x, y, w, h = task["box"]
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(image.shape[1], x + w), min(image.shape[0], y + h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None, task["where"], (f"malformed row: face box {task['box']} is empty "
                                         f"inside the {image.shape[1]}x{image.shape[0]} image")
        face = common.square(image[y0:y1, x0:x1], self.stored_size)
        return {"image": face, "label": task["code"], "valence": task["valence"],
                "arousal": task["arousal"], "file_name": task["file_name"]}, task["where"], ""
