"""TFDS builders for the real datasets, and `prepare`: build once, then read.

Where builds go. Every raw folder gets its own TFDS data dir,

    <tfds_dir>/<dataset>-<key>/<builder name>/<config>/<version>/

with `key` a hash of the raw folder's absolute path and of its layout (the names,
sizes and modification times of its top two levels, not counting image files), so
two raw folders never share a build and a changed folder (say, a FER2013Test/
added) is rebuilt. `tfds_dir` is config.tfds_dir, else $FER_TFDS_DIR, else
~/tensorflow_datasets/fer. `source.json` in `<dataset>-<key>/` names the raw folder;
`skipped.json` beside the build lists every skipped image or row and why, with the
count per split and reason; every run on the build records those counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from fer import labels as labels_lib
from fer.data.builders import affectnet
from fer.data.builders import fer2013
from fer.data.builders import ferplus
from fer.data.builders import image_folder
from fer.data.builders import common
from fer.data.builders.common import LabelError, LayoutError  # noqa: F401 (re-export)

DATASETS = ("fer2013", "ferplus", "affectnet", "image_folder")
DEFAULT_TFDS_DIR = os.path.join("~", "tensorflow_datasets", "fer")
FER_DATA_ENV = "FER_DATA"
SKIPPED_FILE = "skipped.json"
SOURCE_FILE = "source.json"
_IMAGE_SUFFIXES = image_folder.IMAGE_EXTENSIONS
_LAYOUTS = {
    "fer2013": "fer2013.csv or fer2013.csv.gz (columns emotion,pixels,Usage)",
    "ferplus": "FER2013Train/, FER2013Valid/ and/or FER2013Test/, each with PNGs and label.csv",
    "affectnet": "Manually_Annotated_Images/ with training.csv and/or validation.csv",
    "image_folder": "train/<class>/ (and validation/<class>/, test/<class>/) with images",
}


def resolve_manual_dir(name: str, data_dir: str = "") -> str:
    """config.data_dir, or $FER_DATA/<name> when it is ''; LayoutError when missing."""
    if data_dir:
        path = os.path.abspath(os.path.expanduser(data_dir))
        source = "config.data_dir"
    elif os.environ.get(FER_DATA_ENV):
        path = os.path.abspath(os.path.join(os.path.expanduser(os.environ[FER_DATA_ENV]), name))
        source = f"${FER_DATA_ENV}/{name}"
    else:
        raise LayoutError(
            f"no data for dataset {name!r}: set --config.data_dir to the folder holding "
            f"{_LAYOUTS[name]} (or set ${FER_DATA_ENV} to a folder with a {name}/ inside)")
    if not os.path.exists(path):
        raise LayoutError(f"the {name} data folder {path} (from {source}) does not exist; "
                          f"expected it to hold {_LAYOUTS[name]}")
    return path


def resolve_tfds_dir(tfds_dir: str = "") -> str:
    return os.path.abspath(os.path.expanduser(
        tfds_dir or os.environ.get("FER_TFDS_DIR") or DEFAULT_TFDS_DIR))


def layout_signature(manual_dir: str) -> list[list[Any]]:
    """Names, sizes and mtimes of the top two levels, image files excepted."""
    if os.path.isfile(manual_dir):
        st = os.stat(manual_dir)
        return [[os.path.basename(manual_dir), st.st_size, st.st_mtime_ns]]
    entries = []
    for top in sorted(os.scandir(manual_dir), key=lambda e: e.name):
        st = top.stat()
        entries.append([top.name, st.st_size if top.is_file() else -1, st.st_mtime_ns])
        if top.is_dir():
            for sub in sorted(os.scandir(top.path), key=lambda e: e.name):
                if sub.is_file() and sub.name.lower().endswith(_IMAGE_SUFFIXES):
                    continue
                st = sub.stat()
                entries.append([f"{top.name}/{sub.name}",
                                st.st_size if sub.is_file() else -1, st.st_mtime_ns])
    return entries


def build_key(manual_dir: str) -> str:
    payload = json.dumps([os.path.realpath(manual_dir), layout_signature(manual_dir)])
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


@dataclasses.dataclass
class Built:
    """A prepared build: its builder (for as_data_source), splits and label set."""

    builder: tfds.core.DatasetBuilder
    splits: list[str]
    label_set: labels_lib.LabelSet
    manual_dir: str
    root: str  # <tfds_dir>/<dataset>-<key>: the TFDS data dir of this raw folder.

    @property
    def data_dir(self) -> str:
        return os.fspath(self.builder.data_dir)

    def skipped(self) -> dict[str, Any]:
        path = os.path.join(self.data_dir, SKIPPED_FILE)
        if not os.path.exists(path):
            return {"skipped": [], "num_skipped": 0, "counts": {}, "dropped": {}}
        with open(path) as f:
            report = json.load(f)
        if "counts" not in report:  # Written before counts were stored.
            report["counts"] = skip_counts(report["skipped"])
        return report

    def metadata(self, split: str) -> dict[str, np.ndarray]:
        """Per-record `label` (and FER+ `votes`) of a split, cached beside the build."""
        path = os.path.join(self.data_dir, f"fer_index_{split}.npz")
        if os.path.exists(path):
            with np.load(path) as cached:
                return dict(cached)
        features = self.builder.info.features
        keys = [k for k in ("label", "votes") if k in features]
        source = self.builder.as_data_source(
            split=split, decoders={"image": tfds.decode.SkipDecoding()})
        columns: dict[str, list] = {k: [] for k in keys}
        chunk = 4096
        for start in range(0, len(source), chunk):
            for example in source.__getitems__(range(start, min(start + chunk, len(source)))):
                for k in keys:
                    columns[k].append(example[k])
        out = {"label": np.asarray(columns["label"], np.int64)}
        if "votes" in keys:
            out["votes"] = np.asarray(columns["votes"], np.int32).reshape(
                -1, ferplus.NUM_VOTES)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)
        return out


def check_layout(name: str, manual_dir: str) -> None:
    """Raises LayoutError (what was expected, where) before TFDS sees the folder."""
    if name == "fer2013":
        path = fer2013.find_csv(manual_dir)
        next(iter(fer2013.read_rows(path)), None)  # Checks the header.
    elif name == "ferplus":
        ferplus.find_splits(manual_dir)
    elif name == "affectnet":
        affectnet.find_files(manual_dir)
    elif name == "image_folder":
        for folder in image_folder.find_splits(manual_dir).values():
            image_folder.class_folders(folder)


def _builder(name: str, manual_dir: str, data_dir: str, image_size: int):
    if name == "fer2013":
        return (fer2013.Fer2013(data_dir=data_dir, csv_path=fer2013.find_csv(manual_dir)),
                fer2013.LABEL_SET)
    if name == "ferplus":
        return ferplus.Ferplus(data_dir=data_dir), ferplus.LABEL_SET
    if name == "affectnet":
        return (affectnet.Affectnet(data_dir=data_dir, config=affectnet.config_for(image_size)),
                affectnet.LABEL_SET)
    if name == "image_folder":
        builder = image_folder.ImageFolder(
            data_dir=data_dir, config=image_folder.config_for(manual_dir, image_size))
        return builder, builder.label_set
    raise ValueError(f"unknown dataset {name!r}; the TFDS builders are {list(DATASETS)}")


def prepare(name: str, *, data_dir: str = "", tfds_dir: str = "",
            image_size: int = 48) -> Built:
    """Builds `name` from its manual download unless already built; returns the build."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; the TFDS builders are {list(DATASETS)}")
    manual_dir = resolve_manual_dir(name, data_dir)
    check_layout(name, manual_dir)
    root = os.path.join(resolve_tfds_dir(tfds_dir), f"{name}-{build_key(manual_dir)}")
    builder, label_set = _builder(name, manual_dir, root, image_size)
    if not builder.is_prepared():
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, SOURCE_FILE), "w") as f:
            json.dump({"dataset": name, "manual_dir": manual_dir,
                       "layout": layout_signature(manual_dir)}, f, indent=1)
        logging.info("Building %s from %s into %s (once)", name, manual_dir, root)
        builder.download_and_prepare(
            file_format="array_record",
            download_config=tfds.download.DownloadConfig(
                # A folder: config.data_dir may name fer2013's csv file itself.
                manual_dir=manual_dir if os.path.isdir(manual_dir) else os.path.dirname(
                    manual_dir),
                try_download_gcs=False))
        _write_report(builder, name)
    return Built(builder, sorted(builder.info.splits.keys(), key=_split_order),
                 label_set, manual_dir, root)


def _split_order(split: str) -> tuple[int, str]:
    order = {"train": 0, "validation": 1, "test": 2}
    return order.get(split, 3), split


def skip_counts(skipped: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    """{split: {reason kind: count}} of a skipped.json list."""
    items = [common.Skipped(**s) for s in skipped]
    return {split: common.count_kinds(s for s in items if s.split == split)
            for split in sorted({s.split for s in items})}


def _write_report(builder, name: str) -> None:
    report = builder.report.to_dict()
    path = os.path.join(os.fspath(builder.data_dir), SKIPPED_FILE)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    counts = {s: builder.info.splits[s].num_examples for s in builder.info.splits}
    message = f"Built {name}: {counts}."
    if report["dropped"]:
        message += f" Dropped by design: {report['dropped']}."
    if report["skipped"]:
        names = "; ".join(f"{s['name']} ({s['reason']})" for s in report["skipped"][:20])
        more = len(report["skipped"]) - 20
        message += (f" Skipped {len(report['skipped'])} bad images or rows, per split and "
                    f"reason {report['counts']}: {names}"
                    f"{f' and {more} more' if more > 0 else ''}. Full list: {path}")
        logging.warning(message)
        print(message, flush=True)
    else:
        logging.info(message)
