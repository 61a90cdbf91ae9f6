"""scripts/train_packed.sh end to end on the demo set: train, stop, slim, bundle.

One tiny run (2 epochs of 3 steps) through the real launch.py, as a GPU machine would
run the FER+ configs; about half a minute on 2 cores.
"""

import os
import subprocess
import sys
import tarfile

import pytest

from fer import loading
from fer.training import checkpoint as checkpoint_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY_CONFIG = '''
from configs import default, demo


def get_config(arg=None):
    config = demo.get_config()
    config.epochs = default.parse_arg(arg, epochs=1).epochs
    config.steps_per_epoch = 3
    return config
'''


def _script(name, args, **env):
    """scripts/NAME run by bash from the repository root with this interpreter."""
    return subprocess.run(["bash", os.path.join(REPO, "scripts", name), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable, **env})


@pytest.mark.slow
def test_train_packed_bundles_a_slim_run_that_loads(tmp_path):
    config = tmp_path / "tiny.py"
    config.write_text(TINY_CONFIG)
    bundle, runs = tmp_path / "bundle", tmp_path / "runs"
    out = _script("train_packed.sh", ["unused.npz", "300", str(bundle), f"{config}:epochs=2:tiny"],
                  RUNS=str(runs))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    status = (bundle / "train_packed.txt").read_text()
    assert status.startswith("tiny: exit 0 after ") and "bundled (slim)" in status
    with tarfile.open(bundle / "tiny.tgz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    unpacked = str(tmp_path / "unpacked" / "tiny")
    assert {"config.json", "model.json", "report.json", "metrics.jsonl"} <= set(
        os.listdir(unpacked))
    model, variables, spec, config_back = loading.load_model(unpacked, "latest")
    assert spec.design == "xcao" and config_back.num_workers >= 1
    assert config_back.data_dir == "unused.npz"  # The run records where its data came from.
    checkpoints = checkpoint_lib.Checkpoints(unpacked, read_only=True)
    assert checkpoints.epochs("latest") == [2]  # The config's argument went through.
    checkpoints.close()


def test_device_sh_refuses_bad_calls_with_a_reason(tmp_path):
    assert _script("device.sh", []).returncode == 2
    assert _script("device.sh", ["prepare", "ferplus"]).returncode == 2
    missing = _script("device.sh", ["train", "ferplus", "60", str(tmp_path / "out"), "c.py:x"],
                      DEVICE_DIR=str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "device.sh prepare" in missing.stderr


@pytest.mark.slow
def test_device_sh_trains_from_the_carried_folder(tmp_path):
    """The machine-side half: the pack is found in DEVICE_DIR, each run is bundled in OUT."""
    config = tmp_path / "tiny.py"
    config.write_text(TINY_CONFIG)
    carried = tmp_path / "carried"
    carried.mkdir()
    (carried / "demo.npz").write_bytes(b"")  # The demo config reads no pack.
    out = _script("device.sh", ["train", "demo", "300", str(tmp_path / "out"), f"{config}:tiny"],
                  DEVICE_DIR=str(carried), RUNS=str(tmp_path / "runs"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "devices:" in out.stdout
    assert (tmp_path / "out" / "tiny.tgz").exists()
    assert (tmp_path / "runs" / "tiny" / "report.json").exists()
