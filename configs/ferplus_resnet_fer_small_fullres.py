"""resnet_fer_small on FER+ at full resolution (stem stride 1), for a lent accelerator.

  python launch.py --config configs/ferplus_resnet_fer_small_fullres.py \
      --workdir runs/ferplus/resnet_fer_small_fullres --config.data_dir=../shared/data/ferplus

Why: full resolution made resnet_fer_tiny the shipped ensemble's strongest member,
and resnet_fer_small at stride 2 (configs/ferplus_resnet_fer_small.py) already matches
that member (the README's FER+ Table 5); this config gives it full resolution too, with
the tiny full-resolution run's 45 epochs. Untrained so far: at about 5 times the stride-2
compute per image it is for benchmarks/device.sh, not a CPU.
"""

from configs import ferplus_resnet_fer_small


def get_config():
    config = ferplus_resnet_fer_small.get_config()
    config.model_kwargs.stem_stride = 1
    config.epochs = 45
    return config
