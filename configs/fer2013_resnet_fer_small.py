"""FER2013's unweighted recipe on resnet_fer_small (3.6M params), stem stride 2.

  python launch.py --config configs/fer2013_resnet_fer_small.py \
      --workdir runs/fer2013/resnet_fer_small --config.data_dir=../shared/data/fer2013

Why: a second member for FER2013's best model (resnet_fer over ten views) that keeps
the pair within the 10M-parameter goal (6.3M + 3.6M); the full-resolution tiny run
added nothing as a second member, being much weaker. Same step cost as resnet_fer
(about 80 minutes for 30 epochs on 2 CPU cores).
"""

from configs import fer2013_resnet_fer


def get_config():
    config = fer2013_resnet_fer.get_config()
    config.model = "resnet_fer_small"
    return config
