"""FER2013's unweighted recipe at full resolution (stem stride 1).

  python launch.py --config configs/fer2013_resnet_fer_tiny_fullres.py \
      --workdir runs/fer2013/resnet_fer_tiny_fullres --config.data_dir=../shared/data/fer2013

On FER+ the full-resolution run beat the stride-2 recipe by 2 to 5 points of
accuracy (configs/ferplus_resnet_fer_tiny_fullres.py). On FER2013 it did not; only
with mirror averaging does it edge past both stride-2 seeds combined (the README's
FER2013 Table 5, rows `_fullres*`). A step costs about 4 times the stride-2 one: 30
epochs took 100 minutes on 2 CPU cores where the stride-2 step runs at 580 images/s
(2026-12-01), and would take about 10 hours where it runs at 150.
"""

from configs import fer2013_resnet_fer_tiny_unweighted


def get_config():
    config = fer2013_resnet_fer_tiny_unweighted.get_config()
    config.model_kwargs.stem_stride = 1
    return config
