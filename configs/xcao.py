"""X. Cao's tips (seed Figure 18 left): stride-2 first pool, 16 -> 128 channels.

  python launch.py --config configs/xcao.py --workdir runs/xcao \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "xcao"
    return config
