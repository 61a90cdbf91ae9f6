"""Latency JSON schema, the standalone ARM runner, and the ssh driver on a local shell."""

import ast
import json
import os
import shutil
import stat
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import compare
from benchmarks import latency
from benchmarks.arm import __main__ as arm
from benchmarks.arm import runner
from fer import spec as spec_lib
from fer.export import tflite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRY_KEYS = {"model", "model_path", "model_bytes", "sha256", "variant", "design",
              "label_set", "input_shape", "input_dtype", "batch", "runtime", "threads",
              "warmup", "runs", "ms_median", "ms_min", "ms_max", "ms_mean", "device",
              "timestamp"}
DEVICE_KEYS = {"name", "cpu_model", "cpu_count", "machine", "system", "python"}


class SmallNet(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.relu(nn.Conv(4, (3, 3))(x)).reshape((x.shape[0], -1))
        return nn.Dense(7)(x)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """float32 and dynamic-range exports of a small model (12x12 gray, FER2013 labels)."""
    spec = spec_lib.ModelSpec.for_label_set("small", "fer2013", input_shape=(12, 12, 1))
    module = SmallNet()
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 12, 12, 1)))
    images = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    out = str(tmp_path_factory.mktemp("export"))
    tflite.export(module, variables, spec, out, variants=("float32", "dynamic_range"),
                  validation_images=images)
    return out


def _check_entry(entry, *, threads, runs, variant):
    assert ENTRY_KEYS <= set(entry) and DEVICE_KEYS <= set(entry["device"])
    assert entry["threads"] == threads and entry["runs"] == runs
    assert entry["variant"] == variant and entry["design"] == "small"
    assert entry["input_shape"] == [12, 12, 1] and entry["batch"] == 1
    assert 0 < entry["ms_min"] <= entry["ms_median"] <= entry["ms_max"]
    assert entry["device"]["name"] and entry["device"]["cpu_model"]


def test_time_model_schema(export_dir):
    entry = runner.time_model(os.path.join(export_dir, "model.tflite"), threads=2,
                              runs=20, warmup=2)
    _check_entry(entry, threads=2, runs=20, variant="float32")
    assert entry["model_bytes"] == os.path.getsize(os.path.join(export_dir, "model.tflite"))
    json.dumps(entry)  # JSON-ready.


def test_runner_imports_only_numpy_and_litert():
    tree = ast.parse(open(os.path.join(REPO, "benchmarks", "arm", "runner.py")).read())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    third_party = {m for m in modules if m not in sys.stdlib_module_names}
    assert third_party == {"numpy", "ai_edge_litert"}, third_party


def test_runner_runs_standalone(tmp_path, export_dir):
    """Copied alone into a folder, as on a device: no fer, no benchmarks package."""
    shutil.copy(os.path.join(REPO, "benchmarks", "arm", "runner.py"), tmp_path)
    for name in ("model_dynamic_range.tflite", "model.json"):
        shutil.copy(os.path.join(export_dir, name), tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", "runner.py", "--model", "model_dynamic_range.tflite",
         "--threads", "1,2", "--runs", "10", "--warmup", "1", "--json", "out/r.json"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "r.json").read_text())
    assert report["schema"] == runner.SCHEMA
    assert [e["threads"] for e in report["results"]] == [1, 2]
    for e in report["results"]:
        _check_entry(e, threads=e["threads"], runs=10, variant="dynamic_range")


def test_runner_uses_model_json(tmp_path, export_dir):
    shutil.copy(os.path.join(export_dir, "model.tflite"), tmp_path)
    spec = json.load(open(os.path.join(export_dir, "model.json")))
    (tmp_path / "model.json").write_text(json.dumps({**spec, "input_shape": [48, 48, 1]}))
    with pytest.raises(ValueError, match="model.json says"):
        runner.time_model(str(tmp_path / "model.tflite"), runs=1, warmup=0)
    (tmp_path / "model.json").write_text(json.dumps({**spec, "normalisation": "imagenet"}))
    with pytest.raises(ValueError, match="normalisation"):
        runner.time_model(str(tmp_path / "model.tflite"), runs=1, warmup=0)


def test_latency_cli_writes_the_shared_schema(tmp_path, export_dir, capsys):
    out = tmp_path / "latency"
    assert latency.main(["--model", os.path.join(export_dir, "model.tflite"), "--threads",
                         "1,2", "--runs", "10", "--warmup", "1", "--json",
                         str(tmp_path / "one.json"), "--out", str(out)]) == 0
    report = json.loads((tmp_path / "one.json").read_text())
    assert report == json.loads((out / "latency.json").read_text())
    assert report["schema"] == runner.SCHEMA and len(report["results"]) == 2
    csv_lines = (out / "latency.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("model,variant,design,threads")
    printed = capsys.readouterr().out
    assert "| model.tflite | float32 |" in printed
    assert printed.strip() == (out / "latency.md").read_text().strip()


def test_arm_on_a_local_transport(tmp_path, export_dir):
    models = [os.path.join(export_dir, "model.tflite"),
              os.path.join(export_dir, "model_dynamic_range.tflite")]
    transport = arm.LocalTransport(str(tmp_path / "device_home"))
    report = arm.run_on_device(transport, models, [1, 2], runs=10, warmup=1,
                               python=sys.executable)
    assert [(e["variant"], e["threads"]) for e in report["results"]] == [
        ("float32", 1), ("float32", 2), ("dynamic_range", 1), ("dynamic_range", 2)]
    for e in report["results"]:
        _check_entry(e, threads=e["threads"], runs=10, variant=e["variant"])
        assert e["transport"].startswith("local ")
    # Each model went to its own folder with its model.json.
    assert (tmp_path / "device_home" / "fer_arm" / "m1" / "model.json").exists()
    results = tmp_path / "arm_results"
    path = arm.save_report(report, str(results))
    assert os.path.dirname(path) == str(results)
    assert arm.load_reports(str(results)) == report["results"]
    # A rehearsal on this machine is not an ARM device: it stays out of the device table.
    text = compare.markdown([], arm.load_reports(str(results)), ["float32"], [1],
                            runner.device_info(), 10)
    assert "On ARM devices" not in text and "not device timings" in text
    assert not any(arm.is_device_entry(e) for e in report["results"])


def test_only_real_arm_devices_fill_the_device_table(tmp_path, export_dir):
    entry = runner.time_model(os.path.join(export_dir, "model.tflite"), runs=2, warmup=0)
    pi = {**entry, "transport": "ssh pi@raspberrypi",
          "device": {**entry["device"], "name": "Raspberry Pi 5", "machine": "aarch64"}}
    emulated = {**pi, "transport": "emulated /some/root"}
    by_hand = {k: v for k, v in pi.items() if k != "transport"}  # runner.py run on the Pi
    x86_ssh = {**pi, "device": {**pi["device"], "machine": "x86_64"}}
    assert [arm.is_device_entry(e) for e in (pi, emulated, by_hand, x86_ssh)] == [
        True, False, True, False]
    text = compare.markdown([], [pi, emulated], ["float32"], [1], runner.device_info(), 10)
    device_table = text.split("On ARM devices")[1].split("not device timings")[0]
    assert device_table.count("Raspberry Pi 5") == 1 and "emulated" in text.split(
        "not device timings")[1]


def test_variant_is_read_from_the_records(tmp_path, export_dir):
    """The shipped model.tflite is dynamic_range: its shipped.json says so, not its name."""
    shutil.copy(os.path.join(export_dir, "model_dynamic_range.tflite"),
                tmp_path / "model.tflite")
    shutil.copy(os.path.join(export_dir, "model.json"), tmp_path)
    model = str(tmp_path / "model.tflite")
    assert runner.variant_of(model) == "float32"  # No records: the file-name rule.
    (tmp_path / "export.json").write_text(json.dumps(
        {"variants": {"dynamic_range": {"file": "model_dynamic_range.tflite"}},
         "default": "dynamic_range"}))
    assert runner.variant_of(model) == "dynamic_range"  # export's default copy.
    (tmp_path / "shipped.json").write_text(json.dumps({"variant": "int8"}))
    assert runner.variant_of(model) == "int8"  # shipped.json wins for model.tflite.
    assert runner.variant_of(os.path.join(export_dir, "model_dynamic_range.tflite")) == \
        "dynamic_range"
    # The driver ships the records with the model: the device names it right too.
    device = arm.LocalTransport(str(tmp_path / "home"))
    report = arm.run_on_device(device, [model], [1], runs=2, warmup=0, python=sys.executable)
    assert report["results"][0]["variant"] == "int8"
    (tmp_path / "shipped.json").unlink()  # The device's copy from the last run must go too.
    report = arm.run_on_device(device, [model], [1], runs=2, warmup=0, python=sys.executable)
    assert report["results"][0]["variant"] == "dynamic_range"


def test_the_shipped_model_is_reported_as_its_variant(tmp_path):
    shipped_dir = os.path.join(REPO, "fer", "assets", "model")
    shipped = json.load(open(os.path.join(shipped_dir, "shipped.json")))
    model = os.path.join(shipped_dir, "model.tflite")
    assert latency.main(["--model", model, "--runs", "2", "--warmup", "0",
                         "--out", str(tmp_path)]) == 0
    entry = json.loads((tmp_path / "latency.json").read_text())["results"][0]
    assert entry["variant"] == shipped["variant"] != "float32"


def test_predict_matches_the_fer_runtime_and_comes_back_from_the_device(tmp_path, export_dir):
    from fer.export import runtime

    faces = np.random.default_rng(1).integers(0, 256, (6, 12, 12), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", faces)
    models = [os.path.join(export_dir, n)
              for n in ("model.tflite", "model_dynamic_range.tflite")]
    report = arm.run_on_device(arm.LocalTransport(str(tmp_path / "home")), models, [1, 2],
                               runs=2, warmup=0, python=sys.executable,
                               faces=str(tmp_path / "faces.npy"))
    for entry, model in zip(report["results"][::2], models):
        expected = runtime.LiteRTClassifier(model).predict_probs(faces)
        np.testing.assert_allclose(runner.predict(model, faces), expected, atol=1e-6)
        np.testing.assert_allclose(entry["probs"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="faces: expected uint8"):
        runner.predict(models[0], faces.astype(np.float32))
    saved = arm.save_report(report, str(tmp_path / "saved"))
    assert "probs" not in json.load(open(saved))["results"][0]


def _stub(path, body):
    path.write_text("#!/bin/bash\nset -e\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_arm_ssh_mode_with_ssh_replaced_by_a_local_shell(tmp_path, export_dir, monkeypatch,
                                                         capsys):
    home = tmp_path / "home"
    home.mkdir()
    skip_options = ('while [[ "$1" == -* ]]; do case "$1" in -o|-p|-P|-i) shift 2;; '
                    '*) shift;; esac; done\n')
    ssh = _stub(tmp_path / "ssh", skip_options + 'echo "$1" >> "$FAKE_HOME/targets"\n'
                'shift\ncd "$FAKE_HOME" && bash -c "$*"\n')
    scp = _stub(tmp_path / "scp", skip_options +
                'map() { if [[ "$1" == *:* ]]; then echo "$FAKE_HOME/${1#*:}"; '
                'else echo "$1"; fi; }\ncp "$(map "$1")" "$(map "$2")"\n')
    monkeypatch.setenv("FAKE_HOME", str(home))
    results = tmp_path / "arm"
    assert arm.main(["--ssh", "pi@raspberrypi", "--port", "8022",
                     "--model", os.path.join(export_dir, "model.tflite"),
                     "--threads", "1", "--runs", "10", "--warmup", "1",
                     "--python", sys.executable, "--ssh-command", ssh, "--scp-command", scp,
                     "--out", str(results)]) == 0
    assert set((home / "targets").read_text().split()) == {"pi@raspberrypi"}
    entries = arm.load_reports(str(results))
    assert len(entries) == 1 and entries[0]["transport"] == "ssh pi@raspberrypi"
    assert "Saved" in capsys.readouterr().out


def test_arm_reports_a_failing_device(tmp_path, export_dir, capsys):
    code = arm.main(["--local", str(tmp_path / "home"), "--model",
                     os.path.join(export_dir, "model.tflite"), "--python", "false",
                     "--out", str(tmp_path / "arm")])
    assert code == 1 and "failed" in capsys.readouterr().err
    assert not (tmp_path / "arm").exists()


def test_cpu_model_names_arm_cores():
    pi4 = "".join(f"processor\t: {i}\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n"
                  for i in range(4)) + "Hardware\t: BCM2835\nModel\t: Raspberry Pi 4\n"
    assert runner.cpu_model(pi4) == "4x Cortex-A72 (BCM2835)"
    phone = "".join(f"processor\t: {i}\nCPU part\t: {part}\n\n"
                    for i, part in enumerate(["0xd05"] * 4 + ["0xd0b"] * 3 + ["0xd44"]))
    assert runner.cpu_model(phone) == "4x Cortex-A55 + 3x Cortex-A76 + 1x Cortex-X1"
    assert runner.cpu_model("model name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"


def test_arm_export_dir_times_every_accepted_variant(tmp_path, export_dir, capsys):
    results = tmp_path / "rehearsal"
    assert arm.main(["--local", str(tmp_path / "home"), "--export", export_dir,
                     "--threads", "1", "--runs", "2", "--warmup", "0",
                     "--out", str(results)]) == 0
    record = tflite.load_record(export_dir)
    assert [e["variant"] for e in arm.load_reports(str(results))] == list(record["variants"])
    assert "rehearsal, not a device timing" in capsys.readouterr().out
    assert arm.main(["--local", str(tmp_path / "home"), "--export", str(tmp_path)]) == 1
    assert "no export.json" in capsys.readouterr().err


def test_compare_judges_old_int8_refusals_again(tmp_path, monkeypatch):
    """An int8 refused by the agreement-only rule (no `acceptance` in export.json) is
    exported again; one refused under the accuracy rule is not."""
    export = tmp_path / tflite.EXPORT_DIRNAME
    export.mkdir()
    record = {"variants": {"float32": {"file": "model.tflite"}}, "refused": {"int8": {}}}
    (export / tflite.EXPORT_RECORD).write_text(json.dumps(record))
    asked = []
    monkeypatch.setattr(tflite, "export_workdir",
                        lambda workdir, variants: asked.append(variants))
    compare.ensure_export(str(tmp_path), ("float32", "int8"), allow=True)
    assert asked == [("float32", "int8")]
    (export / tflite.EXPORT_RECORD).write_text(json.dumps({**record, "acceptance": {}}))
    compare.ensure_export(str(tmp_path), ("float32", "int8"), allow=True)
    assert len(asked) == 1
