"""The shipped FER+ recipe on a larger design (resnet_fer_small, 3.6M params), stem stride 2.

  python launch.py --config configs/ferplus_resnet_fer_small.py \
      --workdir runs/ferplus/resnet_fer_small --config.data_dir=../shared/data/ferplus

Why: on FER2013 the wider, deeper resnet_fer beat resnet_fer_tiny by about two
points at the same stride, but its int8 weights (6.4 MB) exceed the 5 MB shipping
budget; resnet_fer_small drops one block of the last stage (most of the weights,
little of the compute) to fit it. Its step costs about 3.5x the tiny one's, so on
2 CPU cores the schedule is 30 epochs instead of 45.
"""

from configs import ferplus_resnet_fer_tiny


def get_config():
    config = ferplus_resnet_fer_tiny.get_config()
    config.model = "resnet_fer_small"
    config.epochs = 30
    return config
