"""MobileNet v1 (alpha 1) on gray faces and the dataset's classes (seed's reference).

Its five stride-2 stages would shrink 48x48 to 2x2; 96x96 leaves a 3x3 map.

  python launch.py --config configs/mobilenet_v1.py --workdir runs/mobilenet_v1 \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "mobilenet_v1"
    config.image_size = 96
    return config
