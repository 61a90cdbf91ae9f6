"""The shipped recipe again with seed 1: a member of the shipped ensemble.

  python launch.py --config configs/ferplus_resnet_fer_tiny_seed1.py \
      --workdir runs/ferplus/resnet_fer_tiny_seed1 --config.data_dir=../shared/data/ferplus

Only the seed differs from configs/ferplus_resnet_fer_tiny.py (initial weights,
data order, augmentation, dropout), so its mistakes differ and the mean of both
models' log-probabilities beats either (fer.export.ensemble).
"""

from configs import ferplus_resnet_fer_tiny


def get_config():
    config = ferplus_resnet_fer_tiny.get_config()
    config.seed = 1
    return config
