"""The seed's enhanced baseline (Figure 17): BatchNorm and dropout added.

  python launch.py --config configs/baseline_bn.py --workdir runs/baseline_bn \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "baseline_bn"
    return config
