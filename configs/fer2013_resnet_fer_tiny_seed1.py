"""The FER2013 recipe again with seed 1: the second member of the FER2013 ensemble.

  python launch.py --config configs/fer2013_resnet_fer_tiny_seed1.py \
      --workdir runs/fer2013/resnet_fer_tiny_seed1 --config.data_dir=../shared/data/fer2013
"""

from configs import fer2013_resnet_fer_tiny


def get_config():
    config = fer2013_resnet_fer_tiny.get_config()
    config.seed = 1
    return config
