"""The seed's tables: per label (Table 7), comparison (Table 5), preprocessing (Table 4)."""

import csv
import json
import os
import shutil
import time

import numpy as np
import pytest

import training_fixtures as fx
from benchmarks import compare
from benchmarks import per_label
from fer import labels as labels_lib
from fer.evaluation import metrics
from fer.export import tflite
from fer import loading
from fer.data import input_pipeline
from fer.evaluation import evaluate as evaluate_lib
from fer.training import train as train_lib
from research.preprocessing_table4 import __main__ as preprocessing


@pytest.fixture(scope="module", autouse=True)
def stand_ins():
    """The tiny model and datasets, registered by name (training_fixtures)."""
    with fx.stand_ins():
        yield


def _synthetic_report():
    labels = list(labels_lib.FER2013.labels)
    rng = np.random.default_rng(3)
    confusion = rng.integers(0, 20, (7, 7))
    confusion[1] = 0  # A label without examples.
    report = metrics.summarize(confusion, labels, loss=1.25)
    report.update(design="baseline", dataset="fer2013", split="validation")
    return report, confusion, labels


def test_per_label_table_from_report(tmp_path, capsys):
    report, confusion, labels = _synthetic_report()
    (tmp_path / "report.json").write_text(json.dumps(report))
    out = tmp_path / "out"
    assert per_label.main([str(tmp_path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for i, label in enumerate(labels):
        total, correct = int(confusion[i].sum()), int(confusion[i, i])
        acc = "n/a" if not total else f"{100 * correct / total:.2f}"
        assert f"| {label} | {correct} | {total - correct} | {acc} |" in printed
    overall = f"{100 * np.trace(confusion) / confusion.sum():.2f}"
    assert f"| **all** | {np.trace(confusion)} |" in printed and overall in printed
    assert float(overall) == pytest.approx(100 * report["accuracy"], abs=0.01)
    assert (out / "confusion.png").stat().st_size > 0
    rows = list(csv.DictReader(open(out / "per_label.csv")))
    assert [r["label"] for r in rows] == labels
    assert json.loads((out / "per_label.json").read_text())["rows"][1]["accuracy_pct"] is None


def test_per_label_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no report.json"):
        per_label.load_report(str(tmp_path))
    report, _, _ = _synthetic_report()
    report["confusion"] = [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="does not match"):
        per_label.per_label_rows(report)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """runs/ with one tiny trained + exported run (and a folder that is not a run)."""
    root = tmp_path_factory.mktemp("runs")
    workdir = str(root / "tiny")
    config = fx.tiny_config(epochs=2, dataset="tiny_val120")
    train_lib.train_and_evaluate(config, workdir)
    module, variables, _, config = loading.load_model(workdir)
    summary = evaluate_lib.evaluate_model(config, module, variables, "validation")
    summary.update(design="tiny")
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump(summary, f)
    try:
        tflite.export_workdir(workdir, ("float32", "int8"))
    except tflite.Int8AgreementError:
        pass  # compare shows it as refused; the test below checks either way.
    (root / "notes").mkdir()
    yield str(root), workdir, summary


def test_find_workdirs_skips_non_runs(trained_runs):
    root, workdir, _ = trained_runs
    assert compare.find_workdirs(root) == [workdir]


def test_compare_table_and_plot(tmp_path, trained_runs, capsys):
    root, workdir, summary = trained_runs
    arm_dir = tmp_path / "arm"
    arm_dir.mkdir()
    out = tmp_path / "compare"
    assert compare.main(["--runs", root, "--out", str(out), "--timing-runs", "50",
                         "--warmup", "2", "--no-export", "--arm", str(arm_dir)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "compare.json").read_text())
    (row,) = record["rows"]
    assert row["accuracy"] == summary["accuracy"] and row["loss"] == summary["loss"]
    assert row["params"] == sum(
        int(np.prod(s)) for s in [(3, 3, 1, 4), (4,), (8 * 8 * 4, 8), (8,), (4,), (4,)])
    export = tflite.load_record(os.path.join(workdir, "export"))
    assert row["sizes"] == {v: e["bytes"] for v, e in export["variants"].items()}
    assert row["jax_cpu"]["runs"] == 50
    timed = {f"float32@{t}" for t in (1, 2)}
    if "int8" in export["variants"]:
        timed |= {"int8@1", "int8@2"}
    assert set(row["litert"]) == timed
    for entry in [row["jax_cpu"], *row["litert"].values()]:
        assert 0 < entry["ms_min"] <= entry["ms_median"] <= entry["ms_max"]
    run = os.path.basename(workdir)
    assert (f"| {run} | tiny | tiny_val120/validation | {summary['num_examples']} | "
            f"{100 * summary['accuracy']:.2f} |") in printed
    assert row["run"] == run and row["measured"] == time.strftime("%Y-%m-%d")
    assert "LiteRT int8 2T ms" in printed and "On ARM devices" not in printed
    assert (out / "accuracy_latency.png").stat().st_size > 1000
    assert "accuracy_latency.png" in (out / "compare.md").read_text()
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert rows[0]["design"] == "tiny" and float(rows[0]["litert_float32_t1_ms_median"]) > 0


def test_plot_numbers_runs_most_accurate_first_and_colours_them_by_design(tmp_path,
                                                                          usage_error):
    def row(run, design, accuracy, ms):
        timing = {"ms_median": ms}
        return {"run": run, "design": design, "accuracy": accuracy, "params": 1000,
                "litert": {"float32@1": timing}, "jax_cpu": {"ms_median": 99.0}}

    rows = [row("a", "tiny", 0.5, 1.0), row("b", "tiny x2 mirrored", 0.7, 2.0),
            row("c", "other", None, 1.0), {**row("d", "other", 0.6, 0), "litert": {}}]
    points = compare.plot_points(rows)
    assert [p["run"] for p in points] == ["b", "d", "a"]  # c has no accuracy.
    assert [p["family"] for p in points] == ["tiny", "other", "tiny"]
    assert points[1]["ms"] == 99.0  # No LiteRT timing: the JAX one.
    assert compare.plot(rows, str(tmp_path / "p.png")) and (tmp_path / "p.png").exists()
    assert compare.plot([rows[2]], str(tmp_path / "none.png")) is None
    (tmp_path / "compare.json").write_text(json.dumps({"rows": rows}))
    (tmp_path / "accuracy_latency.png").write_bytes(b"stale")
    assert compare.main(["--out", str(tmp_path), "--replot"]) == 0
    assert (tmp_path / "accuracy_latency.png").read_bytes()[:4] == b"\x89PNG"
    with usage_error(r"--replot: no .*compare\.json; run the comparison first"):
        compare.main(["--out", str(tmp_path / "absent"), "--replot"])


def test_compare_keeps_earlier_rows_of_absent_runs(tmp_path, trained_runs):
    root, workdir, _ = trained_runs
    out = tmp_path / "compare"
    out.mkdir()
    earlier = {"design": "xcao", "workdir": "/elsewhere/runs/ferplus/xcao", "dataset": "ferplus",
               "split": "validation", "num_examples": 10, "accuracy": 0.5,
               "balanced_accuracy": 0.4, "loss": 1.0, "params": 7, "sizes": {},
               "agreement": {}, "refused": [], "litert": {},
               "jax_cpu": {"ms_median": 1.0, "ms_min": 0.9, "ms_max": 1.2, "runs": 50}}
    stale = {**earlier, "workdir": workdir, "accuracy": 0.01}  # Measured again below.
    (out / "compare.json").write_text(json.dumps({"rows": [earlier, stale]}))
    args = ["--runs", root, "--out", str(out), "--timing-runs", "50", "--warmup", "2",
            "--no-export", "--arm", str(tmp_path / "no_arm")]
    assert compare.main(args + ["--keep"]) == 0
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert sorted(r["run"] for r in rows) == sorted(["xcao", os.path.basename(workdir)])
    kept = next(r for r in rows if r["run"] == "xcao")
    assert kept["measured"] == "earlier" and kept["accuracy"] == 0.5
    assert "| xcao | xcao | ferplus/validation | 10 | 50.00 |" in (out / "compare.md").read_text()
    assert compare.main(args) == 0  # Without --keep only what is under --runs.
    assert len(json.loads((out / "compare.json").read_text())["rows"]) == 1


def test_rescore_scores_the_checkpoint_not_the_stale_report(tmp_path, trained_runs):
    """After a data protocol change a run's report.json is stale; --rescore ignores it."""
    _, workdir, summary = trained_runs
    copy = str(tmp_path / "tiny")
    shutil.copytree(workdir, copy)
    stale = {**summary, "accuracy": 0.01, "balanced_accuracy": 0.02, "num_examples": 5}
    with open(os.path.join(copy, "report.json"), "w") as f:
        json.dump(stale, f)
    kwargs = dict(runs=50, warmup=1, threads=(1,), variants=("float32",), export=False)
    trusted = compare.benchmark_run(copy, **kwargs)
    assert (trusted["accuracy"], trusted["num_examples"], trusted["rescored"]) == (0.01, 5, False)
    fresh = compare.benchmark_run(copy, rescore=True, **kwargs)
    assert fresh["rescored"] and fresh["num_examples"] == summary["num_examples"] == 120
    assert fresh["accuracy"] == pytest.approx(summary["accuracy"])
    assert fresh["balanced_accuracy"] == pytest.approx(summary["balanced_accuracy"])


def test_compare_needs_runs(tmp_path, usage_error):
    with usage_error("no trained runs under"):
        compare.main(["--runs", str(tmp_path), "--out", str(tmp_path / "o")])


def test_limited_dataset_scores_the_first_faces_of_one_split():
    name = preprocessing.limited("tiny", "validation", 50)
    assert preprocessing.limited("tiny", "validation", 50) == name  # Registered once.
    config = fx.tiny_config(dataset=name)
    info = input_pipeline.get_dataset_info(config)
    assert info.num_examples["validation"] == 50 and info.num_examples["train"] == 256
    val = list(input_pipeline.create_split(config, "validation", train=False, batch_size=32,
                                           seed=0))
    assert sum(float(b["mask"].sum()) for b in val) == 50
    whole = next(input_pipeline.create_split(fx.tiny_config(), "validation", train=False,
                                             batch_size=32, seed=0))
    np.testing.assert_array_equal(val[0]["label"], whole["label"])  # The first faces.
    assert input_pipeline.get_dataset_info(fx.tiny_config()).num_examples["validation"] == 60


def test_preprocessing_rows_come_from_real_runs(tmp_path):
    config = fx.tiny_config(epochs=1, steps_per_epoch=4,
                            dataset=preprocessing.limited("tiny", "validation", 40))
    rows = [preprocessing.run_variant(name, preprocessing.variant_config(config, overrides),
                                      str(tmp_path / name))
            for name, overrides in (("none", {}), ("equalize", {"preprocessing": "equalize"}))]
    for row in rows:
        assert row["num_examples"] == 40 and 0 <= row["accuracy"] <= 1
        assert os.path.exists(os.path.join(row["workdir"], "metrics.jsonl"))
    # Same seed, schedule and faces: only the equalized pixels can move the loss.
    none, equalized = rows
    assert equalized["loss"] != pytest.approx(none["loss"], rel=1e-6)
    text = preprocessing.markdown(rows, dataset="demo", epochs=1, limit=40)
    assert "| none | 8x8 |" in text and "| equalize | 8x8 |" in text
    assert "at most 40" in text


def test_preprocessing_cli_validates_arguments(usage_error):
    with usage_error("--data_dir is required"):
        preprocessing.main(["--epochs", "1"])  # No --data_dir for fer2013.
    with usage_error(r"unknown variants \['sharpen'\]"):
        preprocessing.main(["--dataset", "demo", "--variants", "sharpen"])


def _table5_row(design, seed, accuracy, *, protocol="table5", faces=3191, ms=1.0):
    """A compare.json row of a configs/table5.py run, as benchmark_run writes it."""
    return {"run": design + (f"_seed{seed}" if seed else ""), "design": design, "seed": seed,
            "protocol": protocol, "recipe": f"configs/table5.py:model={design},"
                                            f"protocol={protocol},seed={seed}",
            "dataset": "ferplus", "split": "validation", "num_examples": faces,
            "accuracy": accuracy, "balanced_accuracy": accuracy - 0.1, "loss": 1.0,
            "params": 1000, "sizes": {"int8": 2048}, "agreement": {}, "refused": [],
            "litert": {"float32@1": {"ms_median": ms}, "int8@1": {"ms_median": ms / 2}},
            "train_seconds": 5400.0, "images_per_second": 300.0, "trained_on": "cpu",
            "per_label": {"neutral": 100 * accuracy, "contempt": 0.0}}


def test_recipe_is_the_argument_string_and_every_override_joins_the_protocol():
    import configs
    from configs import table5

    config = configs.load(table5.spec("xcao", "thesis", 2))
    assert compare.recipe(config) == {"protocol": "thesis", "seed": 2,
                                      "recipe": "configs/table5.py:model=xcao,protocol=thesis,seed=2"}
    config.data_dir, config.num_workers = "/data/ferplus.npz", 3  # Where, not what: no change.
    assert compare.recipe(config)["protocol"] == "thesis"
    config.steps_per_epoch, config.learning_rate = 2, 0.01
    smoke = compare.recipe(config)
    assert smoke["protocol"] == "thesis + learning_rate=0.01 + steps_per_epoch=2"
    assert smoke["recipe"].endswith("seed=2 --config.learning_rate=0.01 --config.steps_per_epoch=2")
    assert compare.recipe(configs.load("seed_designs:model=xcao"))["protocol"] == ""


def test_protocols_never_share_a_table_and_one_protocol_needs_the_same_faces():
    rows = [_table5_row("xcao", 0, 0.7), _table5_row("xcao", 0, 0.6, protocol="thesis"),
            {**_table5_row("xcao", 0, 0.5), "protocol": ""}]
    groups = compare.protocol_groups(rows)
    assert list(groups) == ["", "table5", "thesis"]
    assert [len(g) for g in groups.values()] == [1, 1, 1]
    with pytest.raises(ValueError, match=r"'table5'.*different faces.*mobilenet_v1: "
                                         r"ferplus/validation 3396.*--rescore"):
        compare.protocol_groups(rows + [_table5_row("mobilenet_v1", 0, 0.5, faces=3396)])


def test_protocol_table_pools_seeds_beside_the_thesis_and_names_the_best():
    rows = [_table5_row("resnet_fer_tiny", 0, 0.80, ms=0.3),
            *(_table5_row("xcao", s, a, ms=0.7) for s, a in ((0, 0.70), (1, 0.72), (2, 0.74))),
            _table5_row("baseline", 0, 0.60)]
    text = compare.protocol_markdown("table5", rows)
    lines = text.splitlines()
    assert "`table5` (ferplus / validation, 3,191 faces)" in lines[0]
    table = [l for l in lines if l.startswith("| ") and "thesis acc." not in l and "---" not in l]
    # configs/table5.py's order: the thesis's designs, then ours.
    assert [l.split(" | ")[0] for l in table[:3]] == ["| baseline", "| xcao", "| resnet_fer_tiny"]
    assert table[1].startswith("| xcao | 68.61 | 1,000 | 0,1,2 | 72.00 ± 2.00 | 62.00 ± 2.00 | "
                               "1.50 h | 300 | cpu | 2.0 | 0.700 | 0.350 | 3,191 | "
                               "`configs/table5.py:model=xcao,protocol=table5,seed=0|1|2` |")
    assert table[2].startswith("| resnet_fer_tiny | - | 1,000 | 0 | 80.00 | 70.00 |")
    assert ("Best of the thesis's designs: xcao (72.00% accuracy, 62.00% balanced); best of "
            "ours: resnet_fer_tiny (80.00%, 70.00%): +8.00 points of accuracy and +8.00 of "
            "balanced accuracy, at 0.300 ms against 0.700 ms.") in text
    assert "| xcao | 72.0 | 0.0 |" in text  # Table 7: per label, mean over seeds.
    rows[1] = {**rows[1], "sizes": {}, "refused": ["int8"], "litert": {"float32@1": {
        "ms_median": 0.7}}}  # Seed 0's int8 refused: the cells say so and time the others.
    assert "| 2.0 (1 of 3 refused) | 0.700 | 0.350 |" in compare.protocol_markdown("t", rows)
    assert "| xcao2, thesis Table 7 (AffectNet, 25K test faces) | 81 | 0 |" in text


def test_training_record_and_the_estimate_from_measured_speed(tmp_path):
    import configs

    epochs = [(1, 50.0, 20.0), (2, 200.0, 5.2), (2, 100.0, 9.0), (3, 200.0, 5.2)]  # 2 resumed.
    (tmp_path / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "step": 10 * e, "images_per_second": ips, "epoch_seconds": s})
        + "\n" for e, ips, s in epochs) + json.dumps({"note": 1}) + "\n")
    (tmp_path / "report.json").write_text(json.dumps({"hardware": {"device_kind": "cpu"},
                                                      "split_sizes": {"train": 28_000}}))
    config = configs.load("table5:model=xcao")  # Global batch 64: 640 images in 10 steps.
    record = compare.training_record(str(tmp_path), config)
    assert record == {"epochs_trained": 3, "train_seconds": 34.2, "images_per_second": 100.0,
                      "eval_seconds": pytest.approx(2.6), "train_images": 640,
                      "epoch_images": 27_968, "trained_on": "cpu"}  # 437 whole batches.
    assert compare.estimate_seconds(record, 30) == pytest.approx(30 * (279.68 + 2.6))
    assert "| run | cpu | 100 | 27,968 | 2.6 | 2.35 h |" in compare.estimate_markdown(
        [{"run": "run", **record}], 30)
