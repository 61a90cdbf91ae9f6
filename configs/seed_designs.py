"""The seed's designs with the seed's recipe (configs/default.py), one per `model=`.

  python launch.py --config configs/seed_designs.py:model=xcao2 --workdir runs/xcao2 \
      --config.dataset=ferplus --config.data_dir=/path/to/ferplus

Without --config.dataset it trains on the embedded demo set. The designs:
  baseline      two blocks of two 3x3 convs (32, 64) + FC 512 (seed Figure 12);
  baseline_bn   the baseline with BatchNorm and dropout (Figure 17);
  xcao          X. Cao's tips: stride-2 first pool, 16 -> 128 channels (Figure 18 left);
  xcao2         two symmetric xcao streams joined by an add (Figure 18 right; the seed's best);
  fractal       two fractal paths, max merge, FC with BN (Figures 19-20);
  mobilenet_v1  MobileNet v1 (alpha 1) on gray faces, the seed's reference: its five
                stride-2 stages would shrink 48x48 to 2x2, so 96x96 (a 3x3 map);
  inception_v3  InceptionV3 (the seed's "GoogleNet"): Keras's needs at least 75x75 and
                the seed used 224x224; 96x96 keeps the 48x48 faces' detail at a quarter
                of the seed's compute.
"""

from configs import default

# Design -> input side in pixels.
IMAGE_SIZES = {"baseline": 48, "baseline_bn": 48, "xcao": 48, "xcao2": 48, "fractal": 48,
               "mobilenet_v1": 96, "inception_v3": 96}


def get_config(arg: str | None = None):
    arg = default.parse_arg(arg, model="xcao2")
    if arg.model not in IMAGE_SIZES:
        raise ValueError(f"configs/seed_designs.py: model={arg.model!r}; expected one of "
                         f"{list(IMAGE_SIZES)}")
    config = default.get_config()
    config.model = arg.model
    config.image_size = IMAGE_SIZES[arg.model]
    return config
