"""configs/fer2013_resnet_fer_tiny_unweighted.py with seed 1 (an ensemble member).

  python launch.py --config configs/fer2013_resnet_fer_tiny_unweighted_seed1.py \
      --workdir runs/fer2013/resnet_fer_tiny_unweighted_seed1 --config.data_dir=../shared/data/fer2013
"""

from configs import fer2013_resnet_fer_tiny_unweighted


def get_config():
    config = fer2013_resnet_fer_tiny_unweighted.get_config()
    config.seed = 1
    return config
