"""Stand-ins for the training tests: a tiny model and a learnable in-memory set.

Class c of the FER+ label set is a bright square at a class-specific place on
noise, so a linear model learns it in a few dozen steps. The pipeline has the
contract of fer.data.input_pipeline (batches of image/label/target/mask, data
order a function of (seed, epoch), last eval batch padded with mask 0, the
config's preprocessing variant applied to uint8 pixels).
"""

from __future__ import annotations

import os
import time
import types

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.data import preprocessing

LABEL_SET = labels_lib.FERPLUS
SIZE = 8


class TinyNet(nn.Module):
    """Conv + optional BatchNorm + optional dropout + dense: seconds to compile."""

    num_classes: int
    batch_norm: bool = True
    dropout_rate: float = 0.0
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(4, (3, 3), dtype=self.dtype)(x)
        if self.batch_norm:
            x = nn.BatchNorm(use_running_average=not train, dtype=self.dtype)(x)
        x = nn.relu(x).reshape((x.shape[0], -1))
        if self.dropout_rate:
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, dtype=self.dtype)(x)


def create_tiny_model(config, num_classes):
    """Mirrors fer.training.state.create_model for the tiny design."""
    kwargs = dict(config.get("model_kwargs", {}) or {})
    if config.get("half_precision", False):
        kwargs.setdefault("dtype", jnp.bfloat16)
    return TinyNet(num_classes=num_classes, **kwargs)


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    images = rng.uniform(0.0, 0.3, (len(labels), SIZE, SIZE, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        row, col = divmod(int(c), 4)
        images[i, row * 4:row * 4 + 3, col * 2:col * 2 + 2, 0] = 1.0
    return images


class FakePipeline:
    """In-memory fer.data.input_pipeline stand-in."""

    def __init__(self, num_train: int = 256, num_val: int = 60, num_test: int = 40,
                 nan_from_epoch=None, step_sleep: float = 0.0):
        rng = np.random.default_rng(1234)
        k = LABEL_SET.num_classes
        self.splits = {}
        for split, n in (("train", num_train), ("validation", num_val),
                         ("test", num_test)):
            labels = rng.integers(0, k, n).astype(np.int32)
            # On the uint8 grid, as real faces: preprocessing 'none' is then exactly
            # the identity on them, so only a variant's own pixels can move a result.
            images = spec_lib.normalise(np.round(make_images(labels, rng) * 255)
                                        .astype(np.uint8))
            self.splits[split] = (images, labels)
        self.nan_from_epoch = nan_from_epoch
        self.step_sleep = step_sleep  # Slows training so a test can kill it mid-run.

    def get_dataset_info(self, config):
        k = LABEL_SET.num_classes
        return types.SimpleNamespace(
            label_set=LABEL_SET,
            num_examples={s: len(v[1]) for s, v in self.splits.items()},
            class_counts={s: np.bincount(v[1], minlength=k) for s, v in self.splits.items()})

    @staticmethod
    def class_weights(counts):
        counts = np.maximum(np.asarray(counts, np.float64), 1)
        return counts.sum() / (len(counts) * counts)

    def create_split(self, config, split, *, train, batch_size, seed, epoch=0,
                     shard_index=None, shard_count=None):
        if split not in self.splits:
            raise ValueError(f"no split {split!r}; have {sorted(self.splits)}")
        images, labels = self.splits[split]
        variant = preprocessing.canonical_name(str(config.get("preprocessing", "none")))
        if variant != "none":  # As the real pipeline: on uint8 pixels, then normalised.
            images = np.stack([spec_lib.normalise(preprocessing.apply(
                variant, np.round(x * 255).astype(np.uint8))) for x in images])
        order = np.arange(len(labels))
        if train:
            order = np.random.default_rng([seed, epoch]).permutation(len(labels))
        k = LABEL_SET.num_classes
        stop = len(order) - len(order) % batch_size if train else len(order)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            image = images[idx].copy()
            if self.nan_from_epoch is not None and train and epoch >= self.nan_from_epoch:
                image[:] = np.nan
            n = len(idx)
            if train and self.step_sleep:
                time.sleep(self.step_sleep)
            batch = {"image": image, "label": labels[idx],
                     "target": np.eye(k, dtype=np.float32)[labels[idx]],
                     "mask": np.ones((n,), np.float32)}
            if n < batch_size:  # Pad the last eval batch as the real pipeline does.
                batch = {key: np.concatenate(
                    [v, np.zeros((batch_size - n, *v.shape[1:]), v.dtype)])
                    for key, v in batch.items()}
            yield batch


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    import configs.default as default  # noqa: PLC0415 (repo root on sys.path)

    config = default.get_config()
    config.image_size = SIZE
    config.model = "tiny"
    config.batch_size = 32
    config.epochs = 3
    config.learning_rate = 3e-2
    config.progress_bar = False
    config.log_every_steps = 2
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def install_stand_ins() -> None:
    """Routes fer.training to the tiny model and this pipeline (for launch.py runs)."""
    from fer.training import state as state_lib
    from fer.training import train as train_lib

    pipeline = FakePipeline(step_sleep=float(os.environ.get("FER_TEST_STEP_SLEEP", 0)))
    state_lib.create_model = create_tiny_model
    train_lib.default_pipeline = lambda: pipeline
