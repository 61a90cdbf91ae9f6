"""Our own design, phone size: residual widths 32-64-128-256, one block per stage.

About 1.2M params (fer/models/resnet.py); same recipe as configs/resnet_fer.py.

  python launch.py --config configs/resnet_fer_tiny.py --workdir runs/resnet_fer_tiny \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "resnet_fer_tiny"
    config.schedule = "warmup_cosine"
    config.warmup_epochs = 1.0
    config.label_smoothing = 0.1
    config.epochs = 30
    return config
