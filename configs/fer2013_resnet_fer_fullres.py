"""FER2013's unweighted full-resolution recipe on the larger design (resnet_fer, 6.3M params).

  python launch.py --config configs/fer2013_resnet_fer_fullres.py \
      --workdir runs/fer2013/resnet_fer_fullres --config.data_dir=../shared/data/fer2013

Why: on FER2013 resnet_fer_tiny (1.2M params) gains nothing from full resolution
(configs/fer2013_resnet_fer_tiny_fullres.py), while this design at stride 2
(configs/fer2013_resnet_fer.py) does better than both; this config gives it the full
resolution too. Untrained so far: at about 5 times the stride-2 compute per image
(37 images/s on 2026-12-01's 2 cores) it is for a lent accelerator (benchmarks/device.sh).
"""

from configs import fer2013_resnet_fer_tiny_fullres


def get_config():
    config = fer2013_resnet_fer_tiny_fullres.get_config()
    config.model = "resnet_fer"
    return config
