"""Our own design: a small residual network for 48..112 px faces (~6.3M params).

Widths 48-96-192-384, two basic blocks per stage, global average pooling (see
fer/models/resnet.py). Cosine schedule with one warm-up epoch and light label
smoothing, the usual recipe for residual nets trained from scratch.

  python launch.py --config configs/resnet_fer.py --workdir runs/resnet_fer \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "resnet_fer"
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 1.0
    config.label_smoothing = 0.1
    config.epochs = 30
    return config
