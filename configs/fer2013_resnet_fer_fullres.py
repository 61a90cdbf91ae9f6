"""FER2013's unweighted full-resolution recipe on the larger design (resnet_fer, 6.3M params).

  python launch.py --config configs/fer2013_resnet_fer_fullres.py \
      --workdir runs/fer2013/resnet_fer_fullres --config.data_dir=../shared/data/fer2013

Why: at full resolution resnet_fer_tiny (1.2M params) does no better on FER2013 than
at stem stride 2 (configs/fer2013_resnet_fer_tiny_fullres.py) and ends well short of
fitting its training faces, so its width, not the input resolution, is what limits it; the published 72-73% come from networks of
several million parameters. Untrained so far: at about 5 times the tiny design's
compute per image it is for a lent accelerator (benchmarks/device.sh).
"""

from configs import fer2013_resnet_fer_tiny_fullres


def get_config():
    config = fer2013_resnet_fer_tiny_fullres.get_config()
    config.model = "resnet_fer"
    return config
