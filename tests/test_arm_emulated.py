"""The ARM runner on an emulated aarch64 CPU (benchmarks/arm/emulated.sh's root).

Runs only where that root exists ($FER_ARM_ROOT, default /tmp/fer-arm64) and
this user may chroot into it; building the root is not the test's job.
"""

import os

import numpy as np
import pytest

from benchmarks.arm import __main__ as arm
from benchmarks.arm import parity
from benchmarks.arm import runner
from test_benchmarks_latency_arm import export_dir  # noqa: F401 (a fixture)

ROOT = os.environ.get("FER_ARM_ROOT", "/tmp/fer-arm64")


def _why_not() -> str | None:
    if not os.path.exists(os.path.join(ROOT, arm.EMULATED_PYTHON.lstrip("/"))):
        return f"no aarch64 root at {ROOT} (make one: benchmarks/arm/emulated.sh {ROOT})"
    if os.geteuid() != 0:
        return "chroot into the aarch64 root needs root"
    if not os.path.exists("/proc/sys/fs/binfmt_misc/qemu-aarch64"):
        return "qemu-aarch64 is not registered in binfmt_misc (rerun emulated.sh)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")


def test_runner_times_models_on_aarch64(tmp_path, export_dir):  # noqa: F811
    models = [os.path.join(export_dir, n) for n in ("model.tflite", "model_dynamic_range.tflite")]
    out = tmp_path / "emulated"
    assert arm.main(["--emulate", ROOT, "--model", models[0], "--model", models[1],
                     "--threads", "1,2", "--runs", "3", "--warmup", "1",
                     "--remote-dir", "fer_arm_test", "--out", str(out)]) == 0
    entries = arm.load_reports(str(out))
    assert [(e["variant"], e["threads"]) for e in entries] == [
        ("float32", 1), ("float32", 2), ("dynamic_range", 1), ("dynamic_range", 2)]
    for e in entries:
        assert e["device"]["machine"] == "aarch64" and e["transport"].startswith("emulated ")
        assert e["runtime"] == f"ai-edge-litert {runner.litert_version()}"
        assert not arm.is_device_entry(e)


def test_aarch64_outputs_match_x86(export_dir):  # noqa: F811
    faces = np.random.default_rng(2).integers(0, 256, (8, 12, 12), dtype=np.uint8)
    models = [os.path.join(export_dir, n) for n in ("model.tflite", "model_dynamic_range.tflite")]
    rows = parity.parity(arm.ChrootTransport(ROOT), models, faces)
    assert [r["variant"] for r in rows] == ["float32", "dynamic_range"]
    for r in rows:
        assert r["faces"] == 8 and "aarch64" in r["other"]
        assert r["top1_agreement"] == 1.0 and r["max_abs_delta_p"] < 1e-3, r
