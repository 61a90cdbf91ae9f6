"""A teacher's class probabilities for every record of a split: distillation targets.

`python -m fer.training.teacher` writes them (an .npz); training reads them when
`config.distill_targets` names one and `config.distill_weight` > 0, and each
training example's target becomes

    w * teacher probabilities + (1 - w) * its own target (FER+ votes or one-hot)

(fer.data.input_pipeline). The file is keyed by record index: row i belongs to
record i of the split *as fer.data.sources serves it* (after FER+'s vote
filtering), so it also stores that split's labels, and a file made on another
build, split or filtering is refused here instead of silently teaching the wrong
face. Only numpy: the reader runs wherever the input pipeline does.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from fer.data import sources

# Rows must be distributions: a little slack for float32 and dynamic-range outputs.
_SUM_TOLERANCE = 1e-3


def save(path: str, probs: np.ndarray, labels: np.ndarray, *, label_names: Sequence[str],
         dataset: str, split: str, teacher: str, tau_removed: float) -> None:
    """Writes the targets (float32 (N, K)) with the split's labels and where they came from."""
    probs = np.asarray(probs, np.float32)
    check(probs, labels, num_examples=len(labels), num_classes=len(label_names), path=path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, probs=probs, labels=np.asarray(labels, np.int64),
                        label_names=np.asarray(list(label_names)), dataset=dataset,
                        split=split, teacher=teacher, tau_removed=np.float64(tau_removed))
    os.replace(tmp, path)


def check(probs: np.ndarray, labels: np.ndarray | None, *, num_examples: int,
          num_classes: int, path: str, expected_labels: np.ndarray | None = None) -> None:
    """ValueError, one line naming `path`, when the targets cannot be this split's."""
    if probs.ndim != 2 or probs.shape[0] != num_examples:
        raise ValueError(f"distillation targets {path}: {probs.shape[0] if probs.ndim else 0} "
                         f"rows, but the split has {num_examples} records (made on another "
                         f"split or build? rerun python -m fer.training.teacher)")
    if probs.shape[1] != num_classes:
        raise ValueError(f"distillation targets {path}: {probs.shape[1]} classes per row, "
                         f"but the dataset has {num_classes} labels")
    if not np.isfinite(probs).all():
        bad = int((~np.isfinite(probs)).any(axis=1).sum())
        raise ValueError(f"distillation targets {path}: {bad} rows hold NaN or infinity")
    sums = probs.sum(axis=1)
    if (probs < 0).any() or np.abs(sums - 1.0).max() > _SUM_TOLERANCE:
        raise ValueError(f"distillation targets {path}: rows must be probabilities "
                         f"(>= 0, summing to 1); row sums span {sums.min():.4f}.."
                         f"{sums.max():.4f}")
    if expected_labels is not None and labels is not None:
        differ = int((np.asarray(labels) != np.asarray(expected_labels)).sum())
        if differ:
            raise ValueError(f"distillation targets {path}: {differ} of {num_examples} "
                             f"records' labels differ from the split's (another record "
                             f"order or build); rerun python -m fer.training.teacher")


def load(path: str, *, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The float32 (N, K) targets of a split whose labels (in record order) are `labels`."""
    if not os.path.isfile(path):
        raise ValueError(f"distillation targets {path}: no such file (make it with "
                         f"python -m fer.training.teacher)")
    try:
        with np.load(path) as data:
            probs = np.asarray(data["probs"], np.float32)
            saved_labels = np.asarray(data["labels"]) if "labels" in data else None
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"distillation targets {path}: not a targets file ({e})") from None
    check(probs, saved_labels, num_examples=len(labels), num_classes=num_classes, path=path,
          expected_labels=labels)
    return probs


def describe(path: str) -> dict[str, Any]:
    """The provenance fields of a targets file (teacher, tau removed, dataset, split)."""
    with np.load(path) as data:
        return {key: data[key].item() for key in ("dataset", "split", "teacher", "tau_removed")
                if key in data}


class WithTargets:
    """A source whose records also carry 'teacher': row `index` of the targets.

    Wraps a split's source *before* shuffling, so a record keeps its own row
    whatever the epoch's order.
    """

    def __init__(self, source, probs: np.ndarray):
        if len(source) != len(probs):
            raise ValueError(f"{len(probs)} target rows for {len(source)} records")
        self._source = source
        self._probs = np.asarray(probs, np.float32)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self._source[int(index)], teacher=self._probs[int(index)])

    def read_many(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        records = sources.read_many(self._source, indices)
        return [dict(r, teacher=self._probs[int(i)]) for r, i in zip(records, indices)]

    def __repr__(self) -> str:
        return f"WithTargets({self._source!r})"
