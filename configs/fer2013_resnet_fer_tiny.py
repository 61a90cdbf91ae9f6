"""The shipped design on FER2013 (7 classes, Kaggle's fer2013.csv), same recipe as FER+.

  python launch.py --config configs/fer2013_resnet_fer_tiny.py \
      --workdir runs/fer2013/resnet_fer_tiny --config.data_dir=../shared/data/fer2013

FER2013 has one hard label per image (no votes), so label smoothing 0.1 stands in
for FER+'s soft targets; disgust is 16x rarer than happy, hence the square-root
class weights. 30 epochs: about 25 minutes on 2 CPU cores on 2026-11-28's host,
about 100 on 2026-12-01's (200 s per epoch; the same step ran 4x slower there).
"""

from configs import ferplus_resnet_fer_tiny


def get_config():
    config = ferplus_resnet_fer_tiny.get_config()
    config.dataset = "fer2013"
    config.data_dir = "../shared/data/fer2013"
    config.label_mode = "majority"
    config.label_smoothing = 0.1
    config.epochs = 30
    return config
