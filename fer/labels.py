"""Label sets, their order, and the mappings between them: the single source of truth.

Every dataset publishes its classes in its own order and with its own words
("happiness" in FER+, "happy" in FER2013 and AffectNet). A model is only as
good as the order its output units are read in, so training, export and the
gallery all read the order from here, never from a literal list of their own.

Canonical names are AffectNet's (the seed's 8-class set):
neutral, happy, sad, surprise, fear, disgust, anger, contempt.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CANONICAL: tuple[str, ...] = (
    "neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")

# Words datasets and folder layouts use for a canonical label (lower case).
_SYNONYMS: dict[str, str] = {
    "neutral": "neutral",
    "happy": "happy", "happiness": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "disgust": "disgust", "disgusted": "disgust",
    "anger": "anger", "angry": "anger",
    "contempt": "contempt",
}

EMOJI: dict[str, str] = {
    "neutral": "\U0001F610", "happy": "\U0001F604", "sad": "\U0001F622",
    "surprise": "\U0001F632", "fear": "\U0001F628", "disgust": "\U0001F922",
    "anger": "\U0001F620", "contempt": "\U0001F612",
    # Labels of the gallery, not classes of any model: a photo of several faces, and
    # a face the model abstains on (fer.evaluation.abstention).
    "multiple": "\U0001F465", "uncertain": "\U0001F914",
}


def canonical(name: str) -> str:
    """Maps any known spelling of an expression to its canonical name."""
    key = name.strip().lower()
    if key not in _SYNONYMS:
        raise ValueError(
            f"unknown expression label {name!r}; known: {sorted(_SYNONYMS)}")
    return _SYNONYMS[key]


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """A dataset's classes in the order of its integer labels."""

    name: str
    labels: tuple[str, ...]  # As the dataset's publisher spells them.

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def canonical(self) -> tuple[str, ...]:
        return tuple(canonical(label) for label in self.labels)

    def index(self, name: str) -> int:
        """Integer label of `name` (any known spelling); ValueError if absent."""
        target = canonical(name)
        try:
            return self.canonical.index(target)
        except ValueError:
            raise ValueError(
                f"label {name!r} is not in label set {self.name!r} "
                f"{self.labels}") from None


FER2013 = LabelSet("fer2013", (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
FERPLUS = LabelSet("ferplus", (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt"))
AFFECTNET = LabelSet("affectnet", CANONICAL)

# FER+ label.csv vote columns after the face box, in file order.
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = FERPLUS.labels + ("unknown", "NF")

# AffectNet's `expression` codes 0..7 are exactly AFFECTNET order; these are dropped.
AFFECTNET_DROPPED_CODES: dict[int, str] = {8: "none", 9: "uncertain", 10: "non-face"}

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (FER2013, FERPLUS, AFFECTNET)}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(
            f"unknown label set {name!r}; known: {sorted(LABEL_SETS)}") from None


def mapping(src: LabelSet, dst: LabelSet) -> np.ndarray:
    """Index array m with m[i] = dst index of src label i, or -1 if dst lacks it."""
    dst_canonical = dst.canonical
    return np.array(
        [dst_canonical.index(c) if c in dst_canonical else -1
         for c in src.canonical], dtype=np.int32)


def remap(labels: np.ndarray, src: LabelSet, dst: LabelSet) -> np.ndarray:
    """Converts integer labels of `src` to `dst`; -1 where `dst` has no such class."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= src.num_classes):
        raise ValueError(f"labels outside 0..{src.num_classes - 1} for {src.name}")
    return mapping(src, dst)[labels]


def remap_probs(probs: np.ndarray, src: LabelSet, dst: LabelSet) -> np.ndarray:
    """Probabilities over `src` classes as probabilities over `dst` classes.

    Each class goes to the `dst` class of the same name; a `src` class that `dst`
    lacks (FER+'s contempt for FER2013) is dropped and the rest renormalised, so a
    model trained on one label set can score faces labelled in another. A `dst`
    class no `src` class maps to gets probability 0.
    """
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or probs.shape[1] != src.num_classes:
        raise ValueError(f"expected (N, {src.num_classes}) probabilities over {src.name}, "
                         f"got {probs.shape}")
    index = mapping(src, dst)
    if (index < 0).all():
        raise ValueError(f"label sets {src.name!r} and {dst.name!r} share no class")
    out = np.zeros((len(probs), dst.num_classes))
    kept = index >= 0
    np.add.at(out.T, index[kept], probs[:, kept].T)
    total = out.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"some rows put no probability on a class {dst.name!r} has")
    return out / total


def shared_classes(src: LabelSet, dst: LabelSet) -> dict[str, object]:
    """How `remap_probs` reads `src` probabilities as `dst` ones, for a report.

    mapped: {src label: dst label} of the classes both have (by canonical name);
    left_out: `src` classes `dst` lacks (their probability is dropped);
    unscored: `dst` classes `src` lacks (faces with them can never be right).
    """
    index = mapping(src, dst)
    return {"from": src.name, "to": dst.name,
            "mapped": {s: dst.labels[i] for s, i in zip(src.labels, index) if i >= 0},
            "left_out": [s for s, i in zip(src.labels, index) if i < 0],
            "unscored": [d for j, d in enumerate(dst.labels) if j not in set(index)]}
