"""The designs by name, and how big a set of variables is.

Kept apart from the package's __init__ (which imports every design to fill the
registry) so that the designs import it without importing themselves back.
Tests register stand-ins here by name (`register("tiny_test")`, `unregister`).
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

Constructor = Callable[..., nn.Module]

_REGISTRY: dict[str, Constructor] = {}

def register(name: str) -> Callable[[Constructor], Constructor]:
    """Decorator: registers `fn(num_classes=, input_shape=, **kw) -> Module`."""

    def wrap(fn: Constructor) -> Constructor:
        if name in _REGISTRY:
            raise ValueError(f"design {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


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
