"""Our design, a small residual network (fer/models/resnet.py), and its recipes.

  python launch.py --config configs/resnet_fer.py:size=tiny,data=ferplus \
      --workdir runs/ferplus/resnet_fer_tiny --config.data_dir=/path/to/ferplus

Arguments (`key=value,...` after the colon; each has a default):
  size=tiny|small|base  resnet_fer_tiny (widths 32-64-128-256, one block per stage,
      1.2M params, the shipped design), resnet_fer_small (3.6M: resnet_fer less one
      block of the last stage, to fit the 5 MB int8 budget) or resnet_fer (48-96-192-384,
      two blocks per stage, 6.3M).
  data=ferplus|fer2013|any  the recipe (RECIPES below, each written out in full):
      ferplus  the shipped model's run, tuned for 2 CPU cores: FER+'s vote
               distributions as soft targets (the FER+ paper's best mode, no label
               smoothing on top); square-root inverse-frequency class weights
               (contempt and disgust are 60x and 50x rarer than neutral, and the seed
               never once predicted contempt); augmentation (flip, shift, rotation,
               scale, noise); AdamW with a warm-up cosine schedule over 45 epochs.
      fer2013  FER2013's run (7 classes, one hard label per image): label smoothing
               0.1 stands in for FER+'s soft targets; no class weights, since its goal
               is plain accuracy (prior correction at inference, fer.export.make_ensemble,
               moves it towards the rare classes by as much as wanted); 30 epochs.
      any      the plain residual recipe (Adam, warm-up cosine, label smoothing 0.1,
               30 epochs) on whatever --config.dataset names (the demo set by default).
  stride=0|1|2  the stem's stride; 0 = the recipe's (2 for ferplus and fer2013: 5-6x
      cheaper per image at 48 px, which buys many more epochs of augmented data on a
      CPU; the design's own otherwise). stride=1 sees every pixel: about 4x the
      compute per image, for an accelerator (scripts/device.sh).
  weights=none|sqrt|full  class weights (inverse training frequency to the power 0,
      0.5 or 1); '' = the recipe's (sqrt for ferplus, none otherwise).
  seed=N  initial weights, data order, augmentation and dropout: the ensemble members
      differ only in it (or in stride).
  epochs=N  0 = the recipe's.
  distill=W  knowledge distillation: each target becomes W x a teacher's probabilities +
      (1 - W) x the recipe's own (0 = off). The teacher's file is a path, so a flag:
      --config.distill_targets=runs/teacher/ferplus_train.npz, made by
      `python -m fer.training.teacher` (research/distillation).
  la=T  logit-adjusted loss (Menon et al. 2021): T x log(training prior) added to the
      logits in the training loss only (0 = off; 1 = the paper's); the prior is the
      targets' (FER+: the votes'; --config.logit_adjustment_prior=labels for the label
      counts). It does the class weights' job another way; pair it with weights=none
      to not do it twice.
  mixup=A  mixup (Zhang et al. 2018): faces and targets blended, lam ~ Beta(A, A)
      (0 = off).

The shipped ensemble's members: `size=tiny,data=ferplus`, the same with `seed=1`, and
with `stride=1`. The README's tables name each run by such a string (docs/training.md).
"""

from configs import default

SIZES = {"tiny": "resnet_fer_tiny", "small": "resnet_fer_small", "base": "resnet_fer"}

_EXPORTS = ("float32", "float16", "dynamic_range")
RECIPES = {
    "ferplus": dict(
        dataset="ferplus", label_mode="probability", label_smoothing=0.0, augment=True,
        optimizer="adamw", learning_rate=2e-3, weight_decay=0.05, schedule="warmup_cosine",
        warmup_epochs=1.0, epochs=45, stem_stride=2, weights="sqrt", export_variants=_EXPORTS),
    "fer2013": dict(
        dataset="fer2013", label_mode="majority", label_smoothing=0.1, augment=True,
        optimizer="adamw", learning_rate=2e-3, weight_decay=0.05, schedule="warmup_cosine",
        warmup_epochs=1.0, epochs=30, stem_stride=2, weights="none", export_variants=_EXPORTS),
    "any": dict(
        label_smoothing=0.1, schedule="warmup_cosine", warmup_epochs=1.0, epochs=30),
}
# weights= -> class_weights, class_weight_power (the power left at 0.5 when off, as the
# FER2013 runs recorded it; it is read only when class_weights is on).
_WEIGHTS = {"none": (False, 0.5), "sqrt": (True, 0.5), "full": (True, 1.0)}


def get_config(arg: str | None = None):
    arg = default.parse_arg(arg, size="tiny", data="ferplus", stride=0, weights="", seed=0,
                            epochs=0, distill=0.0, la=0.0, mixup=0.0)
    for key, value, known in (("size", arg.size, SIZES), ("data", arg.data, RECIPES),
                              ("weights", arg.weights or "none", _WEIGHTS)):
        if value not in known:
            raise ValueError(f"configs/resnet_fer.py: {key}={value!r}; expected one of "
                             f"{list(known)}")
    recipe = RECIPES[arg.data]
    stride = arg.stride or recipe.get("stem_stride", 0)  # 0: the design's own.
    weights = arg.weights or recipe.get("weights", "")  # '': the defaults' (unweighted).
    config = default.get_config()
    config.update({k: v for k, v in recipe.items() if k not in ("stem_stride", "weights")})
    config.model = SIZES[arg.size]
    if stride:
        config.model_kwargs.stem_stride = stride
    if weights:
        config.class_weights, config.class_weight_power = _WEIGHTS[weights]
    config.seed = arg.seed
    config.epochs = arg.epochs or config.epochs
    config.distill_weight = arg.distill
    config.logit_adjustment = arg.la
    config.mixup_alpha = arg.mixup
    return config
