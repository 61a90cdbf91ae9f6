"""Classification metrics as pure functions of a confusion matrix.

Everything that scores a model (training's validation, the evaluation report,
the benchmarks) accumulates one confusion matrix and derives every number
from it here, so no two places can disagree on what "balanced accuracy"
means. Rows are true labels, columns are predictions.

Conventions for classes that are empty (as contempt often is in a FER+
validation split), chosen to match scikit-learn's defaults:
  * recall of a class without examples is undefined (NaN) and left out of
    the balanced accuracy;
  * precision of a class that was never predicted is 0;
  * macro F1 averages over the classes that occur in the truth or in the
    predictions (a class absent from both has no F1).

A rare class's recall from 16 faces is a wide guess, so every per-class recall
and precision comes with a 95% Wilson interval; and a gallery that shows
confidences needs them to mean what they say, so a report may carry top-label
calibration counts (15 equal-width bins, as Guo et al. 2017) and their expected
calibration error.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (true label, predicted label) pairs; `weights` 0 drops an example."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions "
                         f"{predictions.shape} differ in length")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}")
    if weights is None:
        weights = np.ones_like(labels)
    weights = np.asarray(weights).reshape(-1)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), np.rint(weights).astype(np.int64))
    return cm


def _check(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square confusion matrix, got shape {cm.shape}")
    return cm.astype(np.float64)


def num_examples(cm: np.ndarray) -> int:
    return int(np.asarray(cm).sum())


def accuracy(cm: np.ndarray) -> float:
    cm = _check(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def support(cm: np.ndarray) -> np.ndarray:
    """Examples per true class."""
    return _check(cm).sum(axis=1).astype(np.int64)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall (the per-label accuracy of the seed's Table 7); NaN without examples."""
    cm = _check(cm)
    rows = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / rows, np.nan)


def per_class_precision(cm: np.ndarray) -> np.ndarray:
    """Precision; 0 for a class that was never predicted."""
    cm = _check(cm)
    cols = cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cols > 0, np.diag(cm) / cols, 0.0)


def per_class_f1(cm: np.ndarray) -> np.ndarray:
    """F1 per class; NaN for a class absent from both truth and predictions."""
    cm = _check(cm)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that have examples."""
    recall = per_class_recall(cm)
    present = ~np.isnan(recall)
    return float(recall[present].mean()) if present.any() else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    f1 = per_class_f1(cm)
    present = ~np.isnan(f1)
    return float(f1[present].mean()) if present.any() else float("nan")


Z_95 = 1.959963984540054  # Two-sided 95% normal quantile.
ECE_BINS = 15


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (nan, nan) without trials.

    Unlike the normal interval it stays inside [0, 1] and is not empty at 0 of n,
    which is what a rare class's 4 of 15 needs.
    """
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def calibration_counts(probs: np.ndarray, labels: np.ndarray,
                       num_bins: int = ECE_BINS) -> np.ndarray:
    """(num_bins, 3) of [faces, summed top probability, correct] per confidence bin.

    Bin b holds top probabilities in (b/num_bins, (b+1)/num_bins] (0 goes to the
    first). Counts add up across batches; `expected_calibration_error` reads them.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"need (N, K) probabilities for N labels, got {probs.shape} "
                         f"and {labels.shape}")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * num_bins).astype(np.int64) - 1, 0, num_bins - 1)
    counts = np.zeros((num_bins, 3), np.float64)
    np.add.at(counts, bins, np.stack([np.ones_like(confidence), confidence, correct], 1))
    return counts


def expected_calibration_error(counts: np.ndarray) -> float:
    """Sum over bins of (share of faces) x |accuracy - mean confidence| (top label)."""
    counts = np.asarray(counts, np.float64)
    total = counts[:, 0].sum()
    if not total:
        return float("nan")
    return float(np.abs(counts[:, 2] - counts[:, 1]).sum() / total)


def _finite_or_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _interval(successes: float, trials: float) -> list[float] | None:
    lo, hi = wilson_interval(successes, trials)
    return None if np.isnan(lo) else [lo, hi]


def summarize(cm: np.ndarray, labels: Sequence[str], loss: float | None = None,
              calibration: np.ndarray | None = None) -> dict[str, Any]:
    """All metrics of one evaluation as a JSON-ready dict (the report.json schema).

    `per_label` maps each label to its recall (None when it has no examples);
    `per_label_counts` gives the seed's Table 7 columns (correct, misclassified),
    precision and F1, and 95% Wilson intervals of recall and precision (None
    without examples or predictions). `calibration` (from `calibration_counts`)
    adds its bins and expected calibration error.
    """
    cm_int = np.asarray(cm).astype(np.int64)
    if cm_int.shape[0] != len(labels):
        raise ValueError(f"confusion matrix has {cm_int.shape[0]} classes but "
                         f"{len(labels)} labels were given")
    recall = per_class_recall(cm_int)
    precision = per_class_precision(cm_int)
    f1 = per_class_f1(cm_int)
    rows = support(cm_int)
    correct = np.diag(cm_int)
    predicted = cm_int.sum(axis=0)
    summary = {
        "num_examples": num_examples(cm_int),
        "accuracy": _finite_or_none(accuracy(cm_int)),
        "balanced_accuracy": _finite_or_none(balanced_accuracy(cm_int)),
        "macro_f1": _finite_or_none(macro_f1(cm_int)),
        "loss": _finite_or_none(loss) if loss is not None else None,
        "labels": list(labels),
        "per_label": {label: _finite_or_none(r) for label, r in zip(labels, recall)},
        "per_label_counts": {
            label: {"examples": int(n), "correct": int(c),
                    "misclassified": int(n - c), "predicted": int(m),
                    "precision": float(p), "f1": _finite_or_none(f),
                    "recall_interval": _interval(c, n),
                    "precision_interval": _interval(c, m)}
            for label, n, c, m, p, f in zip(labels, rows, correct, predicted, precision, f1)},
        "confusion": cm_int.tolist(),
    }
    if calibration is not None:
        counts = np.asarray(calibration, np.float64)
        summary["calibration"] = {
            "ece": _finite_or_none(expected_calibration_error(counts)),
            "bins": counts.tolist()}
    return summary
