"""Per-class abstention: a face whose top probability is under its class's threshold
is called "uncertain" instead of that class.

A gallery filter is judged by precision: of the faces shown under "contempt",
how many show contempt. A rare class is predicted with little confidence, and
most such guesses are wrong, so each class c gets a threshold t_c on the top
probability: the smallest at which, on the faces it is fitted on, the kept
predictions of c reach the target precision with at least `min_kept` faces.
A class that never gets there is always uncertain (threshold None). The
thresholds are fitted on some faces and judged on others
(benchmarks.crossval); numpy only, as the gallery applies them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

UNCERTAIN = "uncertain"  # The label an abstained face gets (fer.labels.EMOJI has it).
FILENAME = "abstain.json"  # Beside the model: {"thresholds": {label: float | None}, ...}.
DEFAULT_GRID = tuple(np.round(np.arange(0.0, 1.0, 0.01), 2))


def abstain_mask(probs: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """True where the top probability is under its class's threshold (None: always)."""
    probs = np.asarray(probs, np.float64)
    best = probs.argmax(axis=1)
    limit = np.array([np.inf if t is None else t for t in thresholds], np.float64)
    if len(limit) != probs.shape[1]:
        raise ValueError(f"{len(limit)} thresholds for {probs.shape[1]} classes")
    return probs.max(axis=1) < limit[best]


def fit_thresholds(probs: np.ndarray, labels: np.ndarray, *, target: float = 0.5,
                   min_kept: int = 5, grid: Sequence[float] = DEFAULT_GRID
                   ) -> list[float | None]:
    """Per class, the smallest grid threshold whose kept predictions of the class have
    precision >= target over at least `min_kept` faces; None when none does."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels)
    best, top = probs.argmax(axis=1), probs.max(axis=1)
    out: list[float | None] = []
    for c in range(probs.shape[1]):
        mine = best == c
        chosen = None
        for t in grid:
            kept = mine & (top >= t)
            n = int(kept.sum())
            if n < min_kept:
                break  # Thresholds only go up: fewer faces from here on.
            if (labels[kept] == c).sum() >= target * n:
                chosen = float(t)
                break
        out.append(chosen)
    return out


def precision_counts(probs: np.ndarray, labels: np.ndarray,
                     abstain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(right, shown) per class: faces predicted as each class and not abstained on."""
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    k = probs.shape[1]
    best = probs.argmax(axis=1)
    shown = np.ones(len(best), bool) if abstain is None else ~np.asarray(abstain)
    right = np.bincount(best[shown & (best == labels)], minlength=k)
    return right, np.bincount(best[shown], minlength=k)


def thresholds_by_label(labels: Sequence[str], thresholds: Sequence[float | None]
                        ) -> dict[str, float | None]:
    return dict(zip(labels, thresholds))


def thresholds_for(record: Mapping, labels: Sequence[str]) -> list[float | None]:
    """The thresholds of an abstain.json record in the model's label order (0 if absent)."""
    by_label = record.get("thresholds")
    if not isinstance(by_label, Mapping):
        raise ValueError(f"{FILENAME} has no 'thresholds' mapping of label to threshold")
    unknown = set(by_label) - set(labels)
    if unknown:
        raise ValueError(f"{FILENAME} names labels the model lacks: {sorted(unknown)}")
    out = []
    for label in labels:
        t = by_label.get(label, 0.0)
        if t is not None and not (isinstance(t, (int, float)) and 0.0 <= t <= 1.0):
            raise ValueError(f"{FILENAME}: threshold of {label!r} must be a number in "
                             f"[0, 1] or null, got {t!r}")
        out.append(t)
    return out
