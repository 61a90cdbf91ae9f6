"""Two symmetric xcao streams joined by an add (seed Figure 18 right; the seed's best).

  python launch.py --config configs/xcao2.py --workdir runs/xcao2 \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "xcao2"
    return config
