"""Stand-ins for the training tests, registered by name: a tiny model and learnable sets.

The model "tiny" (fer.models' registry) is a conv + dense net that compiles in
seconds; "tiny_diverging" is the same net turning its logits to NaN after a
given number of training steps. The datasets "tiny", "tiny_val120" and
"tiny_val200" (fer.data.sources' registry) are in-memory uint8 images where
class c of the FER+ label set is a bright square at a class-specific place on
noise, so a linear model learns it in a few dozen steps. They run through the
real input pipeline (order, padding, preprocessing, sharding), so a config
names them (`config.model`, `config.dataset`) and nothing is patched.
`stand_ins()` registers them for a block; `install_stand_ins()` for a whole
process (launch.py run in a subprocess).
"""

from __future__ import annotations

import contextlib
import os
import time

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import numpy as np

from fer import labels as labels_lib
from fer import models
from fer.data import sources

LABEL_SET = labels_lib.FERPLUS
SIZE = 8
# Dataset name -> (train, validation, test) sizes.
DATASETS = {"tiny": (256, 60, 40), "tiny_val120": (256, 120, 40),
            "tiny_val200": (256, 200, 40)}


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


class DivergingNet(nn.Module):
    """TinyNet whose logits become NaN from training step `nan_after_steps` on.

    The steps are counted in the 'batch_stats' collection (which the train step
    carries from step to step), so a run diverges at a known epoch.
    """

    num_classes: int
    nan_after_steps: int
    dtype: object = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        logits = TinyNet(self.num_classes, batch_norm=False, dtype=self.dtype)(x, train)
        steps = self.variable("batch_stats", "steps", lambda: jnp.zeros((), jnp.int32))
        if train and not self.is_initializing():
            steps.value += 1
            logits = jnp.where(steps.value > self.nan_after_steps, jnp.nan, logits)
        return logits


def _tiny(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    del input_shape  # Any size: the dense layer adapts.
    return TinyNet(num_classes=num_classes, **kwargs)


def _diverging(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    del input_shape
    return DivergingNet(num_classes=num_classes, **kwargs)


def make_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    images = rng.uniform(0.0, 0.3, (len(labels), SIZE, SIZE, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        row, col = divmod(int(c), 4)
        images[i, row * 4:row * 4 + 3, col * 2:col * 2 + 2, 0] = 1.0
    return images


def split_arrays(seed_sizes: tuple[int, int, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (uint8 images, labels)} of a tiny set."""
    rng = np.random.default_rng(1234)
    out = {}
    for split, n in zip(("train", "validation", "test"), seed_sizes):
        labels = rng.integers(0, LABEL_SET.num_classes, n).astype(np.int32)
        out[split] = (np.rint(make_images(labels, rng) * 255).astype(np.uint8), labels)
    return out


def images(dataset: str, split: str) -> np.ndarray:
    """A split's images as the pipeline feeds them (float in [0, 1], no preprocessing)."""
    return split_arrays(DATASETS[dataset])[split][0].astype(np.float32) / 255


class SlowSource(sources.ArraySource):
    """An ArraySource that takes `delay` seconds per record (a test can kill a run mid-way)."""

    def __init__(self, images, labels, delay: float):
        super().__init__(images, labels)
        self.delay = delay

    def __getitem__(self, index: int):
        time.sleep(self.delay)
        return super().__getitem__(index)


def tiny_dataset(sizes: tuple[int, int, int], delay: float = 0.0) -> sources.Dataset:
    splits = {}
    for split, (x, y) in split_arrays(sizes).items():
        source = SlowSource(x, y, delay) if delay else sources.ArraySource(x, y)
        splits[split] = sources.Split(source, y)
    return sources.Dataset(LABEL_SET, splits, "the tests' tiny set")


def _register(delay: float = 0.0) -> list[tuple]:
    added = []
    for name, constructor in (("tiny", _tiny), ("tiny_diverging", _diverging)):
        if name not in models.list_models():
            models.register(name)(constructor)
            added.append((models.unregister, name))
    for name, sizes in DATASETS.items():
        if name not in sources.names():
            sources.register(name)(lambda config, sizes=sizes: tiny_dataset(sizes, delay))
            added.append((sources.unregister, name))
    return added


@contextlib.contextmanager
def stand_ins():
    """The tiny model and datasets registered for a block (then removed again)."""
    added = _register()
    try:
        yield
    finally:
        for unregister, name in added:
            unregister(name)


def tiny_config(**overrides) -> ml_collections.ConfigDict:
    import configs.default as default  # noqa: PLC0415 (repo root on sys.path)

    config = default.get_config()
    config.image_size = SIZE
    config.model = "tiny"
    config.dataset = "tiny"
    config.batch_size = 32
    config.epochs = 3
    config.learning_rate = 3e-2
    config.progress_bar = False
    config.log_every_steps = 2
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def install_stand_ins() -> None:
    """Registers the stand-ins for this process (launch.py run by a test).

    FER_TEST_STEP_SLEEP (seconds per training step of 32) slows the reads.
    """
    _register(delay=float(os.environ.get("FER_TEST_STEP_SLEEP", 0)) / 32)
