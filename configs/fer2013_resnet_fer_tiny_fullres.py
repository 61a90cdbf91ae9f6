"""FER2013's unweighted recipe at full resolution (stem stride 1), for an accelerator.

  python launch.py --config configs/fer2013_resnet_fer_tiny_fullres.py \
      --workdir runs/fer2013/resnet_fer_tiny_fullres --config.data_dir=../shared/data/fer2013

On FER+ the full-resolution run beat the stride-2 recipe by 2 to 5 points of
accuracy (configs/ferplus_resnet_fer_tiny_fullres.py); on 2 CPU cores a step costs
about 6 times as much (25 vs 153 images/s), about 10 hours for 30 epochs, so it is
for a lent accelerator (benchmarks/device.sh, docs/training.md).
"""

from configs import fer2013_resnet_fer_tiny_unweighted


def get_config():
    config = fer2013_resnet_fer_tiny_unweighted.get_config()
    config.model_kwargs.stem_stride = 1
    return config
