"""One loop over a split, for every kind of model: JAX variables, TFLite, ensembles.

A model enters as a *predict* function, batch -> {'probs' or 'log_probs', ...}
per row. `examples` walks the input pipeline's batches, calls it and drops the
padding rows (mask 0) afterwards, so a predictor may run on the padded batch
(JAX: one compiled shape) or skip the padding itself (TFLite). Everything that
reads a split goes through it: the validation of each training epoch, the
report of a run, an export or an ensemble, the faces an export is checked on,
the members' views of an ensemble.

The JAX predictor runs data-parallel over all devices of all processes (batch
sharded on 'data', variables replicated) and returns the whole global batch to
every process, labels included, so that every process computes the same scores.
This module imports only fer.data, fer.labels and fer.evaluation.metrics:
training, export and the loaders import it, never the other way round.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fer import labels as labels_lib
from fer.evaluation import metrics as metrics_lib

Batch = Mapping[str, Any]
Predict = Callable[[Batch], Mapping[str, Any]]

# What a predictor's output is joined with, row by row (unless it returns them itself).
_CARRIED = ("label", "target", "mask")


# ----------------------------------------------------------------------------
# Devices and batches (shared with the training loop).

def create_mesh(devices: Iterable[jax.Device] | None = None) -> Mesh:
    """One 'data' axis over all devices of all hosts."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), ("data",))


def pad_batch(batch: Batch, size: int) -> dict[str, np.ndarray]:
    """Pads a short (last) batch to `size` examples with mask 0."""
    batch = {k: np.asarray(v) for k, v in batch.items()}
    n = len(batch["label"])
    if "mask" not in batch:
        batch["mask"] = np.ones((n,), np.float32)
    if n == size:
        return batch
    if n > size:
        raise ValueError(f"batch of {n} examples, expected at most {size}")
    return {k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)])
            for k, v in batch.items()}


def shard_batch(batch: Batch, sharding: NamedSharding) -> dict[str, jax.Array]:
    """This process's slice of a global batch -> one global sharded array per key."""
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}


def replicate(tree, sharding: NamedSharding):
    """Host (or one-device) arrays -> global arrays on every device of every process.

    jax.device_put cannot reach another host's devices; every process holds the
    whole value, so each fills its own devices from its copy.
    """
    def leaf(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(leaf, tree)


# ----------------------------------------------------------------------------
# The loop.

def keep_mask(batch: Batch) -> np.ndarray:
    """Rows that are examples (mask > 0), not padding."""
    n = len(batch["label"])
    return np.asarray(batch["mask"] if "mask" in batch else np.ones(n)) > 0


def examples(predict: Predict, batches: Iterable[Batch], *,
             limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Per batch: predict's outputs with the batch's label (and target), padding dropped.

    Stops after the first `limit` examples. Every batch is predicted (even one
    of padding only), so that processes running a sharded predictor stay in step.
    """
    seen = 0
    for batch in batches:
        rows = {k: batch[k] for k in _CARRIED if k in batch}
        rows.update(predict(batch))
        keep = keep_mask(rows)
        rows = {k: np.asarray(v)[keep] for k, v in rows.items() if k != "mask"}
        if limit is not None:
            rows = {k: v[:limit - seen] for k, v in rows.items()}
        seen += len(rows["label"])
        yield rows
        if limit is not None and seen >= limit:
            return


def collect(predict: Predict, batches: Iterable[Batch], *,
            limit: int | None = None) -> dict[str, np.ndarray]:
    """`examples` concatenated: one array per key over the split (or its first `limit`)."""
    chunks = list(examples(predict, batches, limit=limit))
    if not chunks or not sum(len(c["label"]) for c in chunks):
        raise ValueError("the split gave no examples")
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}


def _log_probs(rows: Mapping[str, np.ndarray]) -> np.ndarray:
    if "log_probs" in rows:
        return np.asarray(rows["log_probs"], np.float64)
    return np.log(np.clip(np.asarray(rows["probs"], np.float64), 1e-7, 1.0))


def score(predict: Predict, batches: Iterable[Batch], num_classes: int, *,
          convert: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Confusion matrix, mean cross entropy, count and calibration counts of a split.

    `convert` maps the model's probabilities onto the dataset's classes when
    their label sets differ (fer.labels.remap_probs).
    """
    confusion = np.zeros((num_classes, num_classes), np.int64)
    calibration = np.zeros((metrics_lib.ECE_BINS, 3))
    loss_sum, count = 0.0, 0
    for rows in examples(predict, batches):
        log_probs = _log_probs(rows)
        if convert is not None:
            log_probs = np.log(np.clip(convert(np.exp(log_probs)), 1e-7, 1.0))
        labels = rows["label"].astype(np.int64)
        targets = (np.asarray(rows["target"], np.float64) if "target" in rows
                   else np.eye(num_classes)[labels])
        loss_sum += float(-(targets * log_probs).sum())
        np.add.at(confusion, (labels, log_probs.argmax(-1)), 1)
        calibration += metrics_lib.calibration_counts(np.exp(log_probs), labels)
        count += len(labels)
    return {"confusion": confusion, "loss": loss_sum / count if count else float("nan"),
            "count": count, "calibration": calibration}


def summarize(result: Mapping[str, Any], labels) -> dict[str, Any]:
    """`score`'s result -> the report.json schema (fer.evaluation.metrics.summarize)."""
    return metrics_lib.summarize(result["confusion"], list(labels), result["loss"],
                                 calibration=result.get("calibration"))


# ----------------------------------------------------------------------------
# Predictors.

def compile_predict(module, mesh: Mesh) -> Callable:
    """jit (variables, sharded batch) -> replicated {'log_probs', 'label', 'target', 'mask'}."""
    data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())

    def predict(variables, batch):
        logits = module.apply(variables, batch["image"], train=False)
        out = {k: v for k, v in batch.items() if k in _CARRIED}
        out["log_probs"] = jax.nn.log_softmax(logits.astype(jnp.float32))
        return out

    return jax.jit(predict, in_shardings=(replicated, data), out_shardings=replicated)


def sharded_predict(p_predict: Callable, variables, *, mesh: Mesh,
                    batch_size: int) -> Predict:
    """A compiled `compile_predict` on this process's batches of a global `batch_size`.

    `variables` must already be replicated over `mesh` (`replicate`).
    """
    data = NamedSharding(mesh, P("data"))
    local_size = batch_size // jax.process_count()

    def predict(batch: Batch) -> dict[str, np.ndarray]:
        return jax.device_get(p_predict(variables, shard_batch(pad_batch(batch, local_size),
                                                               data)))
    return predict


def model_predict(module, variables, *, batch_size: int,
                  mesh: Mesh | None = None) -> Predict:
    """Predictor of a Flax module and its variables, over every device."""
    mesh = mesh or create_mesh()
    variables = replicate(dict(variables), NamedSharding(mesh, P()))
    return sharded_predict(compile_predict(module, mesh), variables, mesh=mesh,
                           batch_size=batch_size)


# ----------------------------------------------------------------------------
# A split of a config's dataset.

def eval_batch_size(config: ml_collections.ConfigDict) -> int:
    """The global evaluation batch: config.eval_batch_size, else the training batch."""
    size = (int(config.eval_batch_size) or int(config.batch_size)
            or int(config.per_device_batch_size) * jax.device_count())
    if size % jax.device_count():
        raise ValueError(f"evaluation batch {size} must be a multiple of "
                         f"{jax.device_count()} devices")
    return size


def split_batches(config: ml_collections.ConfigDict, split: str, *, batch_size: int,
                  sharded: bool = True) -> Iterator[Batch]:
    """Eval-order batches of `split`: this process's shard, or (sharded=False) all of it."""
    from fer.data import input_pipeline  # noqa: PLC0415 (grain: only where data is read)

    shard_index, shard_count = ((jax.process_index(), jax.process_count()) if sharded
                                else (0, 1))
    return input_pipeline.create_split(
        config, split, train=False, batch_size=batch_size // shard_count,
        seed=int(config.seed), shard_index=shard_index, shard_count=shard_count)


def _label_set(label_set: str | labels_lib.LabelSet) -> labels_lib.LabelSet:
    return labels_lib.get_label_set(label_set) if isinstance(label_set, str) else label_set


def evaluate(config: ml_collections.ConfigDict, split: str, predict: Predict, *,
             model_label_set: str | labels_lib.LabelSet | None = None,
             sharded: bool = True, batch_size: int | None = None) -> dict[str, Any]:
    """Scores a predictor on any split of the config's dataset (report.json schema).

    The split may be one training never saw (e.g. 'test'); the label set comes
    from the dataset. A model of another label set (`model_label_set`) is read
    through the classes both share.
    """
    from fer.data import input_pipeline  # noqa: PLC0415

    info = input_pipeline.get_dataset_info(config)
    data_set = _label_set(info.label_set)
    model_set = data_set if model_label_set is None else _label_set(model_label_set)
    convert = None
    if model_set.canonical != data_set.canonical:  # Read through the shared classes.
        convert = functools.partial(labels_lib.remap_probs, src=model_set, dst=data_set)
    batches = split_batches(config, split, batch_size=batch_size or eval_batch_size(config),
                            sharded=sharded)
    result = score(predict, batches, data_set.num_classes, convert=convert)
    if not result["count"]:
        raise ValueError(f"split {split!r} of dataset {config.dataset!r} is empty")
    summary = summarize(result, data_set.labels)
    summary.update(dataset=config.dataset, split=split, label_set=data_set.name,
                   skipped=getattr(info, "skipped", {}))
    if convert is not None:
        summary["label_mapping"] = labels_lib.shared_classes(model_set, data_set)
    return summary


def evaluate_model(config: ml_collections.ConfigDict, module, variables: Mapping[str, Any],
                   split: str, *, model_label_set=None) -> dict[str, Any]:
    """`evaluate` of a Flax module (a run's or an ensemble's) over every device."""
    size = eval_batch_size(config)
    return evaluate(config, split, model_predict(module, variables, batch_size=size),
                    model_label_set=model_label_set, batch_size=size)
