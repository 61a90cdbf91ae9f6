"""launch.py end to end as a user runs it: train + report, then --mode=evaluate.

The stand-in tests route fer.training to the tiny model and in-memory data and run
launch.py's real command line in a subprocess (flags, config overrides, reports).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import training_fixtures as fx
from fer import loading
from fer.training import writers as writers_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN_WITH_STAND_INS = textwrap.dedent("""
    import os, runpy, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import training_fixtures
    training_fixtures.install_stand_ins()
    if os.environ.get("FER_TEST_FORBID_RESTORE"):  # A fresh run reads no checkpoint.
        import orbax.checkpoint as ocp
        def restore(*args, **kwargs):
            raise AssertionError("a checkpoint was read back")
        ocp.CheckpointManager.restore = restore
    sys.argv = ["launch.py"] + {argv!r}
    runpy.run_path({launch!r}, run_name="__main__")
""")


OVERRIDES = ["--config.image_size=8", "--config.model=tiny", "--config.dataset=tiny",
             "--config.batch_size=32",
             "--config.epochs=2", "--config.progress_bar=False",
             "--config.learning_rate=0.01"]


def _command(argv):
    script = RUN_WITH_STAND_INS.format(
        repo=REPO, tests=os.path.join(REPO, "tests"), argv=argv,
        launch=os.path.join(REPO, "launch.py"))
    return [sys.executable, "-c", script]


def _launch(argv, cwd, **env):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **env)
    out = subprocess.run(_command(argv), cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("launch")
    workdir = str(cwd / "run")
    # Evaluated and exported from memory: a checkpoint read would fail the run.
    output = _launch([f"--workdir={workdir}"] + OVERRIDES, cwd, FER_TEST_FORBID_RESTORE="1")
    return workdir, output


def test_train_writes_report_and_prints_comparison_row(trained):
    workdir, output = trained
    assert "DEMO set" not in output  # The banner is the demo set's (test_real_launch_...).
    assert "| design | dataset | split |" in output
    assert "| tiny | tiny | validation | 60 |" in output
    for name in ("config.json", "model.json", "metrics.jsonl", "report.json", "report.md",
                 "confusion.png", "curves.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    report = json.load(open(os.path.join(workdir, "report.json")))
    assert report["num_examples"] == 60 and report["checkpoint"] == "best"
    assert 0.0 <= report["balanced_accuracy"] <= 1.0
    assert len(report["confusion"]) == len(report["labels"]) == 8


def test_report_is_what_evaluate_mode_gives_for_the_best_checkpoint(trained, tmp_path):
    """The train-mode report (the best epoch's in-memory validation) equals a fresh
    --mode=evaluate of the best checkpoint on the same split, number for number."""
    workdir, output = trained
    assert os.path.isfile(os.path.join(workdir, "export", "model.tflite"))  # In memory.
    _launch([f"--workdir={workdir}", "--mode=evaluate", "--config.checkpoint=best",
             "--config.split=validation"], tmp_path)
    trained_report = json.load(open(os.path.join(workdir, "report.json")))
    evaluated = json.load(open(os.path.join(workdir, "eval_validation", "report.json")))
    assert {"loss", "accuracy", "balanced_accuracy", "macro_f1", "confusion", "labels",
            "params", "checkpoint", "skipped"} <= set(evaluated) <= set(trained_report)
    assert {k: trained_report[k] for k in evaluated} == evaluated
    best = max(writers_lib.read_metrics(workdir),
               key=lambda r: (r["val_balanced_accuracy"], -r["val_loss"]))
    assert trained_report["loss"] == pytest.approx(best["val_loss"])


def test_evaluate_mode_scores_a_split_training_never_saw(trained, tmp_path):
    workdir, _ = trained
    output = _launch([f"--workdir={workdir}", "--mode=evaluate", "--config.split=test",
                      "--config.checkpoint=latest"], tmp_path)
    report = json.load(open(os.path.join(workdir, "eval_test", "report.json")))
    assert report["split"] == "test" and report["num_examples"] == 40
    assert report["checkpoint"] == "latest"
    assert "| tiny | tiny | test | 40 |" in output


def test_sigkilled_run_resumes_to_the_uninterrupted_state(trained, tmp_path):
    """SIGKILL after the first checkpoint, rerun the same command: same parameters."""
    workdir = str(tmp_path / "run")
    argv = [f"--workdir={workdir}"] + OVERRIDES
    env = dict(os.environ, JAX_PLATFORMS="cpu", FER_TEST_STEP_SLEEP="0.15")
    proc = subprocess.Popen(_command(argv), cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = os.path.join(workdir, "checkpoints", "latest", "1")
    deadline = time.time() + 120
    while not os.path.isdir(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_mid_run and os.path.isdir(first), "run ended before it could be killed"
    output = _launch(argv, tmp_path)
    assert "epoch 2/2" in output and "epoch 1/2" not in output  # Resumed at epoch 2.

    with fx.stand_ins():  # The tiny model, by name.
        _, resumed, _, _ = loading.load_model(workdir, "latest")
        _, uninterrupted, _, _ = loading.load_model(trained[0], "latest")
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
        assert np.array_equal(np.asarray(a), np.asarray(b))


CONFIGS = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "configs"))
                 if f.endswith(".py") and f != "__init__.py")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_documents_a_command_whose_config_loads(name):
    import importlib
    import re

    import configs
    from fer import models

    doc = importlib.import_module(f"configs.{name}").__doc__
    specs = re.findall(r"--config (\S+)", doc)
    assert "python launch.py" in doc and f"configs/{name}.py" in [
        spec.partition(":")[0] for spec in specs], f"configs/{name}.py documents no command"
    for spec in specs:
        assert configs.load(spec).model in models.list_models(), spec


def test_real_launch_on_demo_data(tmp_path):
    """The README's main command with the real zoo and demo set, cut to a few steps."""
    workdir = tmp_path / "runs" / "demo"  # The default --workdir, under the current one.
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "launch.py"), "--config.epochs=1",
         "--config.steps_per_epoch=3", "--config.export_variants=()",
         "--config.progress_bar=False"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = out.stdout + out.stderr
    assert out.returncode == 0, output[-4000:]
    assert "DEMO set" in output and "| xcao | demo | validation |" in output
    # ... then the shipped model on a real photo: one face, one of its labels.
    shown = output.split("The shipped model", 1)[1]
    from fer import labels as labels_lib
    assert "face at" in shown and any(f" {name} " in shown for name in labels_lib.CANONICAL)
    report = json.load(open(workdir / "report.json"))
    assert report["labels"] == json.load(open(workdir / "model.json"))["labels"]
    assert report["num_examples"] > 0 and len(report["confusion"]) == 8
    assert len(report["data_version"]) == 16 and report["seed"] == 0
    assert report["hardware"]["backend"] == "cpu" and report["train_seconds"] > 0
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [3]


def test_refused_int8_export_keeps_the_run(tmp_path, monkeypatch, capsys):
    """A refused int8 model is reported; the run still ends with its other exports."""
    import types

    from fer import launch_modes
    from fer.export import tflite as export_tflite

    run = types.SimpleNamespace(model="module", best_variables="variables", spec="spec")

    def refuse(module, variables, spec, config, out_dir, variants):
        assert (module, variables, spec) == ("module", "variables", "spec")
        assert variants == ("float16", "int8")
        raise export_tflite.Int8AgreementError("int8 model refused: top-1 agreement 90%")

    monkeypatch.setattr(export_tflite, "export_trained", refuse)
    out_dir = launch_modes.export_variables(run, None, str(tmp_path), ["float16", "int8"])
    assert out_dir == os.path.join(str(tmp_path), export_tflite.EXPORT_DIRNAME)
    assert "int8 model refused" in capsys.readouterr().out
    # --config.export_variants=float16,int8 arrives as one string: it is split.
    assert launch_modes.export_variables(run, None, str(tmp_path), ("float16, int8",)) \
        == out_dir
    assert launch_modes.export_variables(run, None, str(tmp_path), ("",)) is None
