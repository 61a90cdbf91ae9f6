"""launch.py as several hosts run it: 2 processes on localhost, CPU collectives over gloo.

Each process is started the documented way (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID) on the real demo pipeline, which shards the data by process; only the
model is the tests' tiny stand-in, so that compiling takes seconds. A two-process run
must compute what one process with two devices computes.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import training_fixtures as fx
from fer.data import demo_faces as demo
from fer.data import input_pipeline as ip
from fer import loading
from fer.training import train as train_lib
from fer.training import writers as writers_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# launch.py with the tiny model; FER_TEST_DIE_AFTER_EPOCH=k makes process 1 die
# (SIGKILL) right after its checkpoint of epoch k, as a lost host would.
RUNNER = textwrap.dedent("""
    import os, runpy, signal, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import training_fixtures
    from fer.training import checkpoint as checkpoint_lib
    training_fixtures.install_stand_ins()
    die_after = int(os.environ.get("FER_TEST_DIE_AFTER_EPOCH", 0))
    save = checkpoint_lib.Checkpoints.save
    def save_then_die(self, epoch, *args, **kwargs):
        save(self, epoch, *args, **kwargs)
        if epoch == die_after and os.environ.get("JAX_PROCESS_ID") == "1":
            self.wait()
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint_lib.Checkpoints.save = save_then_die
    sys.argv = ["launch.py"] + {argv!r}
    runpy.run_path({launch!r}, run_name="__main__")
""")

SETTINGS = ["--config.model=tiny", "--config.image_size=8", "--config.epochs=2",
            "--config.steps_per_epoch=4", "--config.per_device_batch_size=16",
            "--config.learning_rate=0.01", "--config.progress_bar=False"]
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(argv):
    return [sys.executable, "-c", RUNNER.format(
        repo=REPO, tests=os.path.join(REPO, "tests"), argv=argv,
        launch=os.path.join(REPO, "launch.py"))]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JAX_", "SLURM_", "OMPI_", "TPU_")) and k != "XLA_FLAGS"}
    return dict(env, JAX_PLATFORMS="cpu", **extra)


def _start_two(argv, cwd, **extra):
    """Processes 0 and 1 of one launch; their output goes to cwd/process<i>.log."""
    port = _free_port()
    procs = []
    for i in range(2):
        log = open(os.path.join(cwd, f"process{i}.log"), "w")
        procs.append(subprocess.Popen(
            _command(argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            env=_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                     JAX_PROCESS_ID=str(i), **extra)))
        log.close()
    return procs


def _logs(cwd):
    return [open(os.path.join(cwd, f"process{i}.log")).read() for i in range(2)]


def _run_two(argv, cwd):
    procs = _start_two(argv, cwd)
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = _logs(cwd)
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    return logs


def _params(workdir):
    with fx.stand_ins():  # The tiny model, by name.
        _, variables, _, _ = loading.load_model(workdir, "latest")
    return jax.tree.map(np.asarray, variables)


def _assert_close(a, b, **tolerance):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, **tolerance)


# ----------------------------------------------------------------------------
# Fast checks of the pieces.

@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4",
      "JAX_PROCESS_ID": "3"},
     {"coordinator_address": "10.0.0.1:1234", "num_processes": 4, "process_id": 3}),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "1", "JAX_PROCESS_ID": "0"},
     None),
    ({"SLURM_NTASKS": "2", "SLURM_JOB_ID": "7"}, {}),
    ({"SLURM_NTASKS": "1"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "8"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, {}),
    ({"TPU_WORKER_HOSTNAMES": "t0"}, None),
])
def test_distributed_arguments_per_launcher(env, expected):
    assert train_lib.distributed_arguments(env) == expected


@pytest.mark.parametrize("env, message", [
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "without JAX_COORDINATOR_ADDRESS"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"}, "without JAX_PROCESS_ID"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"},
     "not in 0..1"),
    ({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "two", "JAX_PROCESS_ID": "0"},
     "must be integers"),
])
def test_incomplete_explicit_launch_is_a_clear_error(env, message):
    with pytest.raises(ValueError, match=message):
        train_lib.distributed_arguments(env)


def test_process_shards_are_slices_of_the_one_process_batches():
    """Process p's training batch i is slice p of one process's batch i (augmented too)."""
    config = fx.tiny_config(dataset="demo", image_size=16, augment=True)
    kw = dict(train=True, seed=3, epoch=1)
    whole = list(ip.create_split(config, "train", batch_size=64, shard_index=0,
                                 shard_count=1, **kw))
    shards = [list(ip.create_split(config, "train", batch_size=32, shard_index=p,
                                   shard_count=2, **kw)) for p in range(2)]
    assert len(whole) == len(shards[0]) == len(shards[1]) == demo.SPLIT_SIZES["train"] // 64
    for i, batch in enumerate(whole):
        for key in batch:
            np.testing.assert_array_equal(
                np.concatenate([shards[0][i][key], shards[1][i][key]]), batch[key])


# ----------------------------------------------------------------------------
# Two processes end to end.

@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process with two CPU devices, same global batch."""
    cwd = tmp_path_factory.mktemp("one_process")
    workdir = str(cwd / "run")
    out = subprocess.run(
        _command([f"--workdir={workdir}", "--config.export_variants=()"] + SETTINGS),
        cwd=cwd, env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"),
        capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("two_processes")
    workdir = str(cwd / "run")
    logs = _run_two([f"--workdir={workdir}", "--config.export_variants=float32"]
                    + SETTINGS, cwd)
    return workdir, logs


@pytest.mark.slow
def test_two_processes_train_evaluate_and_export_once(two_processes):
    workdir, (first, second) = two_processes
    assert "global batch 32 over 2 devices" in first
    for text in ("DEMO set", "Report:", "Exported:", "epoch 2/2",
                 "| tiny | demo | validation | 480 |"):
        assert text in first and text not in second, text
    report = json.load(open(os.path.join(workdir, "report.json")))
    assert report["hardware"]["hosts"] == 2 and report["hardware"]["devices"] == 2
    assert report["num_examples"] == demo.SPLIT_SIZES["validation"]
    assert [row["epoch"] for row in writers_lib.read_metrics(workdir)] == [1, 2]
    assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 1
    assert os.path.getsize(os.path.join(workdir, "export", "model.tflite")) > 0
    assert sorted(f for f in os.listdir(workdir) if f.startswith("report")) == [
        "report.json", "report.md"]


@pytest.mark.slow
def test_two_processes_end_where_one_process_with_two_devices_ends(
        one_process, two_processes):
    _assert_close(_params(two_processes[0]),
                  _params(one_process), rtol=1e-4, atol=1e-6)
    one = json.load(open(os.path.join(one_process, "report.json")))
    two = json.load(open(os.path.join(two_processes[0], "report.json")))
    assert one["confusion"] == two["confusion"]
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4)


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(one_process, tmp_path):
    """--mode=evaluate of one checkpoint: same confusion matrix as the one-process score."""
    logs = _run_two([f"--workdir={one_process}", "--mode=evaluate",
                     "--config.split=validation"], tmp_path)
    assert "Report:" in logs[0] and "Report:" not in logs[1]
    trained = json.load(open(os.path.join(one_process, "report.json")))
    scored = json.load(open(os.path.join(one_process, "eval_validation", "report.json")))
    assert scored["num_examples"] == trained["num_examples"] == 480
    assert scored["confusion"] == trained["confusion"]
    np.testing.assert_allclose(scored["loss"], trained["loss"], rtol=1e-5)


@pytest.mark.slow
def test_killed_two_process_run_resumes_where_the_uninterrupted_one_ends(
        two_processes, tmp_path):
    workdir = str(tmp_path / "run")
    argv = [f"--workdir={workdir}", "--config.export_variants=()"] + SETTINGS
    procs = _start_two(argv, tmp_path, FER_TEST_DIE_AFTER_EPOCH="1")
    first = os.path.join(workdir, "checkpoints", "latest", "1")
    try:
        assert procs[1].wait(timeout=TIMEOUT) == -signal.SIGKILL, _logs(tmp_path)[1][-3000:]
        deadline = time.time() + 60  # Process 0 finishes writing the checkpoint.
        while not os.path.isdir(first) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        procs[0].kill()  # What a scheduler does to the rest of a failed job.
        procs[0].wait()
    assert os.path.isdir(first)
    logs = _run_two(argv, tmp_path)
    assert "epoch 2/2" in logs[0] and "epoch 1/2" not in logs[0]  # Resumed at epoch 2.
    assert [row["epoch"] for row in writers_lib.read_metrics(workdir)] == [1, 2]
    _assert_close(_params(workdir), _params(two_processes[0]),
                  rtol=1e-6, atol=1e-7)
