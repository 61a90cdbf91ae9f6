"""A second opinion from a model trained on other labels of the same faces.

FER+ gave FER2013's faces ten votes each. A model trained on those votes has
learnt expressions from cleaner labels than FER2013's single ones, but not
FER2013's labelling habits: it calls many of FER2013's angry, fear and sad faces
neutral. Its opinion joins a model of the target labels as a product of experts,

    log p(y | x) = log p_main(y | x) + w * (log q(y | x) - log q_marginal(y)),

where q is the helper's opinion over the target classes, either its probabilities
mapped by name (fer.labels.remap_probs) or through an `Adapter` fitted on the
training faces, and q_marginal its mean over those faces: dividing by it keeps
the helper from counting a class prior the main model already holds. w = 0 is the
main model alone. `choose` picks w for accuracy (FER2013's goal); `cross_fitted`
picks it on one stratified half of the split and scores the other, both ways, so
the estimate never scores the faces that chose its weight. A study
(research/label_transfer/README.md), not part of fer.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from fer.evaluation import metrics as metrics_lib
from fer.evaluation import prior_correction as pc

DEFAULT_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(16))  # 0, 0.1, ..., 1.5.
# The adapter reads log-probabilities floored here, so that a confident helper's
# "impossible" classes do not become huge inputs (the same floor in fit and use).
ADAPTER_LOG_FLOOR = float(np.log(1e-6))


def log_marginal(probs: np.ndarray) -> np.ndarray:
    """log of the mean predicted distribution (a class never predicted gets 1e-6)."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or not len(probs):
        raise ValueError(f"need (N, K) probabilities with N > 0, got {probs.shape}")
    mean = probs.mean(axis=0)
    return np.log(np.maximum(mean / mean.sum(), 1e-6))


def combine(main_log_probs: np.ndarray, helper_log_probs: np.ndarray,
            helper_log_marginal: np.ndarray, weight: float) -> np.ndarray:
    """Combined scores (unnormalised log-probabilities) of the two models."""
    main = np.asarray(main_log_probs, np.float64)
    helper = np.asarray(helper_log_probs, np.float64)
    if main.shape != helper.shape or main.ndim != 2:
        raise ValueError(f"main and helper must score the same faces over the same classes, "
                         f"got {main.shape} and {helper.shape}")
    if weight < 0:
        raise ValueError(f"the helper's weight must be >= 0, got {weight}")
    return main + weight * (helper - np.asarray(helper_log_marginal, np.float64))


def sweep(main_log_probs: np.ndarray, helper_log_probs: np.ndarray,
          helper_log_marginal: np.ndarray, labels: np.ndarray,
          weights: Sequence[float] = DEFAULT_WEIGHTS) -> list[dict[str, Any]]:
    """One row per weight: accuracy, balanced accuracy, lowest and every recall."""
    labels = np.asarray(labels)
    if len(labels) != len(main_log_probs) or not len(labels):
        raise ValueError(f"need one label per face, got {len(labels)} labels for "
                         f"{len(main_log_probs)} faces")
    k = np.asarray(main_log_probs).shape[-1]
    rows = []
    for w in weights:
        scores = combine(main_log_probs, helper_log_probs, helper_log_marginal, w)
        cm = metrics_lib.confusion_matrix(labels, scores.argmax(-1), k)
        rows.append({"weight": float(w), **pc.score(cm)})
    return rows


def choose(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the best accuracy (the smallest weight on ties)."""
    return max(rows, key=lambda r: (round(r["accuracy"], 12), -r["weight"]))


def cross_fitted(main_log_probs: np.ndarray, helper_log_probs: np.ndarray,
                 helper_log_marginal: np.ndarray, labels: np.ndarray,
                 weights: Sequence[float] = DEFAULT_WEIGHTS, seed: int = 0) -> dict[str, Any]:
    """Scores of the weight chosen on the other stratified half, pooled over both halves."""
    main = np.asarray(main_log_probs, np.float64)
    helper = np.asarray(helper_log_probs, np.float64)
    labels = np.asarray(labels)
    half = pc.stratified_half(labels, seed)
    k = main.shape[-1]
    pooled = np.zeros((k, k), np.int64)
    chosen = []
    for pick, test in ((half, ~half), (~half, half)):
        rows = sweep(main[pick], helper[pick], helper_log_marginal, labels[pick], weights)
        chosen.append(choose(rows)["weight"])
        scores = combine(main[test], helper[test], helper_log_marginal, chosen[-1])
        pooled += metrics_lib.confusion_matrix(labels[test], scores.argmax(-1), k)
    return {"weights_chosen": chosen, **pc.score(pooled)}


@dataclasses.dataclass(frozen=True)
class Adapter:
    """A linear map from the helper's log-probabilities to the target's classes.

    Name-matching cannot learn that FER+'s raters call neutral many faces FER2013's
    rater called fear or sad; a multinomial logistic regression fitted on the
    training faces (their target labels, never the validation ones) can, in part.
    """

    mean: np.ndarray   # (S,) standardisation of the inputs
    scale: np.ndarray  # (S,)
    weights: np.ndarray  # (S, K)
    bias: np.ndarray     # (K,)

    def __call__(self, helper_log_probs: np.ndarray) -> np.ndarray:
        """Log-probabilities over the target's K classes."""
        x = np.maximum(np.asarray(helper_log_probs, np.float64), ADAPTER_LOG_FLOOR)
        x = (x - self.mean) / self.scale
        z = x @ self.weights + self.bias
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_adapter(helper_log_probs: np.ndarray, labels: np.ndarray, num_classes: int, *,
                steps: int = 1500, learning_rate: float = 0.05, l2: float = 1e-4) -> Adapter:
    """Full-batch Adam on the cross-entropy from zero weights: deterministic."""
    x = np.maximum(np.asarray(helper_log_probs, np.float64), ADAPTER_LOG_FLOOR)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(labels) or not len(labels):
        raise ValueError(f"need (N, S) log-probabilities for N labels, got {x.shape} and "
                         f"{labels.shape}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels outside 0..{num_classes - 1}")
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    x = (x - mean) / scale
    params = [np.zeros((x.shape[1], num_classes)), np.zeros(num_classes)]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    onehot = np.eye(num_classes)[labels]
    for step in range(1, steps + 1):
        z = x @ params[0] + params[1]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(labels)
        grads = [x.T @ g + l2 * params[0], g.sum(axis=0)]
        for param, grad, m, v in zip(params, grads, first, second):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= (learning_rate * (m / (1 - 0.9 ** step))
                      / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8))
    return Adapter(mean, scale, params[0], params[1])
