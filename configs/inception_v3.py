"""InceptionV3 (the seed's "GoogleNet") on gray faces and the dataset's classes.

Keras InceptionV3 needs at least 75x75 input; the seed resized to 224x224. 96x96
keeps the 48x48 faces' detail at a quarter of the seed's compute.

  python launch.py --config configs/inception_v3.py --workdir runs/inception_v3 \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.model = "inception_v3"
    config.image_size = 96
    return config
