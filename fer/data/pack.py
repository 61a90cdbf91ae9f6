"""Packs: every split of a dataset's build in one compressed .npz, readable without TFDS.

A TFDS build needs TensorFlow and the raw folder it was built from. A GPU or TPU
machine that has neither (a bare accelerator image, a machine that cannot reach the
data) trains from a pack instead, with the configs unchanged:

    python -m fer.data.pack ferplus --data_dir /path/to/ferplus --out data/ferplus.npz
    python launch.py --config configs/resnet_fer.py:size=tiny,data=ferplus --workdir runs/x \
        --config.data_dir=data/ferplus.npz

A pack holds what the build serves (uint8 images, integer labels, FER+ raw votes),
so the split logic (FER+ vote filtering, the AffectNet protocols) runs on it as
on the build, in `fer.data.sources`. Its label names are checked against
`fer.labels` when read: a pack can never be read in another label order.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np

from fer import labels as labels_lib

SUFFIX = ".npz"
FORMAT = 1
_HEADER = "header.json"
_KNOWN_LABEL_SETS = {"ferplus": labels_lib.FERPLUS, "fer2013": labels_lib.FER2013,
                     "affectnet": labels_lib.AFFECTNET}


def is_pack(path: str) -> bool:
    """Whether a config's data_dir names a pack (a .npz file) rather than a raw folder."""
    return bool(path) and str(path).endswith(SUFFIX)


def _encode(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Lossless WebP bytes of each image, concatenated, and their end offsets.

    Faces barely compress as raw arrays (zlib keeps ~95%); lossless WebP keeps ~70%,
    which is what lets a FER+ pack travel within a 64 MiB transfer.
    """
    import cv2  # noqa: PLC0415

    parts = []
    for image in images:
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
        if not ok:
            raise ValueError(f"cannot encode an image of shape {image.shape}")
        parts.append(data.ravel())
    ends = np.cumsum([len(p) for p in parts]).astype(np.int64)
    return np.concatenate(parts).astype(np.uint8), ends


def _decode(data: np.ndarray, ends: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    import cv2  # noqa: PLC0415

    flag = cv2.IMREAD_GRAYSCALE if shape[-1] == 1 else cv2.IMREAD_COLOR
    starts = np.concatenate([[0], ends[:-1]])
    images = np.empty((len(ends), *shape), np.uint8)
    for i, (start, end) in enumerate(zip(starts, ends)):
        images[i] = cv2.imdecode(data[start:end], flag).reshape(shape)
    return images


def _gray_hwc(image) -> np.ndarray:
    image = np.asarray(image, np.uint8)
    return image[..., None] if image.ndim == 2 else image


def write(dataset: str, built, out: str, progress: bool = True) -> dict[str, Any]:
    """Writes every split of `built` (fer.data.builders.prepare) to `out`; returns the header."""
    import tqdm  # noqa: PLC0415

    arrays: dict[str, np.ndarray] = {}
    shapes = {}
    for split in built.splits:
        meta = built.metadata(split)
        # The build's records as stored (fer.data.sources reads packs: no import back).
        source = built.builder.as_data_source(split=split)
        images: list[np.ndarray] = []
        chunk = 2048
        with tqdm.tqdm(total=len(source), desc=f"pack {dataset}/{split}",
                       disable=not progress) as bar:
            for start in range(0, len(source), chunk):
                records = source.__getitems__(list(range(start, min(start + chunk,
                                                                    len(source)))))
                images.extend(_gray_hwc(r["image"]) for r in records)
                bar.update(len(records))
        if len({im.shape for im in images}) != 1:
            raise ValueError(f"{dataset}/{split} mixes image shapes; packs need one shape")
        shapes[split] = list(images[0].shape)
        arrays[f"{split}/webp"], arrays[f"{split}/webp_ends"] = _encode(images)
        arrays[f"{split}/label"] = np.asarray(meta["label"], np.int64)
        if "votes" in meta:
            arrays[f"{split}/votes"] = np.asarray(meta["votes"], np.int32)
    header = {"format": FORMAT, "dataset": dataset, "label_set": built.label_set.name,
              "labels": list(built.label_set.labels), "image_shapes": shapes,
              "splits": {split: len(arrays[f"{split}/label"]) for split in shapes},
              "source": built.manual_dir}
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".tmp.npz"  # Written whole, then renamed: a crash leaves no half pack.
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return header


def read(path: str, dataset: str) -> tuple[labels_lib.LabelSet, dict[str, dict[str, np.ndarray]]]:
    """(label set, {split: {'image', 'label'[, 'votes']}}) of a pack of `dataset`.

    Raises ValueError when the pack is of another dataset, another format, or its
    label names differ from fer.labels' for that dataset.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no pack at {path}: make one with "
                                f"python -m fer.data.pack {dataset} --out {path}")
    with np.load(path) as pack:
        if _HEADER not in pack.files:
            raise ValueError(f"{path} is not a fer data pack (no {_HEADER})")
        header = json.loads(pack[_HEADER].tobytes().decode())
        arrays = {name: pack[name] for name in pack.files if name != _HEADER}
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is a pack of format {header.get('format')}; "
                         f"this fer reads format {FORMAT}")
    if header["dataset"] != dataset:
        raise ValueError(f"{path} is a pack of {header['dataset']!r}, "
                         f"but the config's dataset is {dataset!r}")
    label_set = labels_lib.LabelSet(header["label_set"], tuple(header["labels"]))
    known = _KNOWN_LABEL_SETS.get(dataset)
    if known is not None and label_set != known:
        raise ValueError(f"{path} has labels {label_set.labels}; fer's {dataset} labels are "
                         f"{known.labels}: remake the pack with this version of fer")
    splits: dict[str, dict[str, np.ndarray]] = {}
    for split, shape in header["image_shapes"].items():
        splits[split] = {"image": _decode(arrays[f"{split}/webp"], arrays[f"{split}/webp_ends"],
                                          tuple(shape)),
                         "label": arrays[f"{split}/label"]}
        if f"{split}/votes" in arrays:
            splits[split]["votes"] = arrays[f"{split}/votes"]
    return label_set, splits


def main(argv: list[str] | None = None) -> int:
    from fer.data import builders  # noqa: PLC0415 (TFDS: only where a pack is made)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=builders.DATASETS)
    parser.add_argument("--out", required=True, help=f"the pack to write (*{SUFFIX})")
    parser.add_argument("--data_dir", default="", help="raw folder ('' = $FER_DATA/<dataset>)")
    parser.add_argument("--tfds_dir", default="", help="where builds go")
    parser.add_argument("--image_size", type=int, default=48,
                        help="stored size for affectnet and image_folder")
    args = parser.parse_args(argv)
    if not is_pack(args.out):
        parser.error(f"--out must end in {SUFFIX}, got {args.out!r}")
    built = builders.prepare(args.dataset, data_dir=args.data_dir, tfds_dir=args.tfds_dir,
                             image_size=args.image_size)
    header = write(args.dataset, built, args.out)
    size = os.path.getsize(args.out) / 2**20
    print(f"{args.out}: {args.dataset} {header['splits']}, {size:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
