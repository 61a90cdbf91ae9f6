"""The seed's fractal design (Figures 19-20, after Smith and Topin 2016).

Two columns over the same input. The deep column is 4 of the seed's blocks
(2 convs -> optional BatchNorm -> 2x2 max pool -> optional dropout) with
16 -> 32 -> 64 -> 128 channels. The shallow column replicates it with half
the blocks, each pooling 4x4 so it spans two deep blocks. Fractal joins:

    x -> D1 -> D2 --concat--> D3 -> D4 --max--> FC -> classes
    x ---- S1 ----/     \\----- S2 ------/

The concatenation after D2/S1 feeds both columns' second halves; the
columns end in a maximum merge ("to increase the exclusiveness"), then
flatten -> FC 1024 -> ReLU -> BatchNorm -> dropout -> FC classes.

Choices and count: the seed's text gives the block, the column counts, the
joins and the optional BatchNorm/dropout but not the widths; we reuse the
`xcao` widths and FC size. At 224x224x1, 8 classes (BatchNorm and dropout on,
the seed's Table 5 setting): 26,249,304 vs the seed's 26,399,016 (0.994x);
the 14x14x128 -> 1024 FC is 98% of it in both. `batch_norm=False, dropout_rate=0`
gives the Figure 20 variant without BatchNorm and dropout. Pools use 'SAME' padding so 48 px faces
end at 3x3.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from fer.models import layers
from fer.models.registry import register
from fer.models.xcao import ConvBlock


class Fractal(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    widths: Sequence[int] = (16, 32, 64, 128)
    fc_features: int = 1024
    batch_norm: bool = True
    dropout_rate: float = 0.5   # Late rate; the first half's blocks get half.
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        early, late = self.dropout_rate / 2, self.dropout_rate

        def block(x, index, pool, rate, name):
            return ConvBlock(self.widths[index], pool_window=pool,
                             pool_stride=pool, batch_norm=self.batch_norm,
                             dropout_rate=rate, dtype=self.dtype, name=name)(x, train)

        x = x.astype(self.dtype)
        deep = block(block(x, 0, 2, early, "deep1"), 1, 2, early, "deep2")
        shallow = block(x, 1, 4, early, "shallow1")
        joined = jnp.concatenate([deep, shallow], axis=-1)
        deep = block(block(joined, 2, 2, late, "deep3"), 3, 2, late, "deep4")
        shallow = block(joined, 3, 4, late, "shallow2")
        x = jnp.maximum(deep, shallow)

        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.fc_features, dtype=self.dtype)(x))
        if self.batch_norm:
            x = layers.batch_norm(train, self.dtype)(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
        return layers.logits_float32(x)


@register("fractal")
def fractal(*, num_classes: int, input_shape, **kwargs) -> nn.Module:
    return Fractal(num_classes, input_shape, **kwargs)
