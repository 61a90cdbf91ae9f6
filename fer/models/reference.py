"""The seed's two reference designs, layer for layer as Keras builds them.

`inception_v3` (the seed's "GoogleNet": its 23,851,784 parameters are
exactly `keras.applications.InceptionV3` with the 1000-class head) and
`mobilenet_v1` (its 4,253,864 are exactly `keras.applications.MobileNet`,
alpha 1, depth multiplier 1, with the 1000-class head). At 224x224x3 and
1000 classes our totals equal Keras' "Total params", which include the
BatchNorm moving mean and variance (our `batch_stats`).

Keras details kept because they change the count: InceptionV3's convs have
no bias and its BatchNorms no scale (`scale=False`); MobileNet's convs have
no bias, its BatchNorms have a scale, its activation is ReLU6 and its
classifier is a 1x1 conv with bias after global pooling and dropout.

Adaptations (they change no parameter count):
  * InceptionV3 reduces with unpadded ('VALID') convs and pools, which Keras
    only allows from 75 px up. Below 75 px every such layer is 'SAME'
    instead, so 48x48 faces run (`same_padding` overrides the choice).
  * MobileNet's stride-2 layers use 'SAME' padding: for even sizes this is
    Keras' ZeroPadding((0, 1), (0, 1)) + 'VALID', and it handles odd ones.
  * The seed feeds both nets gray 224x224 faces with its own classes: the
    input shape and class count are arguments like every other design.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from fer.models import layers
from fer.models.registry import register


class InceptionV3(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    dropout_rate: float = 0.0  # Keras has none; switchable before the head.
    same_padding: bool | None = None  # None: 'SAME' below 75 px.
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        same = self.same_padding
        if same is None:
            same = min(self.input_shape[:2]) < 75
        reduce_pad = "SAME" if same else "VALID"

        def conv(x, features, kernel, strides=1, padding="SAME"):
            kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
            return layers.ConvBN(features, kernel, (strides, strides), padding,
                                 use_scale=False, dtype=self.dtype)(x, train)

        def avg_pool(x):
            # Keras AveragePooling2D(3, 1, 'same') divides by the valid count.
            return nn.avg_pool(x, (3, 3), (1, 1), "SAME", count_include_pad=False)

        def max_pool(x):
            return nn.max_pool(x, (3, 3), (2, 2), reduce_pad)

        x = x.astype(self.dtype)
        x = conv(x, 32, 3, 2, reduce_pad)
        x = conv(x, 32, 3, padding=reduce_pad)
        x = conv(x, 64, 3)
        x = max_pool(x)
        x = conv(x, 80, 1, padding=reduce_pad)
        x = conv(x, 192, 3, padding=reduce_pad)
        x = max_pool(x)

        for pool_features in (32, 64, 64):  # mixed0..2: 35x35 blocks.
            x = jnp.concatenate([
                conv(x, 64, 1),
                conv(conv(x, 48, 1), 64, 5),
                conv(conv(conv(x, 64, 1), 96, 3), 96, 3),
                conv(avg_pool(x), pool_features, 1)], axis=-1)

        x = jnp.concatenate([  # mixed3: 35 -> 17.
            conv(x, 384, 3, 2, reduce_pad),
            conv(conv(conv(x, 64, 1), 96, 3), 96, 3, 2, reduce_pad),
            max_pool(x)], axis=-1)

        for c in (128, 160, 160, 192):  # mixed4..7: 17x17 factorised 7x7.
            b7 = conv(conv(conv(x, c, 1), c, (1, 7)), 192, (7, 1))
            b7dbl = conv(x, c, 1)
            for kernel in ((7, 1), (1, 7), (7, 1)):
                b7dbl = conv(b7dbl, c, kernel)
            b7dbl = conv(b7dbl, 192, (1, 7))
            x = jnp.concatenate(
                [conv(x, 192, 1), b7, b7dbl, conv(avg_pool(x), 192, 1)], axis=-1)

        b7x3 = conv(conv(conv(x, 192, 1), 192, (1, 7)), 192, (7, 1))
        x = jnp.concatenate([  # mixed8: 17 -> 8.
            conv(conv(x, 192, 1), 320, 3, 2, reduce_pad),
            conv(b7x3, 192, 3, 2, reduce_pad),
            max_pool(x)], axis=-1)

        for _ in range(2):  # mixed9, mixed10: 8x8 expanded filter banks.
            b3 = conv(x, 384, 1)
            b3dbl = conv(conv(x, 448, 1), 384, 3)
            x = jnp.concatenate([
                conv(x, 320, 1),
                conv(b3, 384, (1, 3)), conv(b3, 384, (3, 1)),
                conv(b3dbl, 384, (1, 3)), conv(b3dbl, 384, (3, 1)),
                conv(avg_pool(x), 192, 1)], axis=-1)

        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="predictions")(x)
        return layers.logits_float32(x)


def depthwise_conv(lhs, rhs, window_strides, padding, lhs_dilation=None,
                   rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                   batch_group_count=1, precision=None, preferred_element_type=None):
    """`lax.conv_general_dilated` for flax's NHWC depthwise conv, as kh*kw shifted products.

    Why: XLA's CPU path for grouped convolutions (and their gradients) is many times
    slower per MAC than for dense ones; a sum of strided slices times the kernel's
    taps is elementwise work that XLA fuses, forward and backward. Same kernel
    (kh, kw, 1, C), same output up to float rounding order.
    """
    del lhs_dilation, rhs_dilation, dimension_numbers, batch_group_count, precision
    batch, height, width, channels = lhs.shape
    kh, kw = rhs.shape[:2]
    if feature_group_count != channels or rhs.shape[2:] != (1, channels):
        raise ValueError("depthwise_conv: expects one kernel per input channel")
    if isinstance(padding, str):
        padding = lax.padtype_to_pads((height, width), (kh, kw), window_strides, padding)
    (top, bottom), (left, right) = padding
    x = jnp.pad(lhs, ((0, 0), (top, bottom), (left, right), (0, 0)))
    sh, sw = window_strides
    out_h = (height + top + bottom - kh) // sh + 1
    out_w = (width + left + right - kw) // sw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = lax.slice(x, (0, i, j, 0),
                            (batch, i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1,
                             channels), (1, sh, sw, 1)) * rhs[i, j, 0]
            out = tap if out is None else out + tap
    return out.astype(preferred_element_type or out.dtype)


# (pointwise filters, stride) of Keras MobileNet's 13 depthwise-separable blocks.
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
                     (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    alpha: float = 1.0
    dropout_rate: float = 1e-3  # Keras' default.
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        conv_bn = functools.partial(layers.ConvBN, activation=nn.relu6,
                                    dtype=self.dtype)
        x = x.astype(self.dtype)
        x = conv_bn(int(32 * self.alpha), (3, 3), (2, 2))(x, train)
        for filters, stride in _MOBILENET_BLOCKS:
            channels = x.shape[-1]
            x = nn.Conv(channels, (3, 3), (stride, stride), padding="SAME",
                        feature_group_count=channels, use_bias=False,
                        dtype=self.dtype, conv_general_dilated=depthwise_conv)(x)
            x = nn.relu6(layers.batch_norm(train, self.dtype)(x))
            x = conv_bn(int(filters * self.alpha), (1, 1))(x, train)
        x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype,
                    name="conv_preds")(x)
        return layers.logits_float32(x.reshape((x.shape[0], self.num_classes)))


@register("inception_v3")
def inception_v3(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return InceptionV3(num_classes, input_shape, **kwargs)


@register("mobilenet_v1")
def mobilenet_v1(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return MobileNetV1(num_classes, input_shape, **kwargs)
