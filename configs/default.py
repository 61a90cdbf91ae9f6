"""Defaults for every run: the seed's recipe (Adam, lr 1e-3, categorical cross entropy).

Every field a run reads is here, with its default; the other configs start from
this one and take arguments in big_vision's fashion (`configs/x.py:key=value,...`,
see parse_arg). Runs as is on the embedded demo set, which needs no download:

    python launch.py --config configs/default.py --workdir runs/demo

Point it at real data with `--config.dataset` and the data folder, given by
`--config.data_dir` or found at `$FER_DATA/<dataset>` (no config holds a path), e.g.
FER+ in Microsoft's layout (FER2013Train/, FER2013Valid/, FER2013Test/ with label.csv):

    python launch.py --config configs/seed_designs.py:model=xcao2 --workdir runs/xcao2 \
        --config.dataset=ferplus --config.data_dir=/path/to/ferplus
"""

from typing import Any

import ml_collections


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """`key=value,key=value` (the text after `:` in --config) over `defaults`.

    Each value is read as its default's type (bool: true/false). An unknown key or
    a value that does not read is a ValueError naming it and what is known, so a
    typo in a recipe never trains the default silently.
    """
    parsed = dict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or key not in defaults:
            raise ValueError(f"config argument {item!r}: expected key=value with key one of "
                             f"{sorted(defaults) or 'none (this config takes no arguments)'}")
        kind = type(defaults[key])
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError(f"config argument {key}={value!r}: expected true or false")
            parsed[key] = value.lower() == "true"
            continue
        try:
            parsed[key] = kind(value)
        except ValueError:
            raise ValueError(f"config argument {key}={value!r}: expected "
                             f"{kind.__name__}") from None
    return ml_collections.ConfigDict(parsed)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    parse_arg(arg)  # Takes none: refuses any.
    config = ml_collections.ConfigDict()

    # Data (read by fer.data.input_pipeline). 'demo' is a small synthetic set embedded
    # in fer itself so that a fresh checkout runs end to end; it says nothing about
    # real accuracy. Real sets: 'ferplus', 'fer2013', 'affectnet', 'image_folder'.
    config.dataset = "demo"
    config.data_dir = ""     # Publisher's files ('' = $FER_DATA/<dataset>); a flag, not a config's.
    config.tfds_dir = ""     # Where built TFDS datasets go ('' = TFDS's default).
    config.image_size = 48
    config.channels = 1
    config.preprocessing = "none"  # none | histeq | dog | gamma (seed Table 4).
    config.label_mode = "majority"  # FER+: majority (hard) | probability (votes).
    config.augment = False
    # Augmentation strengths (fer.data.augment), used when augment is on.
    config.augment_flip = True
    config.augment_max_shift = 0.08     # Fraction of the image side.
    config.augment_max_rotation = 10.0  # Degrees.
    config.augment_max_scale = 0.10     # Zoom in or out by up to this fraction.
    config.augment_noise_std = 0.02     # Gaussian pixel noise on the [0, 1] scale.
    config.balanced_sampling = False
    config.class_weights = False   # Weight the loss by inverse training frequency...
    config.class_weight_power = 1.0  # ...to this power (0.5 = square root, milder).
    config.num_workers = 0         # grain worker processes (0 = in-process).
    config.train_split = "train"
    config.eval_split = "validation"
    config.affectnet_protocol = "official"
    config.affectnet_reduced = False
    config.seed = 0
    # The comparison protocol a run follows (configs/table5.py sets it; '' = none): rows
    # of benchmarks.compare under different protocols never share a table.
    config.protocol = ""

    # Model: a name of fer.models.list_models() and its keyword arguments.
    config.model = "xcao"
    config.model_kwargs = ml_collections.ConfigDict()
    config.half_precision = False  # bfloat16 compute, float32 parameters.

    # Optimisation: the seed's Adam with learning rate 1e-3.
    config.optimizer = "adam"      # adam | adamw | sgd
    config.learning_rate = 1e-3
    config.momentum = 0.9          # sgd only.
    config.schedule = "constant"   # constant | cosine | warmup_cosine
    config.warmup_epochs = 0.0
    config.weight_decay = 0.0      # Decoupled (adamw) or L2 added to the gradient.
    config.grad_clip_norm = 0.0    # 0 = no clipping.
    config.label_smoothing = 0.0
    # Knowledge distillation (fer.data.soft_targets): each training target becomes
    # distill_weight * teacher probabilities + (1 - distill_weight) * its own target.
    # distill_targets: the .npz of `python -m fer.training.teacher` (a path, so a flag
    # like data_dir, never a config's); '' with weight 0 = off.
    config.distill_targets = ""
    config.distill_weight = 0.0
    # Logit-adjusted loss (Menon et al. 2021): the training loss sees logits +
    # logit_adjustment * log(training class prior), so the network itself learns the
    # rare classes' margins; evaluation and export use the plain logits. 0 = off;
    # 1 = the paper's balanced-error setting.
    config.logit_adjustment = 0.0
    # Its prior: 'targets' (the mass of what the loss sees: FER+'s votes with
    # label_mode='probability') or 'labels' (the label counts).
    config.logit_adjustment_prior = "targets"
    # Mixup (Zhang et al. 2018): each training face and its target blended with another's,
    # lam ~ Beta(mixup_alpha, mixup_alpha) per batch. 0 = off; 0.2-0.4 is usual.
    config.mixup_alpha = 0.0
    # Global batch over all devices of all hosts; 0 = by hardware
    # (per_device_batch_size x jax.device_count()).
    config.batch_size = 0
    config.per_device_batch_size = 64
    config.eval_batch_size = 0     # 0 = same as batch_size.
    config.epochs = 10             # "10 epochs will be enough" (seed, section 3.4).
    config.steps_per_epoch = 0     # 0 = the whole training split each epoch.

    # Bookkeeping.
    config.log_every_steps = 50
    config.checkpoint_every_epochs = 1
    config.checkpoint_every_steps = 0  # Also mid-epoch, every this many steps (0 = off).
    config.keep_checkpoints = 2    # Latest ones; the best is kept apart.
    config.progress_bar = True

    # After training: export variants (fer.export) and the evaluation split.
    config.export_variants = ("float32",)
    config.split = "validation"    # --mode=evaluate scores this split.
    config.checkpoint = "best"     # --mode=evaluate: best | latest | path of an export dir.
    return config
