"""PyTorch twins of three fer designs, for benchmarks.train_speed's comparison only.

Same layers, widths, strides, BatchNorm (Keras' momentum 0.99 = torch's 0.01,
epsilon 1e-3), dropout and parameter count as fer.models' `resnet_fer_tiny`,
`xcao2` and `mobilenet_v1`; `benchmarks.train_speed` asserts the counts equal.
Differences that change no cost: torch's NCHW layout, symmetric conv padding
where XLA's 'SAME' pads one pixel at the end (the same output sizes), and the
order of the flattened features before xcao2's FC layer.

torch is not a dependency of fer: this module is imported only when it is.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def _same_pool(x: torch.Tensor, window: int, stride: int) -> torch.Tensor:
    """flax's max_pool(..., 'SAME'): pads the end with -inf up to ceil(size / stride)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + window - size, 0)
        pads += [total // 2, total - total // 2]
    if any(pads):
        x = F.pad(x, pads, value=-math.inf)
    return F.max_pool2d(x, window, stride)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1,
                 relu: type[nn.Module] | None = nn.ReLU, groups: int = 1):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                            bias=False), _bn(cout)]
        super().__init__(*layers, *([relu()] if relu else []))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.branch = nn.Sequential(ConvBN(cin, cout, 3, stride),
                                    ConvBN(cout, cout, 3, relu=None))
        self.projection = (ConvBN(cin, cout, 1, stride, relu=None)
                           if (cin, stride) != (cout, 1) else nn.Identity())

    def forward(self, x):
        return F.relu(self.branch(x) + self.projection(x))


class ResNetFERTiny(nn.Module):
    """resnet_fer_tiny: widths 32-64-128-256, one block per stage, stem stride 2."""

    def __init__(self, num_classes: int, channels: int = 1, stem_stride: int = 2,
                 widths=(32, 64, 128, 256), dropout_rate: float = 0.3):
        super().__init__()
        layers = [ConvBN(channels, widths[0], 3, stem_stride)]
        cin = widths[0]
        for stage, width in enumerate(widths):
            layers.append(BasicBlock(cin, width, 2 if stage else 1))
            cin = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout_rate)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.features(x).mean((2, 3))
        return self.head(self.dropout(x))


class XCaoBlock(nn.Module):
    """Two (conv with bias -> ReLU -> BatchNorm), a 'SAME' max pool, dropout."""

    def __init__(self, cin: int, cout: int, pool_window: int, dropout_rate: float):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), _bn(cout),
            nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(), _bn(cout))
        self.pool_window = pool_window
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x):
        return self.dropout(_same_pool(self.convs(x), self.pool_window, 2))


class XCao2(nn.Module):
    """xcao2: two streams of 5 blocks (16..128), summed after block 3 and at the end."""

    def __init__(self, num_classes: int, image_size: int = 48, channels: int = 1,
                 widths=(16, 32, 64, 128, 128), join_after: int = 3,
                 fc_features: int = 1024, dropout_rate: float = 0.5):
        super().__init__()
        self.halves = nn.ModuleList()
        cin = channels
        for half in (range(join_after), range(join_after, len(widths))):
            streams = nn.ModuleList()
            for _ in range(2):
                blocks, c = [], cin
                for i in half:
                    blocks.append(XCaoBlock(c, widths[i], 3 if i == 0 else 2,
                                            dropout_rate / 2 if i < 2 else dropout_rate))
                    c = widths[i]
                streams.append(nn.Sequential(*blocks))
            self.halves.append(streams)
            cin = widths[half[-1]]
        side = image_size
        side = math.ceil(side / 2)
        for _ in widths[1:]:
            side = math.ceil(side / 2)
        self.fc = nn.Linear(cin * side * side, fc_features)
        self.dropout = nn.Dropout(dropout_rate)
        self.logits = nn.Linear(fc_features, num_classes)
        self.logits_bn = nn.BatchNorm1d(num_classes, eps=1e-3, momentum=0.01)

    def forward(self, x):
        for streams in self.halves:
            x = sum(stream(x) for stream in streams)
        x = self.dropout(F.relu(self.fc(x.flatten(1))))
        return self.logits_bn(self.logits(x))


# (pointwise filters, stride) of MobileNet v1's 13 depthwise-separable blocks.
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                     (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
                     (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    """MobileNet v1 (alpha 1): ReLU6, depthwise 3x3 + pointwise 1x1, 1x1 conv head."""

    def __init__(self, num_classes: int, channels: int = 1, dropout_rate: float = 1e-3):
        super().__init__()
        layers = [ConvBN(channels, 32, 3, 2, nn.ReLU6)]
        cin = 32
        for filters, stride in _MOBILENET_BLOCKS:
            layers += [ConvBN(cin, cin, 3, stride, nn.ReLU6, groups=cin),
                       ConvBN(cin, filters, 1, relu=nn.ReLU6)]
            cin = filters
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout_rate)
        self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x):
        x = self.features(x).mean((2, 3), keepdim=True)
        return self.head(self.dropout(x)).flatten(1)


def create(design: str, num_classes: int, image_size: int, channels: int,
           **kwargs) -> nn.Module:
    """The twin of fer's `design` (kwargs: its own, e.g. stem_stride); KeyError if none."""
    builders = {
        "resnet_fer_tiny": lambda: ResNetFERTiny(num_classes, channels, **kwargs),
        "xcao2": lambda: XCao2(num_classes, image_size, channels),
        "mobilenet_v1": lambda: MobileNetV1(num_classes, channels),
    }
    return builders[design]()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
