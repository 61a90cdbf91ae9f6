"""Training loop: pure jit-compiled steps, data-parallel over every device.

The steps are pure functions of (state, batch). `train_and_evaluate` compiles
them once with `jax.jit` over a one-axis mesh of all devices of all hosts: the
batch is sharded on 'data', the state replicated, so XLA inserts the gradient
all-reduce (today's replacement for pmap). Each host feeds its own shard of the
data (one input shard per process).

A run is a pure function of its config: data order and augmentation depend
only on (seed, epoch, position), dropout on (seed, step), and checkpoints (at
epoch ends, and every config.checkpoint_every_steps steps) hold the one training
iterator's state, so a killed run started again with the same command resumes
from its last checkpoint, mid-epoch too, and ends in exactly the state of an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time
from typing import Any, Callable, Iterable, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.data import input_pipeline
from fer.evaluation import evaluate as evaluate_lib
from fer.evaluation.evaluate import create_mesh, pad_batch, shard_batch  # Shared.
from fer.models import ensemble as ensemble_lib
from fer.training import checkpoint as checkpoint_lib
from fer.training import config_check
from fer.training import state as state_lib
from fer.training import writers as writers_lib
from fer.training.state import TrainState, input_shape

Batch = Mapping[str, Any]


# ----------------------------------------------------------------------------
# Loss and pure steps.

def cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array,
                  class_weights: jax.Array | None = None,
                  label_smoothing: float = 0.0) -> jax.Array:
    """Mask-weighted mean cross entropy against hard (one-hot) or soft targets.

    With class weights an example counts as much as the weight of its target
    (the vote-weighted mean for soft FER+ targets); the mean is over weights,
    so the loss keeps its scale.
    """
    logits = logits.astype(jnp.float32)
    num_classes = logits.shape[-1]
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    per_example = optax.softmax_cross_entropy(logits, targets)
    weights = mask
    if class_weights is not None:
        weights = weights * (targets @ class_weights)
    return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1e-9)


def _batch_metrics(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Sums (not means) so that they add up over batches, devices and hosts."""
    logits = logits.astype(jnp.float32)
    mask = batch["mask"]
    ce = optax.softmax_cross_entropy(logits, batch["target"])
    correct = jnp.argmax(logits, -1) == batch["label"]
    return {"loss_sum": jnp.sum(ce * mask),
            "correct": jnp.sum(correct * mask),
            "count": jnp.sum(mask)}


def mixup(batch: Batch, rng: jax.Array, alpha: float) -> Batch:
    """The batch with each face blended into another's (Zhang et al. 2018): image and
    target both lam * own + (1 - lam) * partner's, lam ~ Beta(alpha, alpha), one lam per
    batch and partners a permutation. A padding example (mask 0) is nobody's partner:
    a face whose partner would be one keeps itself. `label` and `mask` are unchanged.
    """
    lam_rng, perm_rng = jax.random.split(rng)
    lam = jax.random.beta(lam_rng, alpha, alpha)
    size = batch["image"].shape[0]
    perm = jax.random.permutation(perm_rng, size)
    partner = jnp.where(batch["mask"][perm] > 0, perm, jnp.arange(size))

    def blend(x):
        x = x.astype(jnp.float32)
        return lam * x + (1.0 - lam) * x[partner]

    return {**batch, "image": blend(batch["image"]).astype(batch["image"].dtype),
            "target": blend(batch["target"])}


def train_step(state: TrainState, batch: Batch, *, model, tx,
               class_weights: jax.Array | None = None,
               label_smoothing: float = 0.0,
               logit_offset: jax.Array | None = None,
               mixup_alpha: float = 0.0
               ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step on one global batch; returns the new state and sums.

    `logit_offset` (K,), when given, is added to the logits in the loss only (the
    logit-adjusted loss: tau * log prior, see `logit_adjustment`); the metrics
    score the plain logits, as evaluation and export do. `mixup_alpha` > 0 trains on
    `mixup`'s blends (the metrics then score the blends against each face's own label).
    """
    dropout_rng = jax.random.fold_in(state.rng, state.step)
    has_bn = bool(jax.tree.leaves(state.batch_stats))
    if mixup_alpha > 0:
        batch = mixup(batch, jax.random.fold_in(dropout_rng, 1), mixup_alpha)

    def loss_fn(params):
        variables = {"params": params}
        if has_bn:
            variables["batch_stats"] = state.batch_stats
        logits, updates = model.apply(
            variables, batch["image"], train=True, rngs={"dropout": dropout_rng},
            mutable=["batch_stats"])
        adjusted = logits if logit_offset is None else (
            logits.astype(jnp.float32) + logit_offset)
        loss = cross_entropy(adjusted, batch["target"], batch["mask"],
                             class_weights, label_smoothing)
        return loss, (logits, updates)

    (_, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, param_updates),
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state)
    return new_state, _batch_metrics(logits, batch)


def model_variables(state: TrainState) -> dict[str, Any]:
    """What `module.apply` needs from a state: params (+ batch_stats with BN)."""
    variables = {"params": state.params}
    if jax.tree.leaves(state.batch_stats):
        variables["batch_stats"] = state.batch_stats
    return variables


# ----------------------------------------------------------------------------
# Devices and batches.

# Launchers jax.distributed.initialize() detects by itself, by the variable each sets.
_AUTO_DETECTED = {"SLURM_NTASKS": "SLURM", "OMPI_COMM_WORLD_SIZE": "Open MPI"}
_EXPLICIT = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def distributed_arguments(env: Mapping[str, str]) -> dict[str, Any] | None:
    """jax.distributed.initialize's arguments for this launch; None for a single process.

    The explicit JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID are
    passed on (this jax reads only the address itself); SLURM, Open MPI and TPU pod
    slices are left to jax's own cluster detection (empty arguments).
    """
    given = {name: env.get(name, "").strip() for name in _EXPLICIT}
    if any(given.values()):
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise ValueError(f"launched with {', '.join(n for n in _EXPLICIT if given[n])} "
                             f"but without {', '.join(missing)}: a multi-process launch "
                             f"needs all of {', '.join(_EXPLICIT)}")
        try:
            count, index = int(given["JAX_NUM_PROCESSES"]), int(given["JAX_PROCESS_ID"])
        except ValueError:
            raise ValueError(f"JAX_NUM_PROCESSES={given['JAX_NUM_PROCESSES']!r} and "
                             f"JAX_PROCESS_ID={given['JAX_PROCESS_ID']!r} must be "
                             "integers") from None
        if not 0 <= index < count:
            raise ValueError(f"JAX_PROCESS_ID={index} is not in 0..{count - 1} "
                             f"(JAX_NUM_PROCESSES={count})")
        if count == 1:
            return None
        return {"coordinator_address": given["JAX_COORDINATOR_ADDRESS"],
                "num_processes": count, "process_id": index}
    several = (any(int(env.get(name, "1") or 1) > 1 for name in _AUTO_DETECTED)
               or "," in env.get("TPU_WORKER_HOSTNAMES", ""))
    return {} if several else None


def maybe_initialize_distributed(env: Mapping[str, str] | None = None) -> None:
    """`jax.distributed.initialize()` when launched as one of several processes.

    Must run before anything touches a device. CPU processes exchange their
    collectives over gloo (the setting is ignored by GPU and TPU backends).
    """
    arguments = distributed_arguments(os.environ if env is None else env)
    if arguments is None or jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    logging.info("Several processes: jax.distributed.initialize(%s)", arguments)
    jax.distributed.initialize(**arguments)


def global_batch_size(config: ml_collections.ConfigDict,
                      num_devices: int | None = None) -> int:
    num_devices = jax.device_count() if num_devices is None else num_devices
    size = int(config.batch_size) or int(config.per_device_batch_size) * num_devices
    if size % num_devices:
        raise ValueError(f"config.batch_size={size} must be a multiple of the "
                         f"{num_devices} devices it is split over")
    return size


# XLA's CPU compiler (jaxlib 0.10) hands every convolution to YNNPACK by default, which
# runs these small nets' weight gradients (convolutions with 24x24 windows) at a fraction
# of the speed of its own (Eigen) convolutions: resnet_fer_tiny's step goes from 410 to
# 650 img/s on 2 cores, xcao2's from 165 to 205 (benchmarks.train_speed). Dots and
# reductions stay on YNNPACK, where they are faster. XLA_FLAGS naming the flag wins.
_YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
CPU_COMPILER_OPTIONS = {_YNN_FLAG: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def compiler_options(mesh: Mesh) -> dict[str, str] | None:
    """CPU_COMPILER_OPTIONS on a CPU mesh, unless the user set the flag in XLA_FLAGS."""
    if (mesh.devices.flat[0].platform != "cpu"
            or _YNN_FLAG in os.environ.get("XLA_FLAGS", "")):
        return None
    return dict(CPU_COMPILER_OPTIONS)


def logit_adjustment(counts: np.ndarray, tau: float) -> np.ndarray | None:
    """tau * log(training prior), centred: what the logit-adjusted loss adds to the logits.

    Menon et al. (2021): training on softmax(f(x) + tau log pi) makes f itself carry
    a margin for the rare classes, at training time, instead of correcting its
    prior afterwards (fer.models.ensemble's prior correction at inference). A class
    absent from training counts half an example, as there. None when tau is 0.
    """
    if not tau:
        return None
    return np.asarray(ensemble_lib.prior_shift(counts, float(tau)), np.float32)


def training_prior(config, info) -> np.ndarray:
    """Per-class mass of the training split that the logit-adjusted loss takes as its prior.

    config.logit_adjustment_prior 'targets': the mass of the targets the loss sees,
    so the FER+ votes' own when training on them (label_mode='probability'), since
    raters spread votes to rare classes that few majorities reach (FER+ train:
    contempt 1.7 % of the votes, 0.6 % of the labels; the labels' prior shifts
    contempt by about log 3 too much). 'labels': the label counts.
    """
    source = str(config.logit_adjustment_prior)
    ok, valid = config_check.RULES["logit_adjustment_prior"]
    if not ok(source):
        raise ValueError(f"config.logit_adjustment_prior must be {valid}, got {source!r}")
    split = config.train_split
    if (source == "targets" and str(config.label_mode) == "probability"
            and split in info.vote_mass):
        return np.asarray(info.vote_mass[split], np.float64)
    return np.asarray(info.class_counts[split], np.float64)


def compile_steps(model, tx, mesh: Mesh, num_classes: int,
                  class_weights: np.ndarray | None = None,
                  label_smoothing: float = 0.0,
                  logit_offset: np.ndarray | None = None,
                  mixup_alpha: float = 0.0
                  ) -> tuple[Callable, Callable]:
    """jit-compiled (train_step, predict): batch sharded, state replicated.

    predict is fer.evaluation.evaluate.compile_predict's: (variables, batch) ->
    log-probabilities, labels and mask of the global batch on every process.
    """
    data = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    weights = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)
    offset = None if logit_offset is None else jnp.asarray(logit_offset, jnp.float32)
    p_train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, class_weights=weights,
                          label_smoothing=label_smoothing, logit_offset=offset,
                          mixup_alpha=float(mixup_alpha)),
        in_shardings=(replicated, data), out_shardings=(replicated, replicated),
        donate_argnums=0, compiler_options=compiler_options(mesh))
    return p_train, evaluate_lib.compile_predict(model, mesh)


# ----------------------------------------------------------------------------
# Evaluation over a split.

def _label_set(info) -> labels_lib.LabelSet:
    label_set = info.label_set
    return labels_lib.get_label_set(label_set) if isinstance(label_set, str) else label_set


def model_spec(config: ml_collections.ConfigDict,
               label_set: labels_lib.LabelSet) -> spec_lib.ModelSpec:
    return spec_lib.ModelSpec.for_label_set(
        design=config.model, label_set=label_set.name,
        input_shape=input_shape(config), preprocessing=config.preprocessing,
        extra={"dataset": config.dataset,
               "model_kwargs": dict(config.model_kwargs)})


def _write_run_files(config, workdir: str, spec: spec_lib.ModelSpec) -> None:
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:  # Other processes may be reading it.
        f.write(config.to_json_best_effort(indent=2))
    os.replace(path + ".tmp", path)
    spec.save(workdir)


# Fields that change the shape of the saved state: a workdir cannot resume across them.
_RUN_IDENTITY = ("model", "model_kwargs", "image_size", "channels", "dataset", "optimizer")


def _check_same_run(config: ml_collections.ConfigDict, workdir: str) -> None:
    """A clear error instead of a failed restore when a workdir holds another run."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path) or not os.path.isdir(
            os.path.join(workdir, checkpoint_lib.CHECKPOINT_DIR)):
        return
    with open(path) as f:
        saved = json.load(f)
    current = json.loads(config.to_json_best_effort())
    changed = [k for k in _RUN_IDENTITY if k in saved and saved[k] != current.get(k)]
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"{workdir} holds a run with a different config ({details}); it resumes "
            f"only with the same settings. Use a new --workdir.")


def _check_finite(sums: Mapping[str, Any], *, epoch: int, step: int,
                  last_good: int, checkpoint_dir: str) -> None:
    loss = float(sums["loss_sum"])
    if not np.isfinite(loss):
        kept = (f"the last good checkpoint (epoch {last_good}) is kept in "
                f"{checkpoint_dir}" if last_good else "no checkpoint had been written yet")
        raise FloatingPointError(
            f"Training loss became {loss} in epoch {epoch + 1} (by step {step}); "
            f"stopping. {kept}. Lower config.learning_rate, set "
            f"config.grad_clip_norm, or check the data for bad values.")


def _train_epoch(p_train: Callable, state: TrainState, batches: Iterable[Batch], *,
                 batch_size: int, sharding: NamedSharding, progress, log_every: int,
                 on_nan: Callable, on_log: Callable[[int, Mapping[str, float]], None],
                 on_step: Callable[[int, TrainState], None] = lambda step, state: None,
                 ) -> tuple[TrainState, dict[str, Any] | None]:
    """Runs one epoch's steps; returns the state and the epoch's metric sums (host).

    Sums stay on device between steps (no host sync per step); at every global
    step that is a multiple of `log_every` they are fetched for the progress
    bar, the NaN guard and `on_log(step, sums since the last log)`.
    """
    sums, logged = None, None
    local_size = batch_size // jax.process_count()
    step = int(state.step)  # Counted on the host from here: no sync per step.
    for batch in batches:
        state, metrics = p_train(state, shard_batch(pad_batch(batch, local_size), sharding))
        sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        step += 1
        on_step(step, state)  # E.g. a mid-epoch checkpoint.
        progress.update(batch_size)
        if step % max(1, log_every) == 0:
            host = jax.device_get(sums)
            on_nan(host, step=step)
            on_log(step, {k: float(host[k]) - (float(logged[k]) if logged else 0.0)
                          for k in ("loss_sum", "correct", "count")})
            logged = host
            progress.set_postfix(loss=f"{host['loss_sum'] / host['count']:.3f}",
                                 acc=f"{host['correct'] / host['count']:.3f}")
    if sums is None:
        return state, None
    host = jax.device_get(sums)
    on_nan(host, step=step)
    return state, host


def _epoch_line(row: Mapping[str, Any], epochs: int, is_best: bool) -> str:
    def fmt(x):
        return "n/a" if x is None else f"{x:.4f}"
    return (f"epoch {row['epoch']}/{epochs}: train loss {fmt(row['train_loss'])} "
            f"acc {fmt(row['train_accuracy'])} | val loss {fmt(row['val_loss'])} "
            f"acc {fmt(row['val_accuracy'])} balanced {fmt(row['val_balanced_accuracy'])}"
            + (" (best)" if is_best else ""))


@dataclasses.dataclass
class TrainResult:
    """What a run leaves in memory for its caller: evaluate and export need no reload.

    `best_variables` (a host copy, taken when the epoch was best) and
    `best_summary` (its validation evaluation on `config.eval_split`, report.json
    schema) are those of the best checkpoint; after a resume whose best epoch came
    before the restart, that checkpoint is restored once and scored by the same
    compiled eval step.
    """

    state: TrainState
    history: list[dict[str, Any]]
    model: Any  # The Flax module.
    spec: spec_lib.ModelSpec
    info: Any  # The dataset info (label set, split sizes, class counts, skipped).
    best_epoch: int
    best_variables: dict[str, Any]
    best_summary: dict[str, Any]


def train_and_evaluate(
        config: ml_collections.ConfigDict, workdir: str, *,
        on_epoch_end: Callable[[int, TrainState], None] | None = None,
) -> TrainResult:
    """Trains `config.epochs` epochs (resuming from `workdir` if it has a checkpoint).

    Validates each epoch on `config.eval_split`, logs to config.json, model.json,
    metrics.jsonl and TensorBoard, keeps the latest checkpoints and the best by
    validation balanced accuracy. `on_epoch_end(epoch, state)` runs after each
    epoch's checkpoint is saved (e.g. for early stopping by raising).
    Returns the final state, the per-epoch history and the best epoch's variables
    and validation summary (TrainResult).
    """
    workdir = os.path.abspath(workdir)
    info = input_pipeline.get_dataset_info(config)
    label_set = _label_set(info)
    num_classes = label_set.num_classes
    spec = model_spec(config, label_set)

    mesh = create_mesh()
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    batch_size = global_batch_size(config)
    eval_batch_size = int(config.eval_batch_size) or batch_size
    if eval_batch_size % jax.device_count():
        raise ValueError(f"config.eval_batch_size={eval_batch_size} must be a "
                         f"multiple of {jax.device_count()} devices")
    num_train = int(info.num_examples[config.train_split])
    steps_per_epoch = num_train // batch_size
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, int(config.steps_per_epoch)) \
            if steps_per_epoch else int(config.steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"the {config.train_split!r} split has {num_train} examples, "
                         f"fewer than one batch of {batch_size}; lower config.batch_size")

    class_weights = None
    if config.class_weights:
        class_weights = np.asarray(input_pipeline.class_weights(
            info.class_counts[config.train_split],
            float(config.class_weight_power)), np.float32)

    model = state_lib.create_model(config, num_classes)
    tx = state_lib.create_optimizer(config, steps_per_epoch)
    schedule = state_lib.create_learning_rate_schedule(config, steps_per_epoch)  # For logs.
    state = state_lib.create_train_state(jax.random.PRNGKey(int(config.seed)), model,
                                         tx, input_shape(config))
    state = jax.device_put(state, replicated)
    offset = logit_adjustment(training_prior(config, info), float(config.logit_adjustment))
    p_train, p_eval = compile_steps(model, tx, mesh, num_classes, class_weights,
                                    float(config.label_smoothing), offset,
                                    float(config.mixup_alpha))

    def validate(variables) -> dict[str, Any]:
        """The eval split's summary in report.json's schema, as
        fer.evaluation.evaluate.evaluate gives it, with the step compiled above."""
        predict = evaluate_lib.sharded_predict(p_eval, variables, mesh=mesh,
                                               batch_size=eval_batch_size)
        batches = evaluate_lib.split_batches(config, config.eval_split,
                                             batch_size=eval_batch_size)
        summary = evaluate_lib.summarize(evaluate_lib.score(predict, batches, num_classes),
                                         label_set.labels)
        return dict(summary, dataset=config.dataset, split=config.eval_split,
                    label_set=label_set.name)

    _check_same_run(config, workdir)

    def train_iterator(start: int):
        """The run's one iterator over its training batches (batch i: global step i)."""
        return input_pipeline.create_train_iterator(
            config, config.train_split, batch_size=batch_size // jax.process_count(),
            seed=int(config.seed), steps_per_epoch=steps_per_epoch,
            num_epochs=int(config.epochs), start=start, shard_index=jax.process_index(),
            shard_count=jax.process_count())

    checkpoints = checkpoint_lib.Checkpoints(
        workdir, keep=int(config.keep_checkpoints))
    start_epoch, start_step, best, best_loss = 0, 0, -np.inf, np.inf
    data_start = 0  # The step the iterator started at (its saved states count from it).
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state, meta = restored
        if checkpoint_lib.is_slim(meta):  # fer.training.slim: the optimizer state is gone.
            raise ValueError(f"{workdir} is a slim copy (optimizer state zeroed, for "
                             "inference): it cannot be resumed; train from the original run")
        start_epoch, best = int(meta["epoch"]), float(meta["best_balanced_accuracy"])
        start_step, data_start = int(meta["step"]), int(meta.get("data_start", 0))
        best_loss = float(meta.get("best_loss") or np.inf)
        logging.info("Resumed from the checkpoint of step %d (epoch %d) in %s", start_step,
                     start_epoch, checkpoints.directory)
    train_iter = train_iterator(data_start)
    if restored is not None and not checkpoints.restore_data_iter(train_iter):
        # Saved before iterator states were, or by another worker count.
        train_iter.close()
        data_start = start_step
        train_iter = train_iterator(data_start)
    _write_run_files(config, workdir, spec)
    writer = writers_lib.MetricWriter(workdir, resume_after_epoch=start_epoch,
                                      enabled=jax.process_index() == 0)
    history = writer.history()
    writer.write_hparams(config)

    def log_train(step: int, sums: Mapping[str, float]) -> None:
        # The update that made `step` used the schedule's value at step - 1.
        writer.write_scalars(step, {
            "train/loss": sums["loss_sum"] / sums["count"],
            "train/accuracy": sums["correct"] / sums["count"],
            "train/learning_rate": float(schedule(step - 1))})

    logging.info("Training %s on %s: %d examples, global batch %d over %d devices, "
                 "%d steps/epoch, epochs %d..%d", config.model, config.dataset,
                 num_train, batch_size, jax.device_count(), steps_per_epoch,
                 start_epoch + 1, config.epochs)
    progress = writers_lib.progress_bar(
        total=int(config.epochs) * steps_per_epoch * batch_size,
        initial=start_step * batch_size,
        enabled=bool(config.progress_bar) and jax.process_index() == 0)
    last_saved = start_epoch
    best_epoch, best_variables, best_summary = 0, None, None
    try:
        for epoch in range(start_epoch, int(config.epochs)):
            started = time.time()
            # A run resumed mid-epoch finishes that epoch first.
            done = start_step - epoch * steps_per_epoch if epoch == start_epoch else 0
            batches = itertools.islice(train_iter, steps_per_epoch - done)
            every_steps = int(config.checkpoint_every_steps)

            def save_step(step: int, state: TrainState, epoch: int = epoch) -> None:
                if every_steps and step % every_steps == 0 and step % steps_per_epoch:
                    checkpoints.save_step(step, state, {
                        "epoch": epoch, "step": step, "data_start": data_start,
                        "best_balanced_accuracy": best if np.isfinite(best) else -1.0,
                        "best_loss": best_loss if np.isfinite(best_loss) else None},
                        train_iter)
            state, train_sums = _train_epoch(
                p_train, state, batches, batch_size=batch_size, sharding=data_sharding,
                progress=progress, log_every=int(config.log_every_steps),
                on_nan=functools.partial(_check_finite, epoch=epoch, last_good=last_saved,
                                         checkpoint_dir=checkpoints.directory),
                on_log=log_train, on_step=save_step)
            if train_sums is None:
                raise ValueError(f"the {config.train_split!r} split gave no batches "
                                 f"in epoch {epoch + 1}")
            train_seconds = time.time() - started
            summary = validate(model_variables(state))
            balanced, val_loss = summary["balanced_accuracy"], summary["loss"]
            # Ties (common on small validation sets) go to the lower loss.
            is_best = balanced is not None and (
                balanced > best or (balanced == best and val_loss is not None
                                    and val_loss < best_loss))
            if is_best:
                best, best_loss = balanced, val_loss
                # A host copy: the next step donates the state's buffers.
                best_epoch, best_variables = epoch + 1, jax.device_get(model_variables(state))
                best_summary = summary
            row = {
                "epoch": epoch + 1, "step": int(state.step),
                "train_loss": float(train_sums["loss_sum"] / train_sums["count"]),
                "train_accuracy": float(train_sums["correct"] / train_sums["count"]),
                "val_loss": val_loss, "val_accuracy": summary["accuracy"],
                "val_balanced_accuracy": balanced, "val_macro_f1": summary["macro_f1"],
                "best_val_balanced_accuracy": best if np.isfinite(best) else None,
                "images_per_second": steps_per_epoch * batch_size / max(train_seconds, 1e-9),
                "epoch_seconds": time.time() - started,
            }
            writer.write(row)
            history.append(row)
            if jax.process_index() == 0:
                progress.write(_epoch_line(row, int(config.epochs), is_best))
            meta = {"epoch": epoch + 1, "step": int(state.step), "data_start": data_start,
                    "best_balanced_accuracy": best if np.isfinite(best) else -1.0,
                    "best_loss": best_loss if np.isfinite(best_loss) else None,
                    "val_balanced_accuracy": balanced, "val_accuracy": summary["accuracy"]}
            every = max(1, int(config.checkpoint_every_epochs))
            if (epoch + 1) == int(config.epochs) or (epoch + 1) % every == 0 or is_best:
                checkpoints.save(epoch + 1, state, meta, is_best=is_best,
                                 data_iter=train_iter)
                last_saved = epoch + 1
            if on_epoch_end is not None:
                checkpoints.wait()
                on_epoch_end(epoch + 1, state)
        if best_variables is None:
            # The best epoch came before a restart: restore it once and score it with
            # the eval step compiled above. No best at all: the final state, as
            # checkpoint.restore_model falls back to the latest.
            restored = checkpoints.restore("best", state)
            best_state, best_epoch = ((restored[0], int(restored[1]["epoch"])) if restored
                                      else (state, max(start_epoch, int(config.epochs))))
            best_variables = jax.device_get(model_variables(best_state))
            best_summary = validate(model_variables(best_state))
    finally:
        progress.close()
        writer.close()
        checkpoints.close()
        train_iter.close()  # Its worker processes, if any.
    return TrainResult(state=state, history=history, model=model, spec=spec, info=info,
                       best_epoch=best_epoch, best_variables=best_variables,
                       best_summary=best_summary)
