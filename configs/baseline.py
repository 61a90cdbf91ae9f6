"""The seed's baseline (Figure 12): two blocks of two 3x3 convs (32, 64) + FC 512.

  python launch.py --config configs/baseline.py --workdir runs/baseline \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "baseline"
    return config
