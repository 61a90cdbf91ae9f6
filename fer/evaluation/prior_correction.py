"""How strong a prior correction to use: the accuracy / balanced-accuracy trade-off.

Subtracting tau * log(training prior) from a model's log-probabilities
(fer.models.ensemble) raises the recall of rare classes (contempt, disgust)
at the cost of the common ones. `sweep` scores every tau on one split;
`choose` picks the tau with the best mean of accuracy and balanced accuracy
(both count: a gallery is judged on every expression and on all photos);
`cross_fitted` says how much of that choice is luck: it picks tau on one
half of the split (stratified), scores the other half, and pools both ways,
so the estimate never scores examples that chose its tau. The exported
ensemble (fer.export.make_ensemble) applies and records this choice; studies of other
rules (research/per_class_offsets) build on `score` and `cross_fit`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fer.evaluation import metrics as metrics_lib

DEFAULT_TAUS = tuple(round(0.05 * i, 2) for i in range(21))  # 0, 0.05, ..., 1.


def confusion(log_probs: np.ndarray, labels: np.ndarray, shift: np.ndarray) -> np.ndarray:
    k = log_probs.shape[-1]
    return metrics_lib.confusion_matrix(labels, np.argmax(log_probs - shift, -1), k)


def score(cm: np.ndarray) -> dict[str, Any]:
    recall = metrics_lib.per_class_recall(cm)
    return {"accuracy": metrics_lib.accuracy(cm),
            "balanced_accuracy": metrics_lib.balanced_accuracy(cm),
            "min_recall": float(np.nanmin(recall)),
            "recall": [None if np.isnan(r) else float(r) for r in recall]}


def sweep(log_probs: np.ndarray, labels: np.ndarray, log_prior: np.ndarray,
          taus: Sequence[float] = DEFAULT_TAUS) -> list[dict[str, Any]]:
    """One row per tau: accuracy, balanced accuracy, lowest and every per-class recall."""
    log_probs = np.asarray(log_probs, np.float64)
    labels = np.asarray(labels)
    if log_probs.ndim != 2 or len(log_probs) != len(labels) or not len(labels):
        raise ValueError(f"need (N, K) log-probabilities for N labels, got "
                         f"{log_probs.shape} and {labels.shape}")
    return [{"tau": float(t), **score(confusion(log_probs, labels, t * np.asarray(log_prior)))}
            for t in taus]


def objective(row: dict[str, Any]) -> float:
    return 0.5 * (row["accuracy"] + row["balanced_accuracy"])


def choose(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the best mean of accuracy and balanced accuracy (smallest tau on ties)."""
    return max(rows, key=lambda r: (round(objective(r), 12), -r["tau"]))


def stratified_half(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A boolean mask holding half of every class (seeded)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        half[idx[: len(idx) // 2]] = True
    return half


def stratified_folds(labels: np.ndarray, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of every example: each class dealt round-robin after a
    seeded shuffle, so every fold holds its share of the rare classes."""
    labels = np.asarray(labels)
    if k < 2:
        raise ValueError(f"need at least 2 folds, got {k}")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), np.int64)
    offset = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)  # The next class starts where this one stopped.
    return folds


def cross_fit(log_probs: np.ndarray, labels: np.ndarray, fit, seed: int) -> np.ndarray:
    """Pooled confusion of shifts fitted (`fit(log_probs, labels) -> shift`) on one
    stratified half and applied to the other, both ways."""
    labels = np.asarray(labels)
    half = stratified_half(labels, seed)
    k = log_probs.shape[-1]
    pooled = np.zeros((k, k), np.int64)
    for pick, test in ((half, ~half), (~half, half)):
        shift = fit(log_probs[pick], labels[pick])
        pooled += confusion(log_probs[test], labels[test], shift)
    return pooled


def cross_fitted(log_probs: np.ndarray, labels: np.ndarray, log_prior: np.ndarray,
                 taus: Sequence[float] = DEFAULT_TAUS, seed: int = 0) -> dict[str, Any]:
    """Scores of tau chosen on the other half of the split, pooled over both halves."""
    chosen = []

    def fit(lp, y):
        chosen.append(choose(sweep(lp, y, log_prior, taus))["tau"])
        return chosen[-1] * np.asarray(log_prior)

    pooled = cross_fit(log_probs, labels, fit, seed)
    return {"taus_chosen": chosen, **score(pooled)}


def plot(rows: Sequence[dict[str, Any]], labels: Sequence[str], path: str,
         chosen: float | None = None, title: str = "", key: str = "tau",
         xlabel: str = "prior correction tau (log-probabilities - tau * log prior)") -> str:
    """Accuracy, balanced accuracy and every class's recall against tau (or `key`)."""
    from fer.evaluation import plots  # noqa: F401  (sets the Agg backend)
    import matplotlib.pyplot as plt

    xs = [r[key] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    recalls = np.array([[np.nan if v is None else v for v in r["recall"]] for r in rows])
    for i, label in enumerate(labels):
        ax.plot(xs, 100 * recalls[:, i], lw=1, alpha=0.6, label=label)
    ax.plot(xs, [100 * r["accuracy"] for r in rows], "k-", lw=2.5, label="accuracy")
    ax.plot(xs, [100 * r["balanced_accuracy"] for r in rows], "k--", lw=2.5,
            label="balanced accuracy")
    if chosen is not None:
        ax.axvline(chosen, color="red", ls=":", label=f"chosen {key} = {chosen:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.set_title(title or "prior correction trade-off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
