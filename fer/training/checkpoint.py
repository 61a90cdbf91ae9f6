"""Checkpoints of a run (orbax): save, restore, and a run's model restored from them.

fer.loading.load_model reads any model directory (a run, an ensemble) through
`restore_model`; this module imports nothing above fer.training.

Layout under the workdir:
  checkpoints/latest/<epoch>/  the last `keep` epoch-boundary states (for resuming)
  checkpoints/best/<epoch>/    the state with the best validation balanced accuracy
  checkpoints/steps/<step>/    the newest mid-epoch state (config.checkpoint_every_steps)
Each holds the full TrainState ('state') and a small JSON ('meta': epoch, step,
best balanced accuracy so far) so a resumed run knows where it stands; 'latest'
and 'steps' also hold the training iterator's state ('data_iter', grain's own
orbax handler: one JSON per process), so a resumed run reads on from the same
batch. Checkpoints written before 'data_iter' existed resume at their epoch's start.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from absl import logging
import grain
import jax
import ml_collections
import orbax.checkpoint as ocp

from fer import spec as spec_lib

CHECKPOINT_DIR = "checkpoints"
SLIM_KEY = "slim"  # True in the meta of a slim copy's checkpoints (fer.training.slim).


def _abstract(tree, sharding=None):
    """ShapeDtypeStructs to restore into (on `sharding`, or where `tree` lives)."""
    def leaf(x):
        s = sharding if sharding is not None else getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
    return jax.tree.map(leaf, tree)


DATA_ITER = "data_iter"  # The item holding the training iterator's state.


def save_args(state, meta: Mapping[str, Any], data_iter=None) -> ocp.args.Composite:
    items = dict(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta)))
    if data_iter is not None:
        items[DATA_ITER] = grain.checkpoint.CheckpointSave(data_iter)
    return ocp.args.Composite(**items)


def _options(name: str, read_only: bool, max_to_keep: int) -> ocp.CheckpointManagerOptions:
    """Options of one manager, safe with several processes.

    Writers: every process takes part in a save; the managers' barriers are
    named apart, as both save the same epoch at once. Readers: each process reads
    alone (no barrier with the others), so that process 0 can export by itself.
    """
    me = jax.process_index()
    multiprocessing = ocp.options.MultiprocessingOptions(
        barrier_sync_key_prefix=f"{name}_reader_{me}" if read_only else name,
        **(dict(primary_host=me, active_processes={me}) if read_only else {}))
    return ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                        multiprocessing_options=multiprocessing)


class Checkpoints:
    """The run's 'latest' and 'best' managers (epoch ends) and 'steps' (mid-epoch)."""

    def __init__(self, workdir: str, keep: int = 2, read_only: bool = False):
        self.directory = os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)
        self._resumed = None  # (manager, step) of the checkpoint restore_latest read.
        # Readers open without orbax's read_only mode (it warns on every open);
        # they never call save().
        self.latest = ocp.CheckpointManager(
            os.path.join(self.directory, "latest"),
            options=_options("latest", read_only, max_to_keep=max(1, keep)),
            item_names=("state", "meta", DATA_ITER))
        # Mid-epoch states, by global step: only the newest is needed to resume.
        self.steps = ocp.CheckpointManager(
            os.path.join(self.directory, "steps"),
            options=_options("steps", read_only, max_to_keep=1),
            item_names=("state", "meta", DATA_ITER))
        # The loop saves here only on improvement (ties broken by loss), so
        # keeping the newest one keeps the best.
        self.best = ocp.CheckpointManager(
            os.path.join(self.directory, "best"),
            options=_options("best", read_only, max_to_keep=1),
            item_names=("state", "meta"))

    def save(self, epoch: int, state, meta: Mapping[str, Any], is_best: bool,
             data_iter=None) -> None:
        """Saves an epoch's end; `data_iter` (the training iterator) goes to 'latest'."""
        # Best first: a run killed between the two saves resumes from the previous
        # latest and redoes this epoch bit for bit, so a step that already
        # exists holds the same state and is kept as it is.
        if is_best and epoch not in self.best.all_steps():
            self.best.save(epoch, args=save_args(state, meta))
        if epoch not in self.latest.all_steps():
            self.latest.save(epoch, args=save_args(state, meta, data_iter))

    def save_step(self, step: int, state, meta: Mapping[str, Any], data_iter) -> None:
        """Saves a mid-epoch state with the iterator that gives the next batch."""
        if step not in self.steps.all_steps():
            self.steps.save(step, args=save_args(state, meta, data_iter))

    def _manager(self, which: str) -> ocp.CheckpointManager:
        if which not in ("best", "latest"):
            raise ValueError(f"which={which!r}; expected 'best' or 'latest'")
        return self.best if which == "best" else self.latest

    def epochs(self, which: str = "latest") -> list[int]:
        return list(self._manager(which).all_steps())

    def restore(self, which: str, target, epoch: int | None = None, sharding=None):
        """(state, meta) of `which` ('best'/'latest', or a given epoch); None if absent."""
        manager = self._manager(which)
        if epoch is None:
            epoch = manager.latest_step()
        if epoch is None:
            return None
        restored = manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(target, sharding)),
            meta=ocp.args.JsonRestore()))
        return restored["state"], dict(restored["meta"])

    def restore_latest(self, target):
        """(state, meta) to resume from, the newer of 'latest' and 'steps'; None if none.

        `restore_data_iter` then restores the same checkpoint's iterator state.
        """
        newest = None
        for manager in (self.latest, self.steps):
            step = manager.latest_step()
            if step is None:
                continue
            meta = dict(manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"])
            if newest is None or meta["step"] > newest[2]["step"]:
                newest = (manager, step, meta)
        if newest is None:
            return None
        manager, step, meta = newest
        self._resumed = manager, step
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(target))))["state"]
        return state, meta

    def restore_data_iter(self, data_iter) -> bool:
        """Sets the iterator state saved with the checkpoint `restore_latest` restored.

        False when there is none: saved before 'data_iter' existed, or by another
        worker count (its state has another shape); the caller positions the iterator.
        """
        manager, step = self._resumed
        if not (manager.directory / str(step) / DATA_ITER).exists():
            return False
        try:
            manager.restore(step, args=ocp.args.Composite(
                **{DATA_ITER: grain.checkpoint.CheckpointRestore(data_iter)}))
        except KeyError:
            logging.warning("The iterator state of step %d was saved by another worker "
                            "count; positioning the iterator by the step.", step)
            return False
        return True

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()
        self.steps.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()
        self.steps.close()


def is_slim(meta: Mapping[str, Any]) -> bool:
    """Whether a checkpoint is a slim copy (fer.training.slim: optimizer state zeroed)."""
    return bool(meta.get(SLIM_KEY, False))


def restore_target(config, spec: spec_lib.ModelSpec):
    """(model, abstract TrainState) of a run: the structure its checkpoints restore into."""
    from fer.training import state as state_lib

    model = state_lib.create_model(config, spec.num_classes)
    tx = state_lib.create_optimizer(config, steps_per_epoch=1)  # The schedule is no state.
    target = jax.eval_shape(lambda: state_lib.create_train_state(
        jax.random.PRNGKey(0), model, tx, tuple(spec.input_shape)))
    return model, target


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's config.json laid over configs/default.py's fields, once.

    A run saved before a field existed gets that field's default, so readers use
    `config.<field>` and no default is written twice.
    """
    from configs import default  # noqa: PLC0415 (the checkout's configs/, beside launch.py)

    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no config.json in {workdir}: is it a training workdir "
                                "(python launch.py --workdir ...)?")
    config = default.get_config()
    with open(path) as f:
        config.update(json.load(f))
    return config


def restore_model(workdir: str, which: str | int = "best"):
    """Rebuilds a trained model from a run's workdir.

    Returns (module, variables, spec, config): the Flax module, its variables
    ({'params'} plus {'batch_stats'} for designs with BatchNorm) on the first
    local device, the run's ModelSpec (labels, input shape, normalisation) and
    its config. `which` is 'best' (best validation balanced accuracy; falls back
    to the latest if the run never recorded one), 'latest', or an epoch number.
    """
    config = load_config(workdir)
    spec = spec_lib.ModelSpec.load(workdir)
    model, target = restore_target(config, spec)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    checkpoints = Checkpoints(workdir, read_only=True)
    try:
        if isinstance(which, int):
            restored = checkpoints.restore("latest", target, epoch=which, sharding=device)
        else:
            restored = checkpoints.restore(which, target, sharding=device)
            if restored is None and which == "best":
                logging.warning("No best checkpoint in %s; using the latest.", workdir)
                restored = checkpoints.restore("latest", target, sharding=device)
    finally:
        checkpoints.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {checkpoints.directory}: train first "
                                f"(python launch.py --workdir {workdir})")
    state, meta = restored
    variables = {"params": state.params}
    if jax.tree.leaves(state.batch_stats):
        variables["batch_stats"] = state.batch_stats
    logging.info("Loaded %s from %s (epoch %s)", spec.design, workdir, meta.get("epoch"))
    return model, variables, spec, config
