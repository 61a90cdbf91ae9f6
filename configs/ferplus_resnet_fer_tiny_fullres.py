"""The shipped recipe at full resolution: stem stride 1, for an accelerator.

  python launch.py --config configs/ferplus_resnet_fer_tiny_fullres.py \
      --workdir runs/ferplus/resnet_fer_tiny_fullres --config.data_dir=../shared/data/ferplus

configs/ferplus_resnet_fer_tiny.py halves the 48 px input in the stem so that 45
epochs fit 2 CPU cores (~5x cheaper per image). This is the same network (same
1.2M parameters) seeing every pixel: about 4x the compute per image, which an
accelerator pays in seconds; on a phone it is still a few milliseconds per face.
"""

from configs import ferplus_resnet_fer_tiny


def get_config():
    config = ferplus_resnet_fer_tiny.get_config()
    config.model_kwargs.stem_stride = 1
    return config
