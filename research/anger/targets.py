"""python -m research.anger.targets --data_dir D --out FILE.npz [--tfds_dir T]

FER2013's own label for every FER+ training face, written as distillation targets
(fer.data.soft_targets), so that a FER+ model can be trained on a mix of the raters'
votes and the single annotator's label:

    python launch.py --config configs/resnet_fer.py:size=tiny,data=ferplus,distill=0.3 \
        --config.distill_targets=FILE.npz ...   # each target 0.3 x FER2013 + 0.7 x votes

FER+'s raters kept only 41% of FER2013's angry faces as anger (research.anger); the
annotator's label brings posed anger back into the targets without reading any test
split. Faces are matched by their pixels against FER2013's Training rows (a pattern
seen twice there is left out); a face without a match keeps its own votes as its
target, so the mix leaves it unchanged. FER2013 has no contempt: none is added.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Iterable, Sequence

import numpy as np

from fer import labels as labels_lib
from fer.data import soft_targets
from fer.data import sources
from research.anger import __main__ as anger

_CHUNK = 1024


def training_labels(rows: Iterable[tuple[str, int, np.ndarray]]) -> dict[bytes, int]:
    """{pixel key: FER2013 label} of the Training rows whose pixels occur once."""
    return anger.unique((anger._key(pixels), label) for usage, label, pixels in rows
                        if usage == "Training")


def targets(split: sources.Split, fer2013: dict[bytes, int]) -> tuple[np.ndarray, np.ndarray]:
    """(targets float32 (N, 8), matched bool (N,)) for each record of a FER+ split.

    A matched record's target is FER2013's label as FER+'s class (one-hot); any other
    keeps its vote distribution.
    """
    if split.votes is None:
        raise ValueError("the split has no votes: targets are built for FER+ only")
    to_ferplus = labels_lib.mapping(labels_lib.FER2013, labels_lib.FERPLUS)
    probs = np.array(split.votes, np.float32)
    label = np.full(len(probs), -1, np.int64)  # FER2013's, as FER+'s class; -1: none.
    for start in range(0, len(probs), _CHUNK):
        indices = np.arange(start, min(start + _CHUNK, len(probs)))
        for i, record in zip(indices, sources.read_many(split.source, indices)):
            found = fer2013.get(anger._key(np.asarray(record["image"])[..., 0]))
            label[i] = -1 if found is None else to_ferplus[found]
    matched = label >= 0
    probs[matched] = np.eye(probs.shape[1], dtype=np.float32)[label[matched]]
    return probs, matched


def summary(split: sources.Split, probs: np.ndarray, matched: np.ndarray) -> dict[str, Any]:
    """How many faces matched, and each class's share of the targets before and after."""
    names = labels_lib.FERPLUS.labels
    votes = split.votes.sum(axis=0) / len(split.votes)
    after = probs.sum(axis=0) / len(probs)
    return {"records": int(len(probs)), "matched": int(matched.sum()),
            "moved": int((probs[matched].argmax(1) != split.labels[matched]).sum()),
            "share_votes": {n: float(v) for n, v in zip(names, votes)},
            "share_fer2013": {n: float(v) for n, v in zip(names, after)}}


def main(argv: Sequence[str] | None = None) -> int:
    import configs
    from fer.data import input_pipeline
    from fer.data.builders import fer2013 as fer2013_builder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("FER_DATA", ""),
                        help="holds fer2013/ and ferplus/ (default $FER_DATA)")
    parser.add_argument("--tfds_dir", default="", help="where FER+'s build lives")
    parser.add_argument("--out", required=True, help="the targets file (.npz)")
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("--data_dir (or $FER_DATA) is required")
    config = configs.load("resnet_fer:size=tiny,data=ferplus")
    config.data_dir, config.tfds_dir = os.path.join(args.data_dir, "ferplus"), args.tfds_dir
    try:
        csv_path = fer2013_builder.find_csv(os.path.join(args.data_dir, "fer2013"))
        split = input_pipeline.load_dataset(config).split(config.train_split)
        probs, matched = targets(split, training_labels(anger.fer2013_faces(csv_path)))
    except (OSError, ValueError) as e:
        print(f"research.anger.targets: {e}", file=sys.stderr)
        return 2
    if not matched.any():
        print(f"research.anger.targets: no FER+ training face matched {csv_path}",
              file=sys.stderr)
        return 2
    soft_targets.save(args.out, probs, split.labels, label_names=labels_lib.FERPLUS.labels,
                      dataset="ferplus", split=config.train_split,
                      teacher="FER2013 labels (research.anger.targets)", tau_removed=0.0)
    record = summary(split, probs, matched)
    print(f"{record['matched']:,} of {record['records']:,} FER+ training faces matched; "
          f"{record['moved']:,} of them FER2013 labels otherwise than FER+'s plurality")
    for name in labels_lib.FERPLUS.labels:
        print(f"  {name:10s} votes {100 * record['share_votes'][name]:5.1f}%  "
              f"FER2013 where matched {100 * record['share_fer2013'][name]:5.1f}%")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
