"""Building blocks shared by the designs (Keras-compatible defaults)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any
# Keras' BatchNormalization defaults, so counts and behaviour follow the seed's.
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


def check_input(x: jnp.ndarray, input_shape: Sequence[int], design: str):
    """Clear error when a batch does not have the shape the design was built for."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"{design}: expected images of shape (B, {', '.join(map(str, input_shape))}) "
            f"(NHWC, float in [0, 1]), got {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{design}: expected float images in [0, 1], got {x.dtype}; "
            "convert uint8 pixels with fer.spec.normalise")


def batch_norm(train: bool, dtype: Dtype, use_scale: bool = True,
               name: str | None = None) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                        epsilon=BN_EPSILON, use_scale=use_scale, dtype=dtype,
                        name=name)


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm -> activation: the unit of the reference nets."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    use_scale: bool = True
    activation: Callable[[jnp.ndarray], jnp.ndarray] | None = nn.relu
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.features, self.kernel_size, strides=self.strides,
                    padding=self.padding, use_bias=False, dtype=self.dtype)(x)
        x = batch_norm(train, self.dtype, use_scale=self.use_scale)(x)
        return self.activation(x) if self.activation is not None else x


def max_pool(x, window: int = 2, stride: int | None = None,
             padding: str = "VALID"):
    stride = window if stride is None else stride
    return nn.max_pool(x, (window, window), (stride, stride), padding=padding)


def logits_float32(x: jnp.ndarray) -> jnp.ndarray:
    """Callers apply softmax and losses in float32 whatever the compute dtype."""
    return x.astype(jnp.float32)
