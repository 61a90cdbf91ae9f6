"""Any images sorted into one folder per class, per split (e.g. the FER2013 JPEG layout).

    <data_dir>/train/<class>/*.jpg|png|...   (also: training)
    <data_dir>/test/<class>/...              (also: privatetest)
    <data_dir>/validation/<class>/...        (also: val, valid, publictest)

Class folder names go through fer.labels.canonical ('happy', 'Happiness', 'angry'
...); a name the label module does not know is an error. The label set is FER2013's
when every class is one of its 7 (the common FER2013 JPEG layout), else AffectNet's
8 canonical classes. Images are stored gray, resized to `gray<N>` (N >= 48).
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from fer import labels as labels_lib
from fer.data.builders import common

SPLIT_FOLDERS: dict[str, str] = {
    "train": "train", "training": "train",
    "validation": "validation", "val": "validation", "valid": "validation",
    "publictest": "validation",
    "test": "test", "privatetest": "test",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass
class ImageFolderConfig(tfds.core.BuilderConfig):
    image_size: int = 48
    label_set: str = "fer2013"


def find_splits(manual_dir: str) -> dict[str, str]:
    """{split: folder}; LayoutError when no split folder is present (or one twice)."""
    common.require_dir(manual_dir, "a folder with train/<class>/ (and test/<class>/ ...)")
    found: dict[str, str] = {}
    for entry in sorted(os.listdir(manual_dir)):
        split = SPLIT_FOLDERS.get(entry.lower())
        if split and os.path.isdir(os.path.join(manual_dir, entry)):
            if split in found:
                raise common.LayoutError(
                    f"{manual_dir} has two folders for the {split!r} split: "
                    f"{os.path.basename(found[split])}/ and {entry}/")
            found[split] = os.path.join(manual_dir, entry)
    if not found:
        raise common.LayoutError(
            f"no split folder in {manual_dir}: expected train/<class>/ (and optionally "
            f"validation/ or test/, same layout); accepted folder names: "
            f"{sorted(SPLIT_FOLDERS)}; found {sorted(os.listdir(manual_dir))[:10]}")
    return found


def class_folders(split_dir: str) -> dict[str, str]:
    """{class folder name: canonical label}; LabelError for a name fer does not know."""
    out = {}
    for entry in sorted(os.listdir(split_dir)):
        if not os.path.isdir(os.path.join(split_dir, entry)):
            continue
        try:
            out[entry] = labels_lib.canonical(entry)
        except ValueError as e:
            raise common.LabelError(
                f"class folder {os.path.join(split_dir, entry)}: {e}") from None
    if not out:
        raise common.LayoutError(f"{split_dir} holds no class folder (<class>/ with images)")
    return out


def choose_label_set(manual_dir: str) -> labels_lib.LabelSet:
    names = set()
    for folder in find_splits(manual_dir).values():
        names.update(class_folders(folder).values())
    if names <= set(labels_lib.FER2013.canonical):
        return labels_lib.FER2013
    return labels_lib.AFFECTNET


def config_for(manual_dir: str, image_size: int) -> ImageFolderConfig:
    size = max(48, int(image_size))
    label_set = choose_label_set(manual_dir).name
    return ImageFolderConfig(name=f"{label_set}_gray{size}", image_size=size,
                             label_set=label_set)


class ImageFolder(tfds.core.GeneratorBasedBuilder):
    """Images in <split>/<class>/ folders, labelled through fer.labels."""

    VERSION = common.VERSION
    RELEASE_NOTES = common.RELEASE_NOTES
    BUILDER_CONFIGS = [ImageFolderConfig(name="fer2013_gray48")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Point config.data_dir at a folder holding train/<class>/ (and optionally
    validation/<class>/, test/<class>/) with image files; class names such as
    angry, disgust, fear, happy, neutral, sad, surprise, contempt.
    """

    def __init__(self, *, config=None, **kwargs):
        self.report = common.BuildReport()
        super().__init__(config=common.registered_config(type(self), config), **kwargs)

    @property
    def label_set(self) -> labels_lib.LabelSet:
        return labels_lib.get_label_set(self.builder_config.label_set)

    def _info(self) -> tfds.core.DatasetInfo:
        n = int(self.builder_config.image_size)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(n, n, 1)),
                "label": tfds.features.ClassLabel(names=list(self.label_set.labels)),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        splits = find_splits(os.fspath(dl_manager.manual_dir))
        return {split: self._generate_examples(split, folder)
                for split, folder in splits.items()}

    def _generate_examples(self, split: str, folder: str):
        size = int(self.builder_config.image_size)
        yielded = 0
        for class_name, canonical in class_folders(folder).items():
            if canonical not in self.label_set.canonical:
                raise common.LabelError(
                    f"class folder {os.path.join(folder, class_name)} ({canonical}) is not "
                    f"in the label set {self.label_set.name} {self.label_set.labels}")
            label = self.label_set.index(canonical)
            class_dir = os.path.join(folder, class_name)
            files = [f for f in sorted(os.listdir(class_dir))
                     if f.lower().endswith(IMAGE_EXTENSIONS)
                     and os.path.isfile(os.path.join(class_dir, f))]
            # Decoding dominates: threads (cv2 releases the GIL).
            for file_name, (image, why) in common.parallel_map(
                    lambda f, d=class_dir: common.read_gray(os.path.join(d, f)), files):
                if image is None:
                    self.report.skip(split, os.path.join(class_dir, file_name), why)
                    continue
                relative = f"{class_name}/{file_name}"
                yielded += 1
                yield relative, {"image": common.square(image, size), "label": label,
                                 "file_name": relative}
        if not yielded:
            raise self.report.nothing_survived(split, folder)
