"""launch.py end to end as a user runs it: train + report, then --mode=evaluate.

The stand-in tests route fer.training to the tiny model and in-memory data and run
launch.py's real command line in a subprocess (flags, config overrides, reports).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN_WITH_STAND_INS = textwrap.dedent("""
    import runpy, sys
    sys.path[:0] = [{repo!r}, {tests!r}]
    import training_fixtures
    training_fixtures.install_stand_ins()
    sys.argv = ["launch.py"] + {argv!r}
    runpy.run_path({launch!r}, run_name="__main__")
""")


def _launch(argv, cwd):
    script = RUN_WITH_STAND_INS.format(
        repo=REPO, tests=os.path.join(REPO, "tests"), argv=argv,
        launch=os.path.join(REPO, "launch.py"))
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("launch")
    workdir = str(cwd / "run")
    overrides = ["--config.image_size=8", "--config.model=tiny", "--config.batch_size=32",
                 "--config.epochs=2", "--config.progress_bar=False",
                 "--config.learning_rate=0.01"]
    output = _launch([f"--workdir={workdir}"] + overrides, cwd)
    return workdir, output


def test_train_writes_report_and_prints_comparison_row(trained):
    workdir, output = trained
    assert "DEMO set" in output and "--config.data_dir" in output
    assert "| design | dataset | split |" in output
    assert "| tiny | demo | validation | 60 |" in output
    for name in ("config.json", "model.json", "metrics.jsonl", "report.json", "report.md",
                 "confusion.png", "curves.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    report = json.load(open(os.path.join(workdir, "report.json")))
    assert report["num_examples"] == 60 and report["checkpoint"] == "best"
    assert 0.0 <= report["balanced_accuracy"] <= 1.0
    assert len(report["confusion"]) == len(report["labels"]) == 8


def test_evaluate_mode_scores_a_split_training_never_saw(trained, tmp_path):
    workdir, _ = trained
    output = _launch([f"--workdir={workdir}", "--mode=evaluate", "--config.split=test",
                      "--config.checkpoint=latest"], tmp_path)
    report = json.load(open(os.path.join(workdir, "eval_test", "report.json")))
    assert report["split"] == "test" and report["num_examples"] == 40
    assert report["checkpoint"] == "latest"
    assert "| tiny | demo | test | 40 |" in output
