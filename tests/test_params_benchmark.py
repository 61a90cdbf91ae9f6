"""benchmarks.params: counts, the seed comparison and MACs are right."""

from __future__ import annotations

import json

import pytest

from benchmarks import params
from fer import models


def test_seed_setting_rows(tmp_path, capsys):
    path = tmp_path / "params.json"
    rows = params.main(["--designs", "baseline_bn,mobilenet_v1,resnet_fer_tiny",
                        "--json", str(path)])
    assert json.loads(path.read_text()) == rows
    by_name = {r["design"]: r for r in rows}
    for r in rows:
        assert {"design", "params", "seed_params", "input_shape", "num_classes",
                "macs"} <= set(r)
        assert r["macs"] > 0 and r["params"] <= r["total_params"]

    bn = by_name["baseline_bn"]
    assert (bn["input_shape"], bn["num_classes"]) == ([224, 224, 1], 8)
    assert bn["total_params"] == bn["seed_params"] == models.SEED_PARAMS["baseline_bn"]
    assert bn["ratio"] == 1.0 and bn["total_params"] - bn["params"] == 400

    mobile = by_name["mobilenet_v1"]
    assert (mobile["input_shape"], mobile["num_classes"]) == ([224, 224, 3], 1000)
    assert mobile["total_params"] == 4_253_864 and mobile["ratio"] == 1.0
    # MobileNet v1 at 224 px: 569M multiply-adds in its paper (convs and
    # the classifier); XLA also counts BatchNorm, ReLU6 and pooling.
    assert 569e6 <= mobile["macs"] <= 600e6

    assert by_name["resnet_fer_tiny"]["seed_params"] is None
    table = capsys.readouterr().out
    assert table.count("\n| ") == len(rows) and "| 4,253,864 |" in table


def test_custom_input_size_has_no_seed_ratio():
    (row,) = params.main(["--designs", "xcao", "--input-size", "48"])
    assert (row["input_shape"], row["num_classes"]) == ([48, 48, 1], 8)
    assert row["seed_params"] == models.SEED_PARAMS["xcao"] and row["ratio"] is None


def test_macs_match_a_hand_count():
    # Baseline at 8x8x1, 'SAME' 3x3 convs: an n x n map sees (3n - 2)^2 taps
    # per (input, output) channel pair; pools halve 8 -> 4 -> 2.
    convs = (22 ** 2) * (1 * 32 + 32 * 32) + (10 ** 2) * (32 * 64 + 64 * 64)
    dense = 2 * 2 * 64 * 512 + 512 * 3
    macs = params.measure("baseline", (8, 8, 1), 3)["macs"]
    assert convs + dense <= macs <= 1.02 * (convs + dense)  # + bias, ReLU, pool


def test_unknown_design_is_an_error():
    with pytest.raises(ValueError, match="unknown design"):
        params.main(["--designs", "nope"])
