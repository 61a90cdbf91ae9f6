"""One inference model from several trained ones: mean, mirrored, prior-corrected.

Three cheap ways to a better classifier without training a bigger network:
  * an ensemble: the mean log-probability of independently trained members
    (different seeds make different mistakes);
  * mirror test-time augmentation: a face and its mirror image show the same
    expression, so each member also sees the flipped face (one batch of 2B);
  * shift test-time augmentation: each view also moved a few pixels up, down,
    left and right (the shifts training augmentation taught the members to
    ignore), averaging out where the face detector happened to put the box;
  * prior correction (logit adjustment, Menon et al. 2021): subtracting
    tau * log(training prior) from the log-probabilities moves decisions
    towards rare classes. tau = 1 - class_weight_power makes a model trained
    with class weights (count ** -power) classify as if trained on balanced
    classes; smaller tau trades less overall accuracy for recall of the rare ones.

The module returns log-probabilities (valid logits), so everything that takes
a design's logits (evaluation, export, the gallery) takes an ensemble as is.
Variables are the members' own under 'members_<i>'.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


SHIFT_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (dy, dx): down, up, right, left.


def shift_image(x, dy: int, dx: int):
    """(B, H, W, C) images moved by (dy, dx) pixels; the uncovered border repeats the edge.

    Edge pixels, not zeros: a black band is a feature no training face had.
    """
    h, w = x.shape[1], x.shape[2]
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"shift ({dy}, {dx}) px does not fit a {h}x{w} image")
    padded = jnp.pad(x, ((0, 0), (abs(dy),) * 2, (abs(dx),) * 2, (0, 0)), mode="edge")
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[:, top:top + h, left:left + w, :]


def inference_views(x, mirror: bool, shift_px: int = 0) -> list:
    """The face and its moves by shift_px each way, then (if `mirror`) its mirror image's."""
    if shift_px < 0:
        raise ValueError(f"shift_px must be >= 0, got {shift_px}")
    base = [x, x[:, :, ::-1, :]] if mirror else [x]
    moves = SHIFT_DIRECTIONS if shift_px else ()
    # Grouped by base view ([x, x moved...], then the mirror's): member_log_probs relies on it.
    return [view for v in base
            for view in [v] + [shift_image(v, dy * shift_px, dx * shift_px) for dy, dx in moves]]


class Ensemble(nn.Module):
    members: Sequence[nn.Module]
    mirror: bool = True
    logit_shift: Sequence[float] | None = None  # Subtracted from the mean log-probabilities.
    shift_px: int = 0  # > 0: also average over the views moved this many pixels each way.

    @nn.compact
    def __call__(self, x, train: bool = False):
        if train:
            raise ValueError("Ensemble is for inference; train its members one by one")
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        views = inference_views(x, self.mirror, self.shift_px)
        batch = jnp.concatenate(views, axis=0)
        total = None
        for member in self.members:
            log_probs = jax.nn.log_softmax(member(batch, train=False).astype(jnp.float32))
            total = log_probs if total is None else total + log_probs
        mean = total / len(self.members)
        mean = mean.reshape(len(views), x.shape[0], mean.shape[-1]).mean(axis=0)
        if self.logit_shift is not None:
            mean = mean - jnp.asarray(self.logit_shift, jnp.float32)
        return mean


def combine_variables(member_variables: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """[{'params': p0, 'batch_stats': b0}, ...] -> {'params': {'members_0': p0, ...}, ...}."""
    out: dict[str, dict[str, Any]] = {}
    for i, variables in enumerate(member_variables):
        for collection, tree in variables.items():
            out.setdefault(collection, {})[f"members_{i}"] = tree
    return out


def log_prior(counts: Sequence[float]) -> np.ndarray:
    """log of the training class frequencies; a class never seen gets log of half a count."""
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"class counts must be non-negative with a positive sum, got {counts}")
    counts = np.where(counts > 0, counts, 0.5)
    return np.log(counts / counts.sum())


def prior_shift(counts: Sequence[float], tau: float) -> tuple[float, ...]:
    """tau * log prior, centred (a constant shift changes no decision)."""
    if not 0.0 <= tau <= 2.0:
        raise ValueError(f"prior correction tau must be in [0, 2], got {tau}")
    shift = tau * log_prior(counts)
    return tuple(float(v) for v in shift - shift.mean())
