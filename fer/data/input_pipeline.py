"""The grain input pipeline: grain.MapDataset transformations, one iterator per run.

    records (fer.data.sources) [+ a teacher's row each, fer.data.soft_targets]
    -> epoch order (shuffle, or a class-balanced draw)
    -> per record: preprocessing variant -> resize -> [0, 1] -> augmentation
    -> batches of this process -> repeat -> (prefetch in worker processes)

Everything before the iterator is a `grain.MapDataset`, random access by index,
and index e * len + i is item i of epoch e (grain's convention), so the order of
epoch e and every augmentation are pure functions of (seed, epoch, position):
`shuffle` reseeds per epoch, and `random_map` seeds each record's generator by
its position in the stream. The worker count changes nothing (workers take
every k-th batch, the iterator interleaves them back), nor does the process
count: process p of P takes the p-th slice of every global batch (the same
examples and augmentation as one process feeding P x the batch), so a multi-host
run computes what a one-host run does. The training iterator's state (the next
batch's index, per worker) is saved with each checkpoint (fer.training.checkpoint),
so a resumed run continues mid-epoch on the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Iterator, Sequence

import grain
import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.data import augment as augment_lib
from fer.data import preprocessing
from fer.data import soft_targets
from fer.data import sources as sources_lib


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    label_set: labels_lib.LabelSet
    num_examples: dict[str, int]
    class_counts: dict[str, np.ndarray]
    # {split: summed vote distributions (float64 (K,))} where the dataset has votes.
    vote_mass: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # {split: {reason kind: count}} of the examples the build skipped (fer.data.sources).
    skipped: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------
# The dataset behind a config (built once, then cached for this process).

_DATASET_FIELDS = ("dataset", "data_dir", "tfds_dir", "image_size", "affectnet_protocol",
                   "affectnet_reduced")


def _dataset_key(config) -> tuple:
    return tuple(str(config[field]) for field in _DATASET_FIELDS)


@functools.lru_cache(maxsize=4)
def _load_cached(key: tuple) -> sources_lib.Dataset:
    fields = dict(zip(_DATASET_FIELDS, key))
    fields["image_size"] = int(fields["image_size"])
    fields["affectnet_reduced"] = fields["affectnet_reduced"] == "True"
    return sources_lib.load(_MiniConfig(fields))


class _MiniConfig(dict):
    """The fields `sources.load` reads, with ConfigDict's attribute access."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def load_dataset(config) -> sources_lib.Dataset:
    if config.dataset not in sources_lib.names():  # Registered in fer.data.sources.
        raise ValueError(f"unknown dataset {config.dataset!r}; expected one of "
                         f"{sources_lib.names()}")
    return _load_cached(_dataset_key(config))


def get_dataset_info(config) -> DatasetInfo:
    """Label set, examples and per-class counts of every split (builds the dataset if needed)."""
    dataset = load_dataset(config)
    k = dataset.label_set.num_classes
    return DatasetInfo(
        label_set=dataset.label_set,
        num_examples={name: len(s.labels) for name, s in dataset.splits.items()},
        class_counts={name: np.bincount(s.labels, minlength=k).astype(np.int64)
                      for name, s in dataset.splits.items()},
        vote_mass={name: s.votes.sum(axis=0, dtype=np.float64)
                   for name, s in dataset.splits.items() if s.votes is not None},
        skipped=dataset.skipped)


def class_weights(counts: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Inverse-frequency weights (count ** -power) with mean 1 over the classes present.

    power=1 equalises the classes' total weight; power=0.5 (square root) is milder,
    for sets like FER+ where the rarest class is 60x rarer than the commonest and
    full inverse weights trade too much overall accuracy for it. Absent classes get 0.

    A class with no training example cannot be learned, and a finite weight for it
    is harmless (no example ever carries it), so it gets 0 rather than infinity.
    """
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"class counts must be a non-negative vector, got {counts}")
    present = counts > 0
    if not present.any():
        raise ValueError("class weights of a split with no examples")
    weights = np.zeros_like(counts)
    if power < 0:
        raise ValueError(f"class weight power must be >= 0, got {power}")
    weights[present] = counts[present] ** -float(power)
    weights *= present.sum() / weights[present].sum()
    return weights.astype(np.float32)


# ----------------------------------------------------------------------------
# Per-record work (runs in grain workers: plain, picklable, no JAX).

@dataclasses.dataclass(frozen=True)
class ToExample:
    """Record -> {'image' float32 (H, W, C), 'label' int32, 'target' float32 (K,), 'mask' 1}.

    Called as grain's `random_map` (training: `rng` drives the augmentation) or
    `map` (evaluation: no generator, no augmentation).
    """

    image_size: int
    channels: int
    preprocessing_name: str
    augment: augment_lib.AugmentOptions | None  # None: no augmentation.
    num_classes: int
    soft_targets: bool
    # Weight of a record's 'teacher' probabilities in its target (fer.data.soft_targets).
    distill_weight: float = 0.0

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3, got {self.channels}")

    def __call__(self, record: dict[str, Any],
                 rng: np.random.Generator | None = None) -> dict[str, Any]:
        gray = preprocessing.to_gray(np.asarray(record["image"], np.uint8))
        gray = preprocessing.apply(self.preprocessing_name, gray)
        if self.augment and rng is not None:  # The resize is folded into the warp.
            image = augment_lib.augment(spec_lib.normalise(gray), rng, self.augment,
                                        output_size=self.image_size)
        else:
            image = spec_lib.normalise(preprocessing.resize(gray, self.image_size))
        image = np.repeat(image[..., None], self.channels, axis=-1)
        label = int(record["label"])
        if self.soft_targets and "votes" in record:
            target = np.asarray(record["votes"], np.float32)
        else:
            target = np.zeros(self.num_classes, np.float32)
            target[label] = 1.0
        if self.distill_weight and "teacher" in record:
            w = np.float32(self.distill_weight)
            target = w * np.asarray(record["teacher"], np.float32) + (1 - w) * target
        return {"image": image, "label": np.int32(label), "target": target,
                "mask": np.float32(1.0)}

    def padding(self) -> dict[str, Any]:
        """An example of zeros with mask 0 (fills the last evaluation batches)."""
        return {"image": np.zeros((self.image_size, self.image_size, self.channels),
                                  np.float32),
                "label": np.int32(0), "target": np.zeros(self.num_classes, np.float32),
                "mask": np.float32(0.0)}


def distill_weight(config) -> float:
    """config.distill_weight, checked against config.distill_targets (both or neither)."""
    weight = float(config.distill_weight)
    path = str(config.distill_targets)
    if weight and not path:
        raise ValueError(f"config.distill_weight={weight:g} needs config.distill_targets "
                         "(the .npz of python -m fer.training.teacher)")
    if path and not weight:
        raise ValueError(f"config.distill_targets={path!r} is unused with "
                         "config.distill_weight=0; set a weight in (0, 1]")
    return weight


def _with_targets(config, data: sources_lib.Split, num_classes: int):
    """The split's source, its records carrying the teacher's row when distilling."""
    if not distill_weight(config):
        return data.source
    probs = soft_targets.load(str(config.distill_targets), labels=data.labels,
                              num_classes=num_classes)
    return soft_targets.WithTargets(data.source, probs)


def _to_example(config, dataset: sources_lib.Dataset, train: bool) -> ToExample:
    soft = str(config.label_mode) == "probability"
    if soft and config.dataset not in ("ferplus", "demo"):
        raise ValueError(f"label_mode='probability' needs vote counts (ferplus or demo), "
                         f"not {config.dataset!r}")
    if str(config.label_mode) not in ("majority", "probability"):
        raise ValueError(f"label_mode must be 'majority' or 'probability', "
                         f"got {config.label_mode!r}")
    return ToExample(
        image_size=int(config.image_size), channels=int(config.channels),
        preprocessing_name=preprocessing.canonical_name(str(config.preprocessing)),
        augment=augment_lib.AugmentOptions.from_config(config)
        if train and config.augment else None,
        num_classes=dataset.label_set.num_classes, soft_targets=soft,
        distill_weight=distill_weight(config) if train else 0.0)


# ----------------------------------------------------------------------------
# Record order.

def _seed_for(seed: int, purpose: str) -> int:
    """A 31-bit grain seed for one random step; runs of neighbouring seeds share none.

    grain reseeds a shuffle per epoch with seed + epoch; hashing keeps seed 1's
    first epoch from being seed 0's second.
    """
    words = [int(seed)] + [ord(c) for c in purpose]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


class _BatchedReads:
    """A source whose batch reads go through `sources.read_many` (one ArrayRecord read)."""

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._source[int(index)]

    def _getitems(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return sources_lib.read_many(self._source, indices)


class ClassBalancedMapDataset(grain.MapDataset):
    """Each epoch, len(parent) records drawn with replacement, every class equally likely.

    Classes without examples are excluded. The draw of epoch e depends only on
    (seed, e); index e * len + i is draw i of epoch e, as grain's own shuffle.
    """

    def __init__(self, parent: grain.MapDataset, labels: np.ndarray, seed: int):
        super().__init__(parent)
        self._labels = np.asarray(labels, np.int64)
        self._seed = int(seed)
        self._last: tuple[int, np.ndarray] | None = None  # (epoch, its draw)

    def __len__(self) -> int:
        return len(self._parent)

    def __str__(self) -> str:
        return "ClassBalancedMapDataset"

    def _draw(self, epoch: int) -> np.ndarray:
        last = self._last
        if last is None or last[0] != epoch:
            labels = self._labels
            p = 1.0 / np.bincount(labels)[labels]
            rng = np.random.default_rng([self._seed, epoch])
            last = self._last = (epoch, rng.choice(len(labels), size=len(labels),
                                                   replace=True, p=p / p.sum()))
        return last[1]

    def _index(self, index: int) -> int:
        epoch, position = divmod(int(index), len(self))
        return epoch * len(self) + int(self._draw(epoch)[position])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return self._parent[self._index(index)]

    def _getitems(self, indices: Sequence[int]):
        return self._parent._getitems([self._index(i) for i in indices])  # noqa: SLF001


def shard_interval(n: int, shard_index: int, shard_count: int) -> tuple[int, int]:
    """[start, end) of shard `shard_index` of n records: the first n % shard_count get one more."""
    per_shard, rest = divmod(n, shard_count)
    start = per_shard * shard_index + min(shard_index, rest)
    return start, start + per_shard + (shard_index < rest)


# ----------------------------------------------------------------------------
# Datasets and iterators.

def _resolve_shard(shard_index: int | None, shard_count: int | None) -> tuple[int, int]:
    if shard_index is None or shard_count is None:
        import jax  # noqa: PLC0415

        return jax.process_index(), jax.process_count()
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} is not in 0..{shard_count - 1}")
    return int(shard_index), int(shard_count)


def train_dataset(config, split: str, *, batch_size: int, seed: int,
                  steps_per_epoch: int = 0, shard_index: int | None = None,
                  shard_count: int | None = None) -> grain.MapDataset:
    """One epoch of this process's training batches (index e * len + i: epoch e's i-th).

    `batch_size` is this process's share of the global batch (global / shard_count).
    Shuffled (class-balanced with config.balanced_sampling), augmented when
    config.augment, the remainder dropped, every mask 1; at most
    `steps_per_epoch` batches per epoch (0: every full global batch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shard_index, shard_count = _resolve_shard(shard_index, shard_count)
    dataset = load_dataset(config)
    data = dataset.split(split)
    # Teacher rows are attached by record index, before any shuffle.
    source = _with_targets(config, data, dataset.label_set.num_classes)
    records = grain.MapDataset.source(_BatchedReads(source))
    if config.balanced_sampling:
        records = ClassBalancedMapDataset(records, data.labels, _seed_for(seed, "balance"))
    else:
        records = records.shuffle(seed=_seed_for(seed, "shuffle"))
    steps = len(records) // (batch_size * shard_count)
    if steps_per_epoch:
        steps = min(steps, int(steps_per_epoch))
    if steps < 1:
        raise ValueError(f"the {split!r} split has {len(records)} examples, fewer than one "
                         f"global batch of {batch_size * shard_count}; lower the batch size")
    examples = records.random_map(_to_example(config, dataset, train=True),
                                  seed=_seed_for(seed, "augment"))
    # Chunk k of an epoch is slice k % P of global batch k // P: process p takes every
    # P-th chunk, starting at its own.
    chunks = examples.batch(batch_size, drop_remainder=True)
    return chunks[:steps * shard_count][shard_index::shard_count]


def eval_dataset(config, split: str, *, batch_size: int, shard_index: int | None = None,
                 shard_count: int | None = None) -> grain.MapDataset:
    """This process's evaluation batches: file order, every example once, no augmentation.

    Each process reads a contiguous part of the split (its sums do not depend on
    which process saw an example); the last batches are padded with mask-0
    examples so that every process runs the same number of batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    shard_index, shard_count = _resolve_shard(shard_index, shard_count)
    dataset = load_dataset(config)
    data = dataset.split(split)
    to_example = _to_example(config, dataset, train=False)
    n = len(data.labels)
    start, end = shard_interval(n, shard_index, shard_count)
    num_batches = math.ceil(math.ceil(n / shard_count) / batch_size)
    parts = []
    if end > start:
        parts.append(grain.MapDataset.source(_BatchedReads(data.source))[start:end]
                     .map(to_example))
    if num_batches * batch_size > end - start:
        parts.append(grain.MapDataset.source([to_example.padding()])
                     .repeat(num_batches * batch_size - (end - start)))
    if not parts:
        return grain.MapDataset.source([])
    return grain.MapDataset.concatenate(parts).batch(batch_size)


def _mark_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside absl.app they are unparsed."""
    from absl import flags  # noqa: PLC0415

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def iterate(dataset: grain.MapDataset, num_workers: int) -> grain.DatasetIterator:
    """A checkpointable iterator over `dataset`: a thread in-process, or worker processes.

    With workers, each takes every num_workers-th batch and the iterator interleaves
    them back in order, so the batches do not depend on the worker count (its saved
    state does).
    """
    if num_workers > 0:
        _mark_flags_parsed()
        return iter(dataset.to_iter_dataset(grain.ReadOptions(
            num_threads=1, prefetch_buffer_size=2)).mp_prefetch(
                grain.MultiprocessingOptions(num_workers=int(num_workers),
                                             per_worker_buffer_size=2)))
    # One reading thread overlaps the training step; more contend for the GIL (measured:
    # FER+ 48x48 batches of 64, 3,400 images/s with 1 thread, 2,760 with 2).
    return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=1,
                                                          prefetch_buffer_size=4)))


def create_train_iterator(config, split: str, *, batch_size: int, seed: int,
                          steps_per_epoch: int = 0, num_epochs: int | None = None,
                          start: int = 0, shard_index: int | None = None,
                          shard_count: int | None = None) -> grain.DatasetIterator:
    """The run's one training iterator: `num_epochs` epochs (None: endless) back to back.

    Created once; worker processes live as long as it does. Its state
    (`get_state`/`set_state`) is saved with each checkpoint. It starts at batch
    `start` of the stream (batch i is global step i): a resume without a usable
    saved state starts there, and its later states count from there.
    """
    epoch = train_dataset(config, split, batch_size=batch_size, seed=seed,
                          steps_per_epoch=steps_per_epoch, shard_index=shard_index,
                          shard_count=shard_count)
    return iterate(epoch.repeat(num_epochs)[start:], int(config.num_workers))


def create_split(config, split: str, *, train: bool, batch_size: int, seed: int = 0,
                 epoch: int = 0, steps_per_epoch: int = 0, shard_index: int | None = None,
                 shard_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of batches of `split` for this process's shard.

    `batch_size` is this process's share of the global batch (global / shard_count).
    train=True: epoch `epoch` of the training stream (see `train_dataset`; what
    `create_train_iterator` yields after `epoch` epochs). train=False: file
    order, no augmentation, every example exactly once, the last batch padded with
    mask 0; every shard yields the same number of batches so that processes stay
    in step.
    """
    if train:
        one = train_dataset(config, split, batch_size=batch_size, seed=seed,
                            steps_per_epoch=steps_per_epoch, shard_index=shard_index,
                            shard_count=shard_count)
        dataset = one.repeat()[epoch * len(one):(epoch + 1) * len(one)]
    else:
        dataset = eval_dataset(config, split, batch_size=batch_size,
                               shard_index=shard_index, shard_count=shard_count)
    if not len(dataset):
        return iter(())
    return iterate(dataset, int(config.num_workers))
