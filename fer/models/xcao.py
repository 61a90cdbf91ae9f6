"""The seed's X. Cao designs (Figure 18): `xcao` and its two-stream `xcao2`.

`xcao` adapts the enhanced baseline (`baseline_bn`) to Xudong Cao's advice:
widen the receptive field early (the first pool is a 3x3 window with stride
2), grow the channels while the map shrinks (16 -> 32 -> 64 -> 128 -> 128,
224 px down to 7x7x128), and keep the fully connected part small.

Each of the 5 blocks is two 3x3 convs (ReLU then BatchNorm, as in
`baseline_bn`), a max pool and dropout (25% in blocks 1-2, 50% later). The
head is flatten -> FC 1024 (ReLU) -> dropout 50% -> FC classes -> BatchNorm
(the seed's BatchNorm before the softmax).

`xcao2` (the seed's best) runs two symmetric copies of the feature
extraction; at its middle (after block 3, 28x28 at 224 px) the two streams
are summed ("Adder") and both continue from the sum; their outputs are summed
again into the single head.

Choices and counts at 224x224x1, 8 classes (the seed's setting):
  * xcao: 7,023,128 vs the seed's 6,970,728 (1.0075x). xcao2: 7,614,472
    vs 7,509,672 (1.014x).
  * The seed's two counts differ by 538,944. With our head (FC 6272->1024,
    FC 1024->8, BatchNorm on 8: 6,431,784) the seed's xcao leaves exactly
    538,944 for its convs, i.e. the seed's second stream duplicates the whole
    conv stack, which is why both our streams run the full depth. We found no
    natural 5-block conv stack of exactly 538,944 (ours is 591,344), so the
    seed's exact channels/kernels remain unknown.
  * Pools use 'SAME' padding so 48 px faces reach a 2x2 map instead of 0.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from fer.models import layers
from fer.models.registry import register


class ConvBlock(nn.Module):
    """Convs (ReLU -> BatchNorm) -> max pool -> dropout, the seed's block."""

    features: int
    num_convs: int = 2
    pool_window: int = 2
    pool_stride: int = 2
    batch_norm: bool = True
    dropout_rate: float = 0.0
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for _ in range(self.num_convs):
            x = nn.relu(nn.Conv(self.features, (3, 3), padding="SAME",
                                dtype=self.dtype)(x))
            if self.batch_norm:
                x = layers.batch_norm(train, self.dtype)(x)
        x = layers.max_pool(x, self.pool_window, self.pool_stride, "SAME")
        return nn.Dropout(self.dropout_rate, deterministic=not train)(x)


class XCao(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    widths: Sequence[int] = (16, 32, 64, 128, 128)
    streams: int = 1
    join_after: int = 3         # Blocks before the streams' middle adder.
    fc_features: int = 1024
    dropout_rate: float = 0.5   # Late rate; blocks 1-2 get half of it.
    dtype: layers.Dtype = jnp.float32

    def _block(self, index: int, stream: int) -> ConvBlock:
        early = index < 2
        return ConvBlock(
            self.widths[index], pool_window=3 if index == 0 else 2,
            dropout_rate=self.dropout_rate / 2 if early else self.dropout_rate,
            dtype=self.dtype, name=f"stream{stream + 1}_block{index + 1}")

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        x = x.astype(self.dtype)
        halves = (range(self.join_after), range(self.join_after, len(self.widths)))
        for half in halves:
            outputs = []
            for s in range(self.streams):
                y = x
                for i in half:
                    y = self._block(i, s)(y, train)
                outputs.append(y)
            x = sum(outputs[1:], outputs[0])  # The adder joining the streams.
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.fc_features, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
        x = layers.batch_norm(train, self.dtype, name="logits_bn")(x)
        return layers.logits_float32(x)


@register("xcao")
def xcao(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return XCao(num_classes, input_shape, streams=1, **kwargs)


@register("xcao2")
def xcao2(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return XCao(num_classes, input_shape, streams=2, **kwargs)
