"""benchmarks.train_speed in a tiny setting (2 steps of batch 4); no timing asserts."""

import json
import os

import jax
import numpy as np
import pytest

import configs
from benchmarks import train_speed
from fer.training import train as train_lib

TINY = ["--design", "resnet_fer_tiny", "--batch", "4", "--steps", "2", "--repeats", "1",
        "--warmup", "1"]


def _check_row(row, runners):
    assert row["design"] == "resnet_fer_tiny"
    assert row["config"] == train_speed.DESIGNS["resnet_fer_tiny"]
    assert row["batch_size"] == 4 and row["input_shape"] == [48, 48, 1]
    assert set(row["params"]) == set(runners)
    assert row["params"]["fer"] == 1_227_880
    assert row["macs_per_image"] > 1e6
    for name in runners:
        for phase in ("train", "eval"):
            assert row[f"{name}_{phase}_images_per_second"] > 0
            assert row[f"{name}_{phase}_cores_busy"] >= 0


def test_benchmark_writes_its_files(tmp_path):
    record = train_speed.main(TINY + ["--out", str(tmp_path)])
    assert sorted(os.listdir(tmp_path)) == ["result.csv", "result.json", "result.md"]
    saved = json.load(open(tmp_path / "result.json"))
    assert saved["setting"]["batch_size"] == 4 and saved["setting"]["steps"] == 2
    assert saved["setting"]["data"] == "synthetic in-memory batches"
    [row] = saved["rows"]
    _check_row(row, ["fer"])
    assert record["rows"][0]["params"] == row["params"]
    table = open(tmp_path / "result.md").read()
    assert "| resnet_fer_tiny 48x48 | fer | 1,227,880 |" in table


def test_torch_twin_has_the_same_network(tmp_path):
    if not train_speed.torch_available():
        pytest.skip(train_speed.TORCH_MISSING)
    record = train_speed.main(TINY + ["--torch", "--out", str(tmp_path)])
    [row] = record["rows"]
    _check_row(row, ["fer", "torch_eager", "torch_compile"])
    assert row["params"]["torch_eager"] == row["params"]["fer"]
    assert "fer_over_torch_eager_train" in row


def test_synthetic_batch_follows_the_label_mode():
    config = configs.load(train_speed.DESIGNS["resnet_fer_tiny"])
    soft = train_speed.synthetic_batch(config, 5)
    assert soft["image"].shape == (5, 48, 48, 1) and soft["target"].shape == (5, 8)
    np.testing.assert_allclose(soft["target"].sum(-1), 1, rtol=1e-6)
    config.label_mode = "majority"
    hard = train_speed.synthetic_batch(config, 5)
    assert set(np.unique(hard["target"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(hard["target"].argmax(-1), hard["label"])


def test_cpu_compiler_options_yield_to_xla_flags(monkeypatch):
    mesh = train_lib.create_mesh()
    assert jax.devices()[0].platform == "cpu"
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert train_lib.compiler_options(mesh) == train_lib.CPU_COMPILER_OPTIONS
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert train_lib.compiler_options(mesh) is None
