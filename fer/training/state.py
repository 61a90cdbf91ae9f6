"""The train state and what builds it from a config: model, optimizer, schedule.

Kept apart from the step functions so that `checkpoint.restore_model` can rebuild
the exact structure of a saved state (to restore into) without importing the
training loop.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

PyTree = Any


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; checkpointed at epoch boundaries."""

    step: jax.Array
    params: PyTree
    batch_stats: PyTree   # {} for designs without BatchNorm.
    opt_state: PyTree
    rng: jax.Array        # Raw uint32 key; dropout uses fold_in(rng, step).


def input_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    return (int(config.image_size), int(config.image_size), int(config.channels))


def create_model(config: ml_collections.ConfigDict, num_classes: int):
    """The design named by `config.model`, with `config.model_kwargs`."""
    from fer import models  # Imported late: the zoo is heavy and optional here.

    kwargs = dict(config.model_kwargs)
    if config.half_precision:
        kwargs.setdefault("dtype", jnp.bfloat16)
    if config.model not in models.list_models():
        raise ValueError(f"config.model={config.model!r} is not a known design; "
                         f"known: {models.list_models()}")
    return models.create_model(config.model, num_classes=num_classes,
                               input_shape=input_shape(config), **kwargs)


def create_learning_rate_schedule(config: ml_collections.ConfigDict,
                                  steps_per_epoch: int) -> optax.Schedule:
    base = float(config.learning_rate)
    total = max(1, int(config.epochs) * max(1, steps_per_epoch))
    warmup = int(float(config.warmup_epochs) * steps_per_epoch)
    name = config.schedule
    if name == "constant":
        if warmup:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, base, warmup), optax.constant_schedule(base)],
                [warmup])
        return optax.constant_schedule(base)
    if name in ("cosine", "warmup_cosine"):
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0 if warmup else base, peak_value=base,
            warmup_steps=warmup, decay_steps=max(total, warmup + 1))
    raise ValueError(f"config.schedule={name!r}; expected constant, cosine or "
                     "warmup_cosine")


def create_optimizer(config: ml_collections.ConfigDict,
                     steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam by default (the seed's); weight decay and clipping by config."""
    lr = create_learning_rate_schedule(config, steps_per_epoch)
    name = config.optimizer
    wd = float(config.weight_decay)
    if name == "adam":
        tx = optax.adam(lr)
        if wd:  # Classic L2: added to the gradient before Adam's scaling.
            tx = optax.chain(optax.add_decayed_weights(wd), tx)
    elif name == "adamw":
        tx = optax.adamw(lr, weight_decay=wd)
    elif name == "sgd":
        tx = optax.sgd(lr, momentum=float(config.momentum), nesterov=True)
        if wd:
            tx = optax.chain(optax.add_decayed_weights(wd), tx)
    else:
        raise ValueError(f"config.optimizer={name!r}; expected adam, adamw or sgd")
    clip = float(config.grad_clip_norm)
    if clip:
        tx = optax.chain(optax.clip_by_global_norm(clip), tx)
    return tx


def create_train_state(rng: jax.Array, model, tx: optax.GradientTransformation,
                       shape: tuple[int, int, int]) -> TrainState:
    """Initialises parameters (eval mode, batch of one) and the optimizer state."""
    init_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
    variables = model.init({"params": init_rng, "dropout": dropout_rng},
                           jnp.zeros((1, *shape), jnp.float32), train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=batch_stats, opt_state=tx.init(params),
                      rng=state_rng)
