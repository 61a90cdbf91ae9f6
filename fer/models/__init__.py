"""The model zoo: every design by name, and the seed's reported sizes.

    model = fer.models.create_model("resnet_fer", num_classes=8,
                                    input_shape=(48, 48, 1))
    variables = model.init({"params": rng, "dropout": rng}, x, train=False)

Every design is a `flax.linen.Module` that takes NHWC float32 images in [0, 1]
of exactly `input_shape` and returns float32 logits `(B, num_classes)`;
`jax.nn.softmax` gives probabilities. Keyword arguments beyond the two
required ones go to the design (`dtype`, `dropout_rate`, ...); `dtype` is the
computation dtype (parameters always stay float32). See docs/models.md.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

Constructor = Callable[..., nn.Module]

_REGISTRY: dict[str, Constructor] = {}

# Table 5 of the seed: "Number of parameters" as Keras reports it (total,
# including BatchNorm moving statistics), at 224x224x1 and 8 classes for the
# seed's own designs and 224x224x3 with 1000 classes for the two references.
SEED_PARAMS: dict[str, int] = {
    "baseline": 102_839_056,
    "baseline_bn": 102_830_856,
    "xcao": 6_970_728,
    "xcao2": 7_509_672,
    "fractal": 26_399_016,
    "inception_v3": 23_851_784,
    "mobilenet_v1": 4_253_864,
}


def register(name: str) -> Callable[[Constructor], Constructor]:
    """Decorator: registers `fn(num_classes=, input_shape=, **kw) -> Module`."""

    def wrap(fn: Constructor) -> Constructor:
        if name in _REGISTRY:
            raise ValueError(f"design {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, *, num_classes: int,
                 input_shape: tuple[int, int, int], **kwargs: Any) -> nn.Module:
    """The design `name` for `num_classes` outputs and NHWC `input_shape`."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown design {name!r}; known: {list_models()}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (height, width, channels) with positive "
            f"sizes, got {input_shape!r} for design {name!r}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    return _REGISTRY[name](num_classes=int(num_classes), input_shape=shape,
                           **kwargs)


def _size(tree: Any) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64)
                   for x in jax.tree_util.tree_leaves(tree)))


def count_params(variables: Any) -> dict[str, int]:
    """Counts of a variables dict (arrays or `jax.eval_shape` structs).

    `trainable` is the `params` collection; `total` adds every other
    collection (BatchNorm moving mean/variance): Keras' "Total params",
    the figure the seed reports.
    """
    variables = dict(variables)
    trainable = _size(variables.get("params", {}))
    total = _size(variables)
    return {"trainable": trainable, "non_trainable": total - trainable,
            "total": total}


# Importing the design modules fills the registry.
from fer.models import baseline as _baseline  # noqa: E402,F401
from fer.models import fractal as _fractal  # noqa: E402,F401
from fer.models import reference as _reference  # noqa: E402,F401
from fer.models import resnet as _resnet  # noqa: E402,F401
from fer.models import xcao as _xcao  # noqa: E402,F401
