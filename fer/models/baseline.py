"""The seed's simple baseline (Figure 12) and its enhanced version (Figure 17).

`baseline`: two blocks of two 3x3 ReLU convs (32, then 64 channels) and a
2x2 max pool, then a 512-unit fully connected layer and the output layer.

`baseline_bn`: the same with BatchNorm after the ReLU of every conv ("between
the conv layers and the max pool", "after a RELU" in the seed), dropout 25%
after the first block and 50% after the second and between the fully
connected layers, and a BatchNorm on the logits ("also added before the
SoftMax").

Choices where the seed's text leaves one open (its figures are lost):
  * Padding. The seed says "no padding", but its counts only work with
    'SAME' convs: 224 -> 112 -> 56, flatten 56*56*64 = 200,704. With 'VALID'
    convs the flatten is 53*53*64 and the count 92,114,920 (0.90x).
  * With 'SAME', `baseline_bn` at 224x224x1 and 8 classes has exactly the
    seed's 102,830,856 (102,830,456 trainable + 400 BatchNorm moving
    statistics; one BatchNorm per conv, 4*192 numbers, and one on the 8
    logits, 4*8). `baseline` has
    102,830,056, exactly 9,000 fewer than the seed's 102,839,056: the same
    network without those 800 BatchNorm numbers. No plausible layer adds 9,000
    (a search over channels, kernels, input channels and heads found none) and
    the two counts differ in one digit, so we read the seed's figure as a typo.
  * `baseline` has no dropout (the seed adds it in the enhanced version);
    `dropout_rate` can switch it on before the output layer.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from fer.models import layers
from fer.models.registry import register


class Baseline(nn.Module):
    num_classes: int
    input_shape: tuple[int, int, int]
    batch_norm: bool = False
    dropout_rates: tuple[float, float, float] = (0.0, 0.0, 0.0)  # block1, block2, fc
    padding: str = "SAME"
    dtype: layers.Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        layers.check_input(x, self.input_shape, type(self).__name__)
        x = x.astype(self.dtype)
        for features, rate in zip((32, 64), self.dropout_rates[:2]):
            for _ in range(2):
                x = nn.relu(nn.Conv(features, (3, 3), padding=self.padding,
                                    dtype=self.dtype)(x))
                if self.batch_norm:
                    x = layers.batch_norm(train, self.dtype)(x)
            x = layers.max_pool(x, 2)
            x = nn.Dropout(rate, deterministic=not train)(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(512, dtype=self.dtype)(x))
        x = nn.Dropout(self.dropout_rates[2], deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype)(x)
        if self.batch_norm:
            x = layers.batch_norm(train, self.dtype, name="logits_bn")(x)
        return layers.logits_float32(x)


@register("baseline")
def baseline(*, num_classes: int, input_shape, dropout_rate: float = 0.0,
             **kwargs) -> nn.Module:
    return Baseline(num_classes, input_shape, batch_norm=False,
                    dropout_rates=(0.0, 0.0, dropout_rate), **kwargs)


@register("baseline_bn")
def baseline_bn(*, num_classes: int, input_shape, dropout_rate: float = 0.5,
                **kwargs) -> nn.Module:
    """`dropout_rate` is the late rate (blocks 2 and the FC); block 1 gets half."""
    return Baseline(num_classes, input_shape, batch_norm=True,
                    dropout_rates=(dropout_rate / 2, dropout_rate, dropout_rate),
                    **kwargs)
