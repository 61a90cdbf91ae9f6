"""The seed's fractal design (Figures 19-20): two fractal paths, max merge, FC with BN.

  python launch.py --config configs/fractal.py --workdir runs/fractal \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "fractal"
    return config
