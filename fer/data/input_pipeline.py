"""The grain input pipeline: one epoch of batches, reproducible from (seed, epoch).

    records (fer.data.sources) -> epoch order (seeded shuffle or class-balanced draw)
    -> shard per JAX process -> preprocessing variant -> resize -> [0, 1]
    -> augmentation (training only) -> batches of image/label/target/mask

Training resumes at epoch boundaries, so an epoch's order and augmentation depend
only on (seed, epoch) (and the batch size): grain derives each batch's random
generator from the sampler seed and the batch's position in the epoch, and each
record's generator is drawn from its batch's. The worker count changes nothing,
nor does the process count: in training, process p of P takes the p-th slice of
every global batch (the same examples and augmentation as one process feeding
P x the batch), so a multi-host run computes what a one-host run does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Iterator

import grain.python as grain
import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.data import augment as augment_lib
from fer.data import preprocessing
from fer.data import sources as sources_lib


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    label_set: labels_lib.LabelSet
    num_examples: dict[str, int]
    class_counts: dict[str, np.ndarray]
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
    known = ("demo", "fer2013", "ferplus", "affectnet", "image_folder")
    if config.dataset not in known:
        raise ValueError(f"unknown dataset {config.dataset!r}; expected one of {list(known)}")
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

class ToExample(grain.RandomMapTransform):
    """Record -> {'image' float32 (H, W, C), 'label' int32, 'target' float32 (K,)}."""

    def __init__(self, *, image_size: int, channels: int, preprocessing_name: str,
                 augment: augment_lib.AugmentOptions | None, num_classes: int,
                 soft_targets: bool):
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.preprocessing_name = preprocessing.canonical_name(preprocessing_name)
        self.augment = augment  # None: no augmentation.
        self.num_classes = int(num_classes)
        self.soft_targets = bool(soft_targets)
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (gray) or 3, got {channels}")

    def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        gray = preprocessing.to_gray(np.asarray(record["image"], np.uint8))
        gray = preprocessing.apply(self.preprocessing_name, gray)
        if self.augment:  # The resize is folded into the augmentation's warp.
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
        return {"image": image, "label": np.int32(label), "target": target}


# ----------------------------------------------------------------------------
# Epochs.

def _seed_for(seed: int, epoch: int) -> int:
    """A 31-bit grain seed that differs for every (seed, epoch)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), 0xFE2]).generate_state(1)[0]
               & 0x7FFFFFFF)


def epoch_order(labels: np.ndarray, *, seed: int, epoch: int, shuffle: bool,
                balanced: bool) -> np.ndarray:
    """Indices of one epoch: all records once, shuffled, or a class-balanced draw.

    The balanced draw picks len(labels) records with replacement, each class with
    equal probability (classes without examples excluded).
    """
    n = len(labels)
    if not shuffle:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(epoch), 0xBA1])
    if not balanced:
        return rng.permutation(n)
    counts = np.bincount(labels)
    p = 1.0 / counts[labels]
    return rng.choice(n, size=n, replace=True, p=p / p.sum())


def _padding_batch(batch_size: int, image_shape: tuple[int, ...],
                   num_classes: int) -> dict[str, np.ndarray]:
    return {"image": np.zeros((batch_size, *image_shape), np.float32),
            "label": np.zeros((batch_size,), np.int32),
            "target": np.zeros((batch_size, num_classes), np.float32),
            "mask": np.zeros((batch_size,), np.float32)}


def _stack(examples: list[dict[str, Any]], batch_size: int) -> dict[str, np.ndarray]:
    """Examples -> one batch of `batch_size`, padded with mask 0 when short."""
    n = len(examples)
    batch = {key: np.stack([np.asarray(e[key]) for e in examples]) for key in examples[0]}
    batch["mask"] = np.ones((n,), np.float32)
    if n == batch_size:
        return batch
    return {k: np.concatenate([v, np.zeros((batch_size - n, *v.shape[1:]), v.dtype)])
            for k, v in batch.items()}


class ToBatch(grain.RandomMapTransform):
    """Records of one batch -> a batch; each record's generator is drawn from the batch's.

    A process's batch is the slice [offset, offset + batch_size) of a global batch
    of `global_size`: its records get the generators one process would give them.
    """

    def __init__(self, to_example: ToExample, batch_size: int, offset: int = 0,
                 global_size: int | None = None):
        self.to_example = to_example
        self.batch_size = int(batch_size)
        self.offset = int(offset)
        self.global_size = int(global_size or batch_size)

    def random_map(self, records: list[dict[str, Any]],
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
        seeds = rng.integers(0, 2**63 - 1, size=max(self.global_size, len(records)))
        seeds = seeds[self.offset:self.offset + len(records)]
        return _stack([self.to_example.random_map(r, np.random.default_rng(int(s)))
                       for r, s in zip(records, seeds)], self.batch_size)


class BatchSource:
    """Item i = the records of batch i: grain's unit of work (and of IPC) is a batch.

    Working per batch rather than per record keeps worker traffic to one array per
    batch, and makes batch contents independent of the worker count (grain's own
    Batch runs inside each worker, over every k-th record).
    """

    def __init__(self, base, batches: list[np.ndarray]):
        self._base = base
        self._batches = batches

    def __len__(self) -> int:
        return len(self._batches)

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        return sources_lib.read_many(self._base, self._batches[int(index)])


def shard_interval(n: int, shard_index: int, shard_count: int,
                   drop_remainder: bool) -> tuple[int, int]:
    """[start, end) of a shard of n records (grain's even split: the first shards get the rest)."""
    options = grain.ShardOptions(shard_index, shard_count, drop_remainder=drop_remainder)
    per_shard, rest = divmod(n, options.shard_count)
    start = per_shard * options.shard_index
    end = start + per_shard
    if not options.drop_remainder:
        start += min(options.shard_index, rest)
        end += min(options.shard_index + 1, rest)
    return start, end


def _mark_flags_parsed() -> None:
    """grain's worker processes read absl flags; outside absl.app they are unparsed."""
    from absl import flags  # noqa: PLC0415

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def create_split(config, split: str, *, train: bool, batch_size: int, seed: int,
                 epoch: int = 0, shard_index: int | None = None,
                 shard_count: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of batches of `split` for this process's shard.

    `batch_size` is this process's share of the global batch (global / shard_count).
    train=True: shuffled (or class-balanced with config.balanced_sampling), augmented
    when config.augment, the remainder dropped, every mask 1. train=False: file
    order, no augmentation, every example exactly once, the last batch padded with
    mask 0; every shard yields the same number of batches so that processes stay in
    step. The order is a pure function of (seed, epoch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shard_index is None or shard_count is None:
        import jax  # noqa: PLC0415

        shard_index, shard_count = jax.process_index(), jax.process_count()
    dataset = load_dataset(config)
    data = dataset.split(split)
    num_classes = dataset.label_set.num_classes
    size, channels = int(config.image_size), int(config.channels)
    soft = str(config.label_mode) == "probability"
    if soft and config.dataset not in ("ferplus", "demo"):
        raise ValueError(f"label_mode='probability' needs vote counts (ferplus or demo), "
                         f"not {config.dataset!r}")
    if str(config.label_mode) not in ("majority", "probability"):
        raise ValueError(f"label_mode must be 'majority' or 'probability', "
                         f"got {config.label_mode!r}")

    order = epoch_order(data.labels, seed=seed, epoch=epoch, shuffle=train,
                        balanced=train and bool(config.balanced_sampling))
    to_example = ToExample(
        image_size=size, channels=channels,
        preprocessing_name=str(config.preprocessing),
        augment=augment_lib.AugmentOptions.from_config(config) if train and config.augment
        else None,
        num_classes=num_classes, soft_targets=soft)
    return _batches(data.source, order, to_example, batch_size=batch_size, train=train,
                    seed=_seed_for(seed, epoch), shard_index=int(shard_index),
                    shard_count=int(shard_count), workers=int(config.num_workers),
                    image_shape=(size, size, channels), num_classes=num_classes)


def _batches(source, order: np.ndarray, to_example: ToExample, *, batch_size: int,
             train: bool, seed: int, shard_index: int, shard_count: int, workers: int,
             image_shape: tuple[int, ...], num_classes: int):
    """This shard's batches; padding batches keep every eval shard equally long.

    Training: slice `shard_index` of each global batch. Evaluation: a contiguous
    part of the split (its sums do not depend on which process saw an example).
    """
    n = len(order)
    offset, global_size = 0, batch_size
    if train:
        global_size = batch_size * shard_count
        offset = batch_size * shard_index
        chunks = [order[i + offset:i + offset + batch_size]
                  for i in range(0, n - n % global_size, global_size)]
        expected = len(chunks)
    else:
        start, end = shard_interval(n, shard_index, shard_count, drop_remainder=False)
        mine = order[start:end]
        expected = math.ceil(math.ceil(n / shard_count) / batch_size)
        chunks = [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
    produced = 0
    if chunks:
        if workers > 0:
            _mark_flags_parsed()
        sampler = grain.IndexSampler(num_records=len(chunks), shuffle=False, num_epochs=1,
                                     seed=seed, shard_options=grain.NoSharding())
        loader = grain.DataLoader(data_source=BatchSource(source, chunks), sampler=sampler,
                                  worker_count=workers,
                                  operations=[ToBatch(to_example, batch_size, offset,
                                                      global_size)])
        for batch in loader:
            yield batch
            produced += 1
    while produced < expected:  # Eval: this shard ran out before the longest one.
        yield _padding_batch(batch_size, image_shape, num_classes)
        produced += 1
