"""Table 5 (the seed's comparison of designs) under one protocol for all ten designs.

  python launch.py --config configs/table5.py:model=xcao2,protocol=table5,seed=0 \
      --workdir runs/table5/xcao2 --config.data_dir=/path/to/ferplus

Every row of the table is one such argument string (scripts/table5.sh trains them all).
Within a protocol the configs differ only in the design (model, model_kwargs), its input
side and the seed: the same FER+ faces, labels, augmentation, optimizer, schedule, class
weights, epochs and global batch, and the same best checkpoint (validation balanced
accuracy, fer.training.train).

Arguments:
  model=  one of DESIGNS: the seed's seven (configs/seed_designs.py) and our three
      (configs/resnet_fer.py's sizes, with the shipped stem stride 2).
  protocol=table5|thesis
      table5  the shipped FER+ recipe (configs/resnet_fer.py, data=ferplus: vote
              distributions as soft targets, square-root class weights, augmentation,
              AdamW with warm-up cosine) for 30 epochs.
      thesis  the seed's own (configs/default.py: categorical cross entropy on one hard
              label per face, Adam at Keras's defaults, lr 1e-3, no augmentation), for
              the 10 epochs of its section 3.4, on FER+.
  seed=N  initial weights, data order, augmentation, dropout.

Input side: 48x48 (FER+'s own) for every design but InceptionV3, at 75x75, the smallest
Keras's layer-for-layer network accepts (below it fer.models.reference swaps its VALID
reductions for SAME: another network). MobileNet v1 runs at 48 unchanged (its 'SAME'
stride-2 layers leave a 2x2 map, as Keras's does from 32 px up); configs/seed_designs.py
keeps 96 for both, as earlier runs used.
"""

from configs import default
from configs import resnet_fer
from configs import seed_designs

_FERPLUS = resnet_fer.RECIPES["ferplus"]
# Design -> (input side, model_kwargs).
DESIGNS = {
    **{name: (48, {}) for name in seed_designs.IMAGE_SIZES},
    "inception_v3": (75, {}),
    **{name: (48, {"stem_stride": _FERPLUS["stem_stride"]})
       for name in resnet_fer.SIZES.values()},
}
# The designs under 2M parameters, trained with three seeds for a spread (the test checks
# the count): scripts/table5.sh reads it.
MULTI_SEED = ("xcao", "xcao2", "fractal", "resnet_fer_tiny")
_FERPLUS_WEIGHTS = dict(zip(("class_weights", "class_weight_power"),
                            resnet_fer._WEIGHTS[_FERPLUS["weights"]]))
# Protocol -> fields over configs/default.py (the thesis's recipe itself).
PROTOCOLS = {
    "table5": {**{k: v for k, v in _FERPLUS.items() if k not in ("stem_stride", "weights")},
               **_FERPLUS_WEIGHTS, "epochs": 30, "batch_size": 64},
    "thesis": {"dataset": "ferplus", "epochs": 10, "batch_size": 64},
}


def spec(model: str, protocol: str, seed: int = 0) -> str:
    """The --config string of one row: what benchmarks.compare prints beside it."""
    return f"configs/table5.py:model={model},protocol={protocol},seed={seed}"


def get_config(arg: str | None = None):
    arg = default.parse_arg(arg, model="xcao2", protocol="table5", seed=0)
    for key, value, known in (("model", arg.model, DESIGNS),
                              ("protocol", arg.protocol, PROTOCOLS)):
        if value not in known:
            raise ValueError(f"configs/table5.py: {key}={value!r}; expected one of "
                             f"{list(known)}")
    config = default.get_config()
    config.update(PROTOCOLS[arg.protocol])
    config.protocol = arg.protocol
    config.model = arg.model
    config.image_size, model_kwargs = DESIGNS[arg.model]
    config.model_kwargs.update(model_kwargs)
    config.seed = arg.seed
    return config
