"""python -m fer.data.builders DATASET [--data_dir DIR] [--tfds_dir DIR] [--image_size N]

Builds a dataset once (e.g. before a multi-host run, so that hosts do not race to
build it) and prints its splits, per-class counts and the skipped-data report.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fer.data import builders
from fer.data import sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=builders.DATASETS)
    parser.add_argument("--data_dir", default="", help="raw folder ('' = $FER_DATA/<dataset>)")
    parser.add_argument("--tfds_dir", default="", help="where builds go")
    parser.add_argument("--image_size", type=int, default=48,
                        help="stored size for affectnet and image_folder")
    args = parser.parse_args(argv)
    built = builders.prepare(args.dataset, data_dir=args.data_dir, tfds_dir=args.tfds_dir,
                             image_size=args.image_size)
    print(f"{args.dataset} from {built.manual_dir}\nbuild: {built.data_dir}")
    k = built.label_set.num_classes
    for split in built.splits:
        meta = built.metadata(split)
        counts = np.bincount(meta["label"], minlength=k)
        print(f"  {split}: {counts.sum()} records; " + ", ".join(
            f"{name} {n}" for name, n in zip(built.label_set.labels, counts)))
        if "votes" in meta:  # FER+: what the split keeps of the votes.
            labels = sources.ferplus_split_labels(split, meta["votes"])
            kept = np.bincount(labels[labels >= 0], minlength=k)
            print(f"    the split keeps {kept.sum()}: " + ", ".join(
                f"{name} {n}" for name, n in zip(built.label_set.labels, kept)))
    report = built.skipped()
    print(f"skipped: {report['num_skipped']}"
          + (f", per split and reason {report['counts']}" if report["counts"] else "")
          + (f"; dropped by design: {report['dropped']}" if report["dropped"] else ""))
    for item in report["skipped"][:50]:
        print(f"  [{item['split']}] {item['name']}: {item['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
