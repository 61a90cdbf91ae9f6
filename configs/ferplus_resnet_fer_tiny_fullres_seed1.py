"""configs/ferplus_resnet_fer_tiny_fullres.py with seed 1 (an ensemble member).

  python launch.py --config configs/ferplus_resnet_fer_tiny_fullres_seed1.py \
      --workdir runs/ferplus/resnet_fer_tiny_fullres_seed1 --config.data_dir=../shared/data/ferplus
"""

from configs import ferplus_resnet_fer_tiny_fullres


def get_config():
    config = ferplus_resnet_fer_tiny_fullres.get_config()
    config.seed = 1
    return config
