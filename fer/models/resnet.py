"""Our own designs for phones: small residual networks for 48..112 px faces.

Why this shape:
  * Residual basic blocks (two 3x3 convs and a shortcut, He et al. 2016)
    train reliably from scratch at this depth; ResNet-18-like networks are
    among the strongest published FER+ models at 48-64 px.
  * Post-activation order (conv -> BatchNorm -> ReLU), convs without bias:
    at inference BatchNorm folds into the conv, so the TFLite graph holds
    only built-in CONV_2D, ADD, MEAN and FULLY_CONNECTED ops (no exotic ops,
    nothing a phone delegate lacks).
  * No stem max-pool. Stem stride 1 below 96 px, 2 from 96 px up, so the
    first stage sees 48..56 px maps whatever the input and the cost stays
    about the same from 48 to 112 px (`stem_stride` overrides it).
  * The last BatchNorm of every residual branch starts at scale 0, so each
    block starts as identity (Goyal et al. 2017): faster early training.
  * Global average pooling then dropout then one dense layer: no large FC
    (Cao's advice the seed follows too), and any input size works.

`resnet_fer`: widths 48-96-192-384, 2 blocks per stage (~6.3M params, under
the 10M budget). `resnet_fer_small`: the same with one block in the last stage
(~3.6M params): that stage holds most weights but, at 3x3 px, little compute,
so it keeps nearly all the cost and depth and its int8 weights fit the 5 MB
shipping budget that resnet_fer's (6.4 MB) do not. `resnet_fer_tiny`: widths
32-64-128-256, 1 block per stage (~1.2M params) for the fastest phones.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from fer.models import layers
from fer.models.registry import register


class BasicBlock(nn.Module):
    features: int
    strides: int = 1
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        shortcut = x
        y = layers.ConvBN(self.features, (3, 3), (self.strides,) * 2,
                          dtype=self.dtype)(x, train)
        y = nn.Conv(self.features, (3, 3), padding="SAME", use_bias=False,
                    dtype=self.dtype)(y)
        y = nn.BatchNorm(use_running_average=not train,
                         momentum=layers.BN_MOMENTUM, epsilon=layers.BN_EPSILON,
                         scale_init=nn.initializers.zeros, dtype=self.dtype)(y)
        if shortcut.shape != y.shape:
            shortcut = layers.ConvBN(self.features, (1, 1), (self.strides,) * 2,
                                     activation=None, dtype=self.dtype,
                                     name="projection")(x, train)
        return nn.relu(y + shortcut)


class ResNetFER(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    widths: Sequence[int] = (48, 96, 192, 384)
    blocks: Sequence[int] = (2, 2, 2, 2)
    stem_stride: int | None = None  # None: 1 below 96 px, else 2.
    dropout_rate: float = 0.3
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        if len(self.widths) != len(self.blocks):
            raise ValueError(f"widths {self.widths} and blocks {self.blocks} "
                             "must have one entry per stage")
        stride = self.stem_stride
        if stride is None:
            stride = 1 if min(self.input_shape[:2]) < 96 else 2
        x = x.astype(self.dtype)
        x = layers.ConvBN(self.widths[0], (3, 3), (stride, stride),
                          dtype=self.dtype, name="stem")(x, train)
        for stage, (features, count) in enumerate(zip(self.widths, self.blocks)):
            for i in range(count):
                strides = 2 if stage > 0 and i == 0 else 1
                x = BasicBlock(features, strides, dtype=self.dtype,
                               name=f"stage{stage + 1}_block{i + 1}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return layers.logits_float32(x)


@register("resnet_fer")
def resnet_fer(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return ResNetFER(num_classes, input_shape, **kwargs)


@register("resnet_fer_small")
def resnet_fer_small(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    kwargs.setdefault("blocks", (2, 2, 2, 1))
    return ResNetFER(num_classes, input_shape, **kwargs)


@register("resnet_fer_tiny")
def resnet_fer_tiny(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    kwargs.setdefault("widths", (32, 64, 128, 256))
    kwargs.setdefault("blocks", (1, 1, 1, 1))
    return ResNetFER(num_classes, input_shape, **kwargs)
