"""Random-access sources of records, one per split, for every dataset fer reads.

A record is `{'image': uint8 (H, W, 1), 'label': int, 'votes': float32 (8,)}`
(`votes`, the FER+ vote distribution over the 8 emotions, only where the dataset has
votes). Sources are grain-compatible (`__len__`, `__getitem__`, picklable), so the
same pipeline reads the embedded demo set from memory and the real sets from the
ArrayRecord files of their TFDS builds.

Which examples of a build a split holds is decided here, from per-record labels and
votes read once and cached beside the build: FER+ vote filtering (plurality for
training, the reference majority for scoring), and AffectNet's
seed protocol (a random 90/10 split, a stratified 10% "reduced" subset).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import numpy as np

from fer import labels as labels_lib
from fer.data import pack as pack_lib

NUM_EMOTIONS = labels_lib.FERPLUS.num_classes  # FER+ votes: 8 emotions, unknown, NF.
AFFECTNET_SPLIT_SEED = 2019      # Fixed: every run of a protocol sees the same test set.
AFFECTNET_TEST_FRACTION = 0.10   # The seed's 90/10 split.
AFFECTNET_REDUCED_FRACTION = 0.10  # The seed's "reduced" AffectNet.


# ----------------------------------------------------------------------------
# FER+ votes.

def ferplus_plurality(votes: np.ndarray) -> np.ndarray:
    """Plurality label per row of raw 10-column votes; -1 where the top vote is tied,
    is 'unknown' or 'NF' (not a face), or there are no votes.

    Which training images fer keeps: ambiguous faces still carry their vote
    distribution as soft targets (label_mode='probability').
    """
    votes = _raw_votes(votes)
    top = votes.max(axis=1, keepdims=True)
    unique = (votes == top).sum(axis=1) == 1
    label = votes.argmax(axis=1)
    keep = unique & (label < NUM_EMOTIONS) & (top[:, 0] > 0)
    return np.where(keep, label, -1).astype(np.int64)


def ferplus_majority(votes: np.ndarray) -> np.ndarray:
    """Majority label per row of raw 10-column votes, as FER+'s reference reader scores
    its validation and test sets; -1 where it drops the image.

    Microsoft's FERPlus `ferplus.py` (majority mode) first drops every single vote as
    an outlier, then keeps an image only when one column holds more than half of the
    remaining votes (unknown and NF count) and that column is an emotion. Published
    FER+ accuracies are on these images; a plurality winner with 4 votes of 10 is not
    one of them.
    """
    votes = _raw_votes(votes)
    kept = np.where(votes > 1, votes, 0)
    top = kept.max(axis=1)
    label = kept.argmax(axis=1)
    keep = (top > 0.5 * kept.sum(axis=1)) & (label < NUM_EMOTIONS)
    return np.where(keep, label, -1).astype(np.int64)


def ferplus_split_labels(split: str, votes: np.ndarray) -> np.ndarray:
    """The labels (-1: dropped) of a FER+ split: plurality to train on, the reference
    majority everywhere a model is scored."""
    return ferplus_plurality(votes) if split == "train" else ferplus_majority(votes)


def _raw_votes(votes: np.ndarray) -> np.ndarray:
    votes = np.asarray(votes)
    if votes.ndim != 2 or votes.shape[1] != len(labels_lib.FERPLUS_VOTE_COLUMNS):
        raise ValueError(f"expected votes of shape (N, {len(labels_lib.FERPLUS_VOTE_COLUMNS)}), "
                         f"got {votes.shape}")
    return votes


def vote_distribution(votes: np.ndarray) -> np.ndarray:
    """Raw 10-column votes -> float32 distribution over the 8 emotions (rows sum to 1)."""
    emotions = np.asarray(votes, np.float32)[..., :NUM_EMOTIONS]
    total = emotions.sum(axis=-1, keepdims=True)
    uniform = np.full_like(emotions, 1.0 / NUM_EMOTIONS)
    return np.where(total > 0, emotions / np.maximum(total, 1e-9), uniform).astype(np.float32)


# ----------------------------------------------------------------------------
# Sources.

def read_many(source, indices: Sequence[int]) -> list[dict[str, Any]]:
    """source[i] for each i, in one batched read where the source supports it."""
    if hasattr(source, "read_many"):
        return source.read_many(indices)
    return [source[int(i)] for i in indices]


class ArraySource:
    """Records from in-memory arrays (the demo set, tests)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 votes: np.ndarray | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self._images = np.asarray(images)
        self._labels = np.asarray(labels, np.int64)
        self._votes = None if votes is None else vote_distribution(votes)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = {"image": self._images[index], "label": int(self._labels[index])}
        if self._votes is not None:
            record["votes"] = self._votes[index]
        return record

    def __repr__(self) -> str:
        return f"ArraySource({len(self)} records)"


class TfdsSource:
    """Records of one split of a built TFDS dataset, through `as_data_source`."""

    def __init__(self, builder, split: str):
        self._source = builder.as_data_source(split=split)
        self._has_votes = "votes" in builder.info.features
        config = builder.builder_config.name if builder.builder_config else ""
        self._name = f"{builder.name}/{config}"

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._record(self._source[int(index)])

    def _record(self, example) -> dict[str, Any]:
        image = np.asarray(example["image"], np.uint8)
        if image.ndim == 2:
            image = image[..., None]
        record = {"image": image, "label": int(example["label"])}
        if self._has_votes:
            record["votes"] = vote_distribution(example["votes"])
        return record

    def read_many(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return [self._record(e) for e in self._source.__getitems__([int(i) for i in indices])]

    def __repr__(self) -> str:
        return f"TfdsSource({self._name}, {len(self)} records)"


class SubsetSource:
    """The records of `base` at `indices`, in that order."""

    def __init__(self, base, indices: Sequence[int]):
        self._base = base
        self._indices = np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._base[int(self._indices[index])]

    def read_many(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return read_many(self._base, self._indices[np.asarray(indices, np.int64)])

    def __repr__(self) -> str:
        return f"SubsetSource({len(self)} of {self._base!r})"


@dataclasses.dataclass(frozen=True)
class Split:
    """One split: its source and the label of every record in it (for counts and sampling).

    `votes`: each record's FER+ vote distribution (float32 (N, 8)) where the dataset
    has votes, so a training prior can be the votes' own (fer.training.train).
    """

    source: Any
    labels: np.ndarray
    votes: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    label_set: labels_lib.LabelSet
    splits: dict[str, Split]
    description: str = ""
    # {split: {reason kind: count}} of what the build skipped (its skipped.json).
    skipped: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise ValueError(
                f"{self.description or 'the dataset'} has no split {name!r}; "
                f"it has {sorted(self.splits)}")
        return self.splits[name]


def subset(split: Split, indices: np.ndarray) -> Split:
    indices = np.asarray(indices, np.int64)
    return Split(SubsetSource(split.source, indices), split.labels[indices],
                 None if split.votes is None else split.votes[indices])


# ----------------------------------------------------------------------------
# AffectNet protocol.

def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a `fraction` of each class (at least one where a class has any)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def random_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sorted indices of a seeded random split of range(n)."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def affectnet_protocol(splits: dict[str, Split], protocol: str, reduced: bool) -> dict[str, Split]:
    """Applies the seed's AffectNet protocol to the official build's splits.

    official: train = training.csv, validation (and test) = validation.csv, the
      standard test set (500 per class); `reduced` keeps a stratified 10% of train.
    seed_random: the seed's own protocol: both csv files pooled, `reduced` keeps a
      stratified 10% of the pool, then a random 90/10 split into train and
      validation (also served as test). The split is seeded by a fixed constant so
      every run of the protocol is scored on the same images.
    """
    if protocol == "official":
        out = dict(splits)
        if "validation" in out:
            out["test"] = out["validation"]
        if reduced and "train" in out:
            out["train"] = subset(out["train"], stratified_subset(
                out["train"].labels, AFFECTNET_REDUCED_FRACTION, AFFECTNET_SPLIT_SEED))
        return out
    if protocol != "seed_random":
        raise ValueError(
            f"unknown affectnet_protocol {protocol!r}; expected 'official' or 'seed_random'")
    parts = [splits[name] for name in ("train", "validation") if name in splits]
    pooled = Split(_ConcatSource([p.source for p in parts]),
                   np.concatenate([p.labels for p in parts]))
    if reduced:
        pooled = subset(pooled, stratified_subset(
            pooled.labels, AFFECTNET_REDUCED_FRACTION, AFFECTNET_SPLIT_SEED))
    train, test = random_split(len(pooled.labels), AFFECTNET_TEST_FRACTION,
                               AFFECTNET_SPLIT_SEED + 1)
    held_out = subset(pooled, test)
    return {"train": subset(pooled, train), "validation": held_out, "test": held_out}


class _ConcatSource:
    def __init__(self, sources: Sequence[Any]):
        self._sources = list(sources)
        self._ends = np.cumsum([len(s) for s in self._sources])

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        part = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[part - 1]) if part else 0
        return self._sources[part][int(index) - start]


# ----------------------------------------------------------------------------
# Datasets by name: `config.dataset` is looked up here.

Loader = Callable[[Any], Dataset]
_DATASETS: dict[str, Loader] = {}


def register(name: str) -> Callable[[Loader], Loader]:
    """Decorator: `fn(config) -> Dataset` becomes the dataset `name` (tests add tiny ones).

    `config` carries the fields fer.data.input_pipeline caches a dataset by
    (dataset, data_dir, tfds_dir, image_size, affectnet_protocol, affectnet_reduced).
    """
    def wrap(fn: Loader) -> Loader:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = fn
        return fn
    return wrap


def unregister(name: str) -> None:
    _DATASETS.pop(name, None)


def names() -> list[str]:
    return list(_DATASETS)


def load(config) -> Dataset:
    """The splits of `config.dataset` (a registered name)."""
    if config.dataset not in _DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; expected one of {names()}")
    return _DATASETS[config.dataset](config)


def _demo(config) -> Dataset:
    from fer.data import demo_faces as demo  # noqa: PLC0415

    splits = {}
    for name in demo.SPLIT_SIZES:
        arrays = demo.load_split(name)
        splits[name] = Split(ArraySource(arrays["image"], arrays["label"], arrays["votes"]),
                             np.asarray(arrays["label"]), vote_distribution(arrays["votes"]))
    return Dataset(demo.LABEL_SET, splits, "the demo dataset")


@register("demo")
def _load_demo_config(config) -> Dataset:
    del config  # Embedded: nothing to read.
    return _load_demo()


def _load_built(config) -> Dataset:
    """A pack, or a TFDS build (built first when it is not yet)."""
    name = config.dataset
    data_dir = str(config.data_dir)
    if pack_lib.is_pack(data_dir):  # A pack: no TFDS, no TensorFlow (fer.data.pack).
        return _load_pack(data_dir, name=name, protocol=str(config.affectnet_protocol),
                          reduced=bool(config.affectnet_reduced))
    from fer.data import builders  # noqa: PLC0415 (TFDS imports are slow: only when needed)

    built = builders.prepare(
        name, data_dir=data_dir, tfds_dir=config.tfds_dir, image_size=int(config.image_size))
    return _splits_of_build(built, name=name, protocol=str(config.affectnet_protocol),
                            reduced=bool(config.affectnet_reduced))


for _name in ("fer2013", "ferplus", "affectnet", "image_folder"):
    register(_name)(_load_built)


@functools.lru_cache(maxsize=1)
def _load_demo() -> Dataset:
    return _demo(None)


def _splits_of_build(built, *, name: str, protocol: str, reduced: bool) -> Dataset:
    splits = {}
    for split in built.splits:
        meta = built.metadata(split)
        splits[split] = (Split(TfdsSource(built.builder, split), meta["label"]),
                         meta.get("votes"))
    dataset = _dataset(splits, built.label_set, name=name, protocol=protocol,
                       reduced=reduced, description=f"the {name} build in {built.data_dir}")
    return dataclasses.replace(dataset, skipped=built.skipped()["counts"])


def _load_pack(path: str, *, name: str, protocol: str, reduced: bool) -> Dataset:
    label_set, arrays = pack_lib.read(path, name)
    splits = {split: (Split(ArraySource(a["image"], a["label"], a.get("votes")), a["label"]),
                      a.get("votes"))
              for split, a in arrays.items()}
    return _dataset(splits, label_set, name=name, protocol=protocol, reduced=reduced,
                    description=f"the {name} pack {path}")


def _dataset(splits: dict[str, tuple[Split, np.ndarray | None]], label_set, *, name: str,
             protocol: str, reduced: bool, description: str) -> Dataset:
    """Whole splits (and FER+ raw votes) -> the splits a config trains and evaluates on."""
    out = {}
    for split, (whole, votes) in splits.items():
        if votes is not None:  # FER+: the votes decide which images a split holds.
            labels = ferplus_split_labels(split, votes)
            keep = np.flatnonzero(labels >= 0)
            whole = Split(SubsetSource(whole.source, keep), labels[keep],
                          vote_distribution(np.asarray(votes)[keep]))
        out[split] = whole
    if name == "affectnet":
        out = affectnet_protocol(out, protocol, reduced)
    return Dataset(label_set, out, description)
