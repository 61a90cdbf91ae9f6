"""Training loop on a tiny learnable fixture: learning, resume, NaN guard, load_model."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import training_fixtures as fx
from fer import loading
from fer.data import input_pipeline
from fer.training import checkpoint as checkpoint_lib
from fer.training import state as state_lib
from fer.training import train as train_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def stand_ins():
    """The tiny model and dataset, registered by name (training_fixtures)."""
    with fx.stand_ins():
        yield


def _config(**overrides):
    defaults = dict(model_kwargs={"dropout_rate": 0.2}, learning_rate=1e-2)
    defaults.update(overrides)
    return fx.tiny_config(**defaults)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 3-epoch run (with BN and dropout) shared by several tests."""
    workdir = str(tmp_path_factory.mktemp("full"))
    run = train_lib.train_and_evaluate(_config(), workdir)
    return workdir, jax.device_get(run.state), run.history


def _leaves_equal(a, b) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b))
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in pairs)


def test_tiny_run_learns_and_logs(full_run):
    workdir, state, history = full_run
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_accuracy"] > 3 / fx.LABEL_SET.num_classes  # chance: 1/8.
    assert int(state.step) == 3 * (256 // 32)
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "val_balanced_accuracy", "images_per_second"} <= set(rows[0])
    assert json.load(open(os.path.join(workdir, "config.json")))["model"] == "tiny"
    spec = json.load(open(os.path.join(workdir, "model.json")))
    assert spec["labels"] == list(fx.LABEL_SET.labels)
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    # The best checkpoint is the epoch of highest balanced accuracy (ties: lower loss).
    expected = min(history, key=lambda r: (-r["val_balanced_accuracy"], r["val_loss"]))
    checkpoints = checkpoint_lib.Checkpoints(workdir, read_only=True)
    assert checkpoints.epochs("latest")[-1] == 3
    assert checkpoints.epochs("best") == [expected["epoch"]]
    checkpoints.close()


def _tensorboard(workdir: str) -> tuple[dict[str, dict[int, float]], bytes]:
    """({tag: {step: value}} of every scalar, the hparams plugin's data) of a run."""
    import tensorflow as tf

    scalars, hparams = {}, b""
    directory = os.path.join(workdir, "tensorboard")
    for name in sorted(os.listdir(directory)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    hparams += value.metadata.plugin_data.content
                elif value.HasField("tensor") and not value.tensor.tensor_shape.dim:
                    scalars.setdefault(value.tag, {})[event.step] = float(
                        tf.make_ndarray(value.tensor))
    return scalars, hparams


def test_tensorboard_logs_train_every_log_step_and_val_every_epoch(tmp_path):
    """2 epochs of 8 steps, logged every 3 global steps (across the epoch boundary)."""
    config = _config(epochs=2, log_every_steps=3, schedule="cosine")
    run = train_lib.train_and_evaluate(config, str(tmp_path))
    scalars, hparams = _tensorboard(str(tmp_path))
    schedule = state_lib.create_learning_rate_schedule(config, steps_per_epoch=8)
    assert sorted(scalars["train/learning_rate"]) == [3, 6, 9, 12, 15]
    for step, value in scalars["train/learning_rate"].items():
        assert value == pytest.approx(float(schedule(step - 1)))  # Cosine: all differ.
    assert sorted(scalars["train/loss"]) == sorted(scalars["train/accuracy"]) == [
        3, 6, 9, 12, 15]
    assert all(0.0 <= v <= 1.0 for v in scalars["train/accuracy"].values())
    assert scalars["val/balanced_accuracy"] == {
        row["step"]: pytest.approx(row["val_balanced_accuracy"]) for row in run.history}
    assert [row["step"] for row in run.history] == [8, 16]
    assert b"model_kwargs.dropout_rate" in hparams and b"schedule" in hparams  # Flattened.


def test_killed_run_resumes_to_the_same_state(full_run, tmp_path):
    _, uninterrupted, _ = full_run

    class Killed(Exception):
        pass

    def kill_after_first(epoch, _):
        if epoch == 1:
            raise Killed

    workdir = str(tmp_path)
    with pytest.raises(Killed):
        train_lib.train_and_evaluate(_config(), workdir, on_epoch_end=kill_after_first)
    resumed = train_lib.train_and_evaluate(_config(), workdir)
    assert _leaves_equal(jax.device_get(resumed.state), uninterrupted)  # Bitwise.
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


def _resume_config(**overrides):
    """3 epochs of 8 steps through the grain pipeline, augmented; mid-epoch saves every 2."""
    return _config(**{**dict(augment=True, checkpoint_every_steps=2), **overrides})


@pytest.fixture(scope="module")
def uninterrupted_grain_run(tmp_path_factory):
    run = train_lib.train_and_evaluate(_resume_config(checkpoint_every_steps=0),
                                       str(tmp_path_factory.mktemp("grain_full")))
    assert int(run.state.step) == 24
    return jax.device_get(run.state)


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_at, workers, resume_workers", [
    (4, 0, 0),    # Mid-epoch 1: no epoch checkpoint yet; resumes across two boundaries.
    (12, 2, 2),   # Mid-epoch 2: the step checkpoint is newer than epoch 1's.
    (12, 0, 2),   # Resumed with workers: the saved state is 0 workers'; set by the step.
])
def test_run_killed_mid_epoch_resumes_bit_identical(uninterrupted_grain_run, tmp_path,
                                                    monkeypatch, kill_at, workers,
                                                    resume_workers):
    save_step = checkpoint_lib.Checkpoints.save_step

    def save_then_die(self, step, *args, **kwargs):
        save_step(self, step, *args, **kwargs)
        if step == kill_at:
            raise Killed

    workdir = str(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(checkpoint_lib.Checkpoints, "save_step", save_then_die)
        with pytest.raises(Killed):
            train_lib.train_and_evaluate(_resume_config(num_workers=workers), workdir)
    checkpoints = checkpoint_lib.Checkpoints(workdir, read_only=True)
    assert checkpoints.steps.all_steps() == [kill_at]
    assert checkpoints.epochs("latest") == ([1] if kill_at > 8 else [])
    checkpoints.close()
    resumed = train_lib.train_and_evaluate(_resume_config(num_workers=resume_workers),
                                           workdir)
    assert int(resumed.state.step) == 24
    assert _leaves_equal(jax.device_get(resumed.state), uninterrupted_grain_run)  # Bitwise.
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


def test_checkpoint_without_iterator_state_resumes_at_its_epoch(uninterrupted_grain_run,
                                                                tmp_path):
    """A checkpoint saved before 'data_iter' existed: the iterator is set by the step."""
    def kill_after_first(epoch, _):
        if epoch == 1:
            raise Killed

    workdir = str(tmp_path)
    with pytest.raises(Killed):
        train_lib.train_and_evaluate(_resume_config(checkpoint_every_steps=0), workdir,
                                     on_epoch_end=kill_after_first)
    saved = tmp_path / "checkpoints" / "latest" / "1" / checkpoint_lib.DATA_ITER
    assert saved.is_dir()
    for f in saved.iterdir():
        f.unlink()
    saved.rmdir()
    resumed = train_lib.train_and_evaluate(_resume_config(checkpoint_every_steps=0), workdir)
    assert _leaves_equal(jax.device_get(resumed.state), uninterrupted_grain_run)


def test_resumed_after_its_best_epoch_returns_the_best_checkpoint(full_run, tmp_path):
    """Resumed after its best epoch for one ruinous epoch more (learning rate 10), the
    run restores the best checkpoint once: its variables and summary are the result."""
    import shutil

    workdir = str(tmp_path / "run")
    shutil.copytree(full_run[0], workdir)
    run = train_lib.train_and_evaluate(_config(epochs=4, learning_rate=10.0), workdir)
    best = min(full_run[2], key=lambda r: (-r["val_balanced_accuracy"], r["val_loss"]))
    assert run.history[-1]["val_balanced_accuracy"] < best["val_balanced_accuracy"]
    assert run.best_epoch == best["epoch"]
    assert run.best_summary["balanced_accuracy"] == best["val_balanced_accuracy"]
    assert run.best_summary["loss"] == pytest.approx(best["val_loss"])
    assert run.best_summary["split"] == "validation"
    _, variables, _, _ = loading.load_model(workdir, "best")
    assert _leaves_equal(run.best_variables, variables)
    assert not _leaves_equal(run.best_variables["params"], run.state.params)
    assert [row["epoch"] for row in run.history] == [1, 2, 3, 4]


def test_load_model_gives_the_trained_variables(full_run):
    workdir, state, _ = full_run
    model, variables, spec, config = loading.load_model(workdir, "latest")
    assert _leaves_equal(variables["params"], state.params)
    assert _leaves_equal(variables["batch_stats"], state.batch_stats)
    assert spec.design == "tiny" and spec.input_shape == (fx.SIZE, fx.SIZE, 1)
    assert config.model == "tiny"
    x = jnp.zeros((2, fx.SIZE, fx.SIZE, 1))
    assert model.apply(variables, x, train=False).shape == (2, 8)
    _, best_vars, _, _ = loading.load_model(workdir)  # 'best'.
    assert jax.tree.structure(best_vars) == jax.tree.structure(variables)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        loading.load_model(os.path.dirname(workdir) + "/nowhere")


def test_slim_copy_loads_the_same_model_and_cannot_resume(full_run, tmp_path):
    from fer.training import slim

    workdir, state, _ = full_run
    out = str(tmp_path / "slim")
    written = slim.slim_copy(workdir, out)
    source = checkpoint_lib.Checkpoints(workdir, read_only=True)
    assert written == [("best", source.epochs("best")[-1]), ("latest", 3)]
    source.close()
    for which in ("best", "latest"):
        _, original, _, _ = loading.load_model(workdir, which)
        _, copied, _, _ = loading.load_model(out, which)
        assert _leaves_equal(original, copied)
    assert sorted(os.listdir(out)) == sorted(os.listdir(workdir))  # Every file of the run.
    restored, meta = checkpoint_lib.Checkpoints(out, read_only=True).restore("latest", state)
    assert meta["slim"] and meta["epoch"] == 3
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(restored.opt_state))
    assert any(np.any(np.asarray(x)) for x in jax.tree.leaves(state.opt_state))
    with pytest.raises(ValueError, match="slim copy"):  # Zeroed Adam moments: no resume.
        train_lib.train_and_evaluate(_config(epochs=4), out)
    with pytest.raises(FileExistsError):
        slim.slim_copy(workdir, out)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("config.json", "model.json"):
        with open(os.path.join(workdir, name)) as src, open(empty / name, "w") as dst:
            dst.write(src.read())
    with pytest.raises(FileNotFoundError, match="nothing to copy"):
        slim.slim_copy(str(empty), str(tmp_path / "slim2"))


def test_workdir_of_another_design_is_refused(full_run):
    workdir, _, _ = full_run
    with pytest.raises(ValueError, match=r"image_size: 8 -> 16.*new --workdir"):
        train_lib.train_and_evaluate(_config(image_size=16), workdir)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path)
    with pytest.raises(FloatingPointError, match=r"epoch 2.*epoch 1\) is kept"):
        train_lib.train_and_evaluate(  # 8 steps per epoch: NaN from step 9 (epoch 2) on.
            _config(model="tiny_diverging", model_kwargs={"nan_after_steps": 8}), workdir)
    checkpoints = checkpoint_lib.Checkpoints(workdir, read_only=True)
    assert checkpoints.epochs("latest") == [1]
    checkpoints.close()
    _, variables, _, _ = loading.load_model(workdir, "latest")
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(variables))


def test_cross_entropy_soft_targets_weights_and_smoothing():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    targets = jnp.array([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0]])  # Hard and soft (votes).
    logp = jax.nn.log_softmax(logits)
    per = -(targets * logp).sum(-1)
    mask = jnp.array([1.0, 1.0])
    assert train_lib.cross_entropy(logits, targets, mask) == pytest.approx(per.mean())
    # Padding (mask 0) does not count.
    assert train_lib.cross_entropy(logits, targets, jnp.array([1.0, 0.0])) == \
        pytest.approx(per[0])
    # Class weights: an example weighs its target's weight; the mean is over weights.
    w = jnp.array([2.0, 1.0, 1.0])
    ex_w = jnp.array([2.0, 0.2 * 2 + 0.8])
    assert train_lib.cross_entropy(logits, targets, mask, w) == pytest.approx(
        float((per * ex_w).sum() / ex_w.sum()), rel=1e-6)
    # Label smoothing 0.3 over 3 classes: target * 0.7 + 0.1.
    smoothed = -((targets * 0.7 + 0.1) * logp).sum(-1).mean()
    assert train_lib.cross_entropy(logits, targets, mask, label_smoothing=0.3) == \
        pytest.approx(float(smoothed), rel=1e-6)


def test_optimizer_and_schedule_choices():
    config = _config(schedule="warmup_cosine", warmup_epochs=1.0, epochs=2)
    lr = state_lib.create_learning_rate_schedule(config, steps_per_epoch=10)
    assert float(lr(0)) == 0.0
    assert float(lr(10)) == pytest.approx(config.learning_rate)
    assert float(lr(20)) == pytest.approx(0.0, abs=1e-9)
    for name in ("adam", "adamw", "sgd"):
        tx = state_lib.create_optimizer(_config(optimizer=name, weight_decay=1e-4), 10)
        params = {"w": jnp.ones(3)}
        updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
        assert np.all(np.asarray(updates["w"]) < 0)
    with pytest.raises(ValueError, match="config.optimizer='rmsprop'"):
        state_lib.create_optimizer(_config(optimizer="rmsprop"), 10)
    with pytest.raises(ValueError, match="config.model='nope' is not a known design"):
        state_lib.create_model(_config(model="nope"), 8)
    with pytest.raises(ValueError, match="multiple of the 2 devices"):
        train_lib.global_batch_size(_config(batch_size=33), num_devices=2)


def _conv_operand_dtypes(jaxpr) -> list[tuple]:
    """Operand dtypes of every convolution in a jaxpr, nested jaxprs included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            found.append(tuple(v.aval.dtype for v in eqn.invars))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    found += _conv_operand_dtypes(sub)
    return found


def test_half_precision_step_computes_in_bfloat16_and_keeps_float32_params():
    """fer's own half-precision path: the zoo's model from config.half_precision."""
    config = _config(half_precision=True, model="resnet_fer_tiny",
                     model_kwargs={"widths": (4, 8), "blocks": (1, 1), "dropout_rate": 0.0})
    model = state_lib.create_model(config, 8)
    tx = state_lib.create_optimizer(config, 1)
    state = state_lib.create_train_state(jax.random.PRNGKey(0), model, tx, (8, 8, 1))
    batch = next(input_pipeline.create_split(config, "train", train=True,
                                                batch_size=32, seed=0))
    # Forward and backward convolutions run in bfloat16 on float32 parameters.
    step = functools.partial(train_lib.train_step, model=model, tx=tx)
    convs = _conv_operand_dtypes(jax.make_jaxpr(step)(state, batch).jaxpr)
    bf16 = jnp.dtype(jnp.bfloat16)
    assert convs and set(convs) == {(bf16, bf16)}, convs
    logits = model.apply(train_lib.model_variables(state), batch["image"], train=False)
    assert logits.dtype == jnp.float32  # Losses and softmax stay float32.
    mesh = train_lib.create_mesh()
    p_train, _ = train_lib.compile_steps(model, tx, mesh, 8)
    data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    new_state, metrics = p_train(state, train_lib.shard_batch(batch, data))
    leaves = jax.tree.leaves((new_state.params, new_state.batch_stats))
    assert {x.dtype for x in leaves} == {jnp.dtype("float32")}
    assert np.isfinite(float(metrics["loss_sum"])) and float(metrics["count"]) == 32


TWO_DEVICES = textwrap.dedent("""
    import sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import functools, jax, jax.numpy as jnp, numpy as np, optax
    import training_fixtures as fx
    from fer.data import input_pipeline
    from fer.training import state as state_lib, train as train_lib
    assert jax.device_count() == 2, jax.devices()
    config = fx.tiny_config(model_kwargs={{"batch_norm": True, "dropout_rate": 0.0}})
    fx.install_stand_ins()
    model = state_lib.create_model(config, 8)
    # SGD: Adam's first step is sign(g) * lr, which turns the round-off on the
    # conv bias (its gradient is exactly 0 in theory, BN follows) into +-lr.
    tx = optax.sgd(0.1)
    batch = next(input_pipeline.create_split(config, "train", train=True,
                                                batch_size=32, seed=0))
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = train_lib.create_mesh(devices)
        data = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
        repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
        state = state_lib.create_train_state(jax.random.PRNGKey(0), model, tx, (8, 8, 1))
        p_train, p_eval = train_lib.compile_steps(model, tx, mesh, 8)
        state = jax.device_put(state, repl)
        sharded = train_lib.shard_batch(batch, data)
        assert len(sharded["image"].sharding.device_set) == len(devices)
        state, metrics = p_train(state, sharded)
        ev = p_eval(train_lib.model_variables(state), sharded)
        results.append(jax.device_get((state, metrics, ev)))
    one, two = results
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("EQUAL")
""")


def test_step_on_two_devices_equals_step_on_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    script = TWO_DEVICES.format(repo=REPO, tests=os.path.join(REPO, "tests"))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0 and "EQUAL" in out.stdout, out.stderr[-3000:]
