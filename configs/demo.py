"""The embedded demo: what `python launch.py` runs when given no flags.

  python launch.py                     # = --config configs/demo.py --workdir runs/demo

It trains `xcao` (the seed's cheapest design, about 29M multiply-adds per 48x48
face) on fer's synthetic demo set, evaluates, exports and prints the comparison row
in a few minutes on a 2-core laptop. Changed from configs/default.py so that it
learns within that budget: 5 epochs, batch 32 (the seed's Keras default; twice the
steps, so BatchNorm's running statistics settle), dropout 0.2 instead of the seed's
0.5. The demo set says nothing about real faces: for real data see
configs/resnet_fer.py and docs/training.md.
"""

from configs import default


def get_config(arg: str | None = None):
    default.parse_arg(arg)  # Takes none: refuses any.
    config = default.get_config()
    config.dataset = "demo"
    config.model = "xcao"
    config.model_kwargs.dropout_rate = 0.2
    config.epochs = 5
    config.per_device_batch_size = 32
    return config
