"""python -m benchmarks.compare [--runs runs/] [--out DIR]

The seed's Table 5 for every design with a trained workdir under --runs:
accuracy, balanced accuracy and loss (the run's report.json), parameters,
model size per exported variant, and ms per prediction at batch 1 for JAX on
CPU and for LiteRT float32 / int8 at 1 and 2 threads (median of --timing-runs
after warm-up, with min and max). Missing exports are made first (unless
--no-export). Latencies measured on ARM devices (`python -m benchmarks.arm`)
are merged as a second table. Writes compare.md / .csv / .json and
accuracy_latency.png (the seed's Figure 16 style: bubble area ~ parameters).

--rescore scores each run's best checkpoint again instead of trusting its
report.json: for when the data protocol changed after training (as FER+'s
validation faces did, from the plurality to the reference-majority rule). The table's `faces` column says what each row was
scored on.

Runs of configs/table5.py (config.protocol set) get tables of their own, one per
protocol: per design the thesis's reported accuracy beside ours, mean and sd over
seeds, training time and img/s, Table 7 per label, and the --config string that
reproduces each row (with any --config.* override it was trained with; runs with other
overrides form another table). A protocol's rows must be scored on the same faces:
compare refuses otherwise (--rescore scores them again).
--estimate prints, from each run's measured img/s, what --epochs epochs would take.

--keep keeps the rows of the previous compare.json in --out whose runs are not
under --runs any more (say, runs retrained elsewhere and only some brought back):
each row says when it was measured, so no number loses its date.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, Mapping, Sequence

import numpy as np

from benchmarks import latency
from benchmarks import per_label
from benchmarks.arm import __main__ as arm
from benchmarks.arm import runner

LITERT_VARIANTS = ("float32", "int8")
THREADS = (1, 2)


def find_workdirs(root: str) -> list[str]:
    """Trained runs under root (a run holds report.json, model.json and config.json)."""
    found = []
    for directory, subdirs, files in os.walk(root):
        if {"report.json", "model.json", "config.json"} <= set(files):
            found.append(directory)
            subdirs[:] = []  # A run's own subfolders (export/, eval_*/) are not runs.
        else:
            subdirs[:] = [d for d in subdirs if d not in ("checkpoints", "tensorboard")]
    return sorted(found)


def time_jax(module, variables, input_shape: Sequence[int], runs: int,
             warmup: int) -> dict[str, float]:
    """ms per prediction of the jitted JAX model on CPU at batch 1."""
    import jax
    from fer.export import tflite

    cpu = jax.devices("cpu")[0]
    variables = jax.device_put(variables, cpu)
    # Variables as an argument, not closed-over constants XLA would fold at compile time.
    jitted = jax.jit(lambda v, x: tflite.probability_fn(module, v)(x))
    fn = lambda x: jitted(variables, x)  # noqa: E731
    rng = np.random.default_rng(0)
    inputs = [jax.device_put(rng.random((1, *input_shape), np.float32), cpu)
              for _ in range(warmup + runs)]
    samples = []
    for i, x in enumerate(inputs):
        start = time.perf_counter()
        fn(x).block_until_ready()
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1e3)
    return {"ms_median": statistics.median(samples), "ms_min": min(samples),
            "ms_max": max(samples), "runs": runs, "warmup": warmup}


def ensure_export(workdir: str, variants: Sequence[str], allow: bool) -> dict[str, Any]:
    """The run's export record, exporting missing variants first when allowed."""
    from fer.export import tflite

    export_dir = os.path.join(workdir, tflite.EXPORT_DIRNAME)
    record = {"variants": {}, "refused": {}}
    if os.path.exists(os.path.join(export_dir, tflite.EXPORT_RECORD)):
        record = tflite.load_record(export_dir)
    done = set(record["variants"])
    if "acceptance" in record:  # Refusals under the old agreement-only rule are judged again.
        done |= set(record.get("refused", {}))
    missing = [v for v in variants if v not in done]
    if missing and allow:
        wanted = tuple(dict.fromkeys([*record["variants"], *variants]))
        print(f"Exporting {workdir}: {', '.join(wanted)}", flush=True)
        try:
            tflite.export_workdir(workdir, wanted)
        except tflite.QuantizationRefused as e:
            print(f"  {e}", flush=True)
        record = tflite.load_record(export_dir)
    return record


def benchmark_run(workdir: str, *, runs: int, warmup: int, threads: Sequence[int],
                  variants: Sequence[str], export: bool, rescore: bool = False
                  ) -> dict[str, Any]:
    from fer import loading, models
    from fer.evaluation import evaluate as evaluate_lib
    from fer.export import tflite

    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    module, variables, spec, config = loading.load_model(workdir, "best")
    if rescore:
        fresh = evaluate_lib.evaluate_model(config, module, variables,
                                            report.get("split") or config.eval_split)
        report = {**report, **{k: fresh[k] for k in ("num_examples", "accuracy",
                                                     "balanced_accuracy", "loss", "labels",
                                                     "confusion")}}
    params = models.count_params(variables)["trainable"]
    record = ensure_export(workdir, variants, export)
    export_dir = os.path.join(workdir, tflite.EXPORT_DIRNAME)
    row: dict[str, Any] = {
        "run": os.path.basename(os.path.normpath(workdir)), "design": spec.design,
        "workdir": os.path.abspath(workdir), "measured": time.strftime("%Y-%m-%d"),
        "dataset": report.get("dataset"), "split": report.get("split"),
        "num_examples": report.get("num_examples"), "rescored": rescore,
        "accuracy": report.get("accuracy"), "balanced_accuracy": report.get("balanced_accuracy"),
        "loss": report.get("loss"), "params": params,
        "sizes": {v: e["bytes"] for v, e in record["variants"].items()},
        "agreement": {v: e["top1_agreement"] for v, e in record["variants"].items()},
        "refused": sorted(record.get("refused", {})),
        "jax_cpu": time_jax(module, variables, spec.input_shape, runs, warmup),
        "litert": {}, **recipe(config), **training_record(workdir, config),
        "per_label": {r["label"]: r["accuracy_pct"] for r in per_label.per_label_rows(report)}}
    for variant in variants:
        entry = record["variants"].get(variant)
        if entry is None:
            continue
        path = os.path.join(export_dir, entry["file"])
        for t in threads:
            row["litert"][f"{variant}@{t}"] = runner.time_model(path, t, runs, warmup)
    return row


def run_name(row: Mapping[str, Any]) -> str:
    return row.get("run") or os.path.basename(os.path.normpath(row["workdir"]))


def kept_rows(previous: str, fresh: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `previous` (a compare.json) for runs not measured again in `fresh`."""
    if not os.path.exists(previous):
        return []
    with open(previous) as f:
        old = json.load(f)["rows"]
    names = {run_name(r) for r in fresh}
    return [{**r, "run": run_name(r), "measured": r.get("measured") or "earlier"}
            for r in old if run_name(r) not in names]


# The seed's Table 5 (reduced AffectNet at 224x224, tested on 25K faces of its test split:
# another dataset and input size, so beside ours, not comparable): accuracy, loss, params,
# ms per prediction on an Intel i5. Our designs have no thesis figure.
THESIS_TABLE5 = {
    "baseline": (0.6276, 3.0361, 102_839_056, 11.7),
    "baseline_bn": (0.6300, 1.3137, 102_830_856, 15.2),   # "Baseline enhanced".
    "xcao": (0.6861, 0.9185, 6_970_728, 7.2),             # "XCao adapted to 224x224".
    "xcao2": (0.7540, 0.6863, 7_509_672, 13.1),           # "X.Cao with 2 streams".
    "fractal": (0.6923, 0.991, 26_399_016, 28.0),
    "inception_v3": (0.6893, 1.3067, 23_851_784, 14.1),  # "GoogleNet".
    "mobilenet_v1": (0.4730, 1.4600, 4_253_864, 10.0),
}
# The seed's Table 7: accuracy % per label of xcao2 trained on the whole pruned AffectNet,
# over its 25K test faces (FER+'s label names).
THESIS_TABLE7 = {"neutral": 81, "happiness": 91, "sadness": 48, "surprise": 32, "fear": 34,
                 "disgust": 17, "anger": 50, "contempt": 0}
# Fields that say where and how a run was kept, not what it learnt: an override of one of
# them leaves a row under its protocol.
MACHINE_FIELDS = frozenset({
    "data_dir", "tfds_dir", "num_workers", "progress_bar", "export_variants", "split",
    "checkpoint", "log_every_steps", "checkpoint_every_epochs", "checkpoint_every_steps",
    "keep_checkpoints", "eval_batch_size"})


def recipe(config) -> dict[str, Any]:
    """A run's protocol key and the command-line config that reproduces it.

    For configs/table5.py runs the key is the protocol plus every field where the run's
    config.json differs from its argument string (say steps_per_epoch=2 in a smoke test),
    so runs trained otherwise never share a table. Other runs: key ''.
    """
    if not config.protocol:
        return {"protocol": "", "recipe": "", "seed": int(config.seed)}
    import configs
    from configs import table5

    spec = table5.spec(config.model, config.protocol, int(config.seed))
    try:
        expected = json.loads(configs.load(spec).to_json_best_effort())
    except ValueError:  # Not one of table5's designs or protocols.
        return {"protocol": f"{config.protocol} ({config.model}: not in configs/table5.py)",
                "recipe": "", "seed": int(config.seed)}
    saved = json.loads(config.to_json_best_effort())
    overrides = [f"{k}={json.dumps(saved.get(k))}" for k in sorted(set(expected) | set(saved))
                 if k not in MACHINE_FIELDS and saved.get(k) != expected.get(k)]
    return {"protocol": " + ".join([config.protocol, *overrides]),
            "recipe": " ".join([spec, *(f"--config.{o}" for o in overrides)]),
            "seed": int(config.seed)}


def training_record(workdir: str, config) -> dict[str, Any]:
    """Training time, img/s and the accelerator, from metrics.jsonl and report.json.

    images_per_second: the median over epochs of the training steps' throughput (the
    compile counts in the first epoch only); eval_seconds: the median rest of an epoch
    (validation, checkpoints); train_images: images per epoch as trained (global batch x
    steps); epoch_images: those of a whole pass over the training split.
    """
    epochs: dict[int, Mapping[str, Any]] = {}
    path = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("epoch") and entry.get("images_per_second"):
                    epochs[int(entry["epoch"])] = entry  # A resumed epoch: its last run.
    with open(os.path.join(workdir, "report.json")) as f:
        report = json.load(f)
    hardware, split_sizes = report.get("hardware") or {}, report.get("split_sizes") or {}
    batch_size = int(config.batch_size) or (int(config.per_device_batch_size)
                                            * int(hardware.get("devices") or 1))
    record: dict[str, Any] = {"epochs_trained": len(epochs), "train_seconds": None,
                              "images_per_second": None, "eval_seconds": None,
                              "train_images": None, "epoch_images": None,
                              "trained_on": hardware.get("device_kind")}
    if epochs:
        rows = list(epochs.values())
        images = rows[-1]["step"] // rows[-1]["epoch"] * batch_size  # Same steps each epoch.
        full = split_sizes.get("train")
        record.update(
            train_seconds=sum(r["epoch_seconds"] for r in rows), train_images=images,
            epoch_images=full // batch_size * batch_size if full else images,
            images_per_second=statistics.median(r["images_per_second"] for r in rows),
            eval_seconds=statistics.median(
                max(0.0, r["epoch_seconds"] - images / r["images_per_second"]) for r in rows))
    return record


def estimate_seconds(row: Mapping[str, Any], epochs: int) -> float | None:
    """What `epochs` whole epochs of a run like `row` take at its measured img/s."""
    if not row.get("images_per_second"):
        return None
    return epochs * (row["epoch_images"] / row["images_per_second"] + row["eval_seconds"])


def _ms(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    return f"{entry['ms_median']:.3f} ({entry['ms_min']:.3f}-{entry['ms_max']:.3f})"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(rows: Sequence[Mapping[str, Any]], arm_entries: Sequence[Mapping[str, Any]],
             variants: Sequence[str], threads: Sequence[int], host: Mapping[str, Any],
             runs: int, title: str | None = None) -> str:
    size_variants = list(dict.fromkeys(v for r in rows for v in [*r["sizes"], *r["refused"]]))
    latency_cols = [f"{v}@{t}" for v in variants for t in threads]
    header = (["run", "design", "dataset/split", "faces", "accuracy %", "balanced acc. %",
               "loss", "params"]
              + [f"{v} KiB" for v in size_variants] + ["JAX CPU ms"]
              + [f"LiteRT {v} {t}T ms" for v, t in
                 ((c.split("@")[0], c.split("@")[1]) for c in latency_cols)] + ["measured"])
    datasets = sorted({f"{r['dataset']} / {r['split']}" for r in rows})
    title = title or f"Comparison of designs (seed Table 5): {', '.join(datasets)}"
    lines = [f"## {title}", "",
             f"ms per prediction at batch 1: median (min-max) of {runs} runs after warm-up, "
             f"on {host['cpu_model']} ({host['cpu_count']} CPUs).", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        faces = f"{r['num_examples']:,}" if r.get("num_examples") else "-"
        cells = [run_name(r), r["design"], f"{r['dataset']}/{r['split']}", faces,
                 _pct(r["accuracy"]),
                 _pct(r["balanced_accuracy"]),
                 "-" if r["loss"] is None else f"{r['loss']:.4f}", f"{r['params']:,}"]
        cells += [f"{r['sizes'][v] / 1024:.1f}" if v in r["sizes"] else
                  ("refused" if v in r["refused"] else "-") for v in size_variants]
        cells.append(_ms(r["jax_cpu"]))
        cells += [_ms(r["litert"].get(c)) if c.split("@")[0] not in r["refused"]
                  else "refused" for c in latency_cols]
        cells.append(r.get("measured", ""))
        lines.append("| " + " | ".join(cells) + " |")
    devices = [e for e in arm_entries if arm.is_device_entry(e)]
    others = [e for e in arm_entries if not arm.is_device_entry(e)]
    if devices:
        lines += ["", "## On ARM devices (python -m benchmarks.arm)", "",
                  "| design | variant | device | CPU | threads | ms median (min-max) | runs |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for e in devices:
            lines.append(f"| {e.get('design') or e['model']} | {e['variant']} | "
                         f"{e['device']['name']} | {e['device']['cpu_model']} | {e['threads']} | "
                         f"{_ms(e)} | {e['runs']} |")
    if others:
        lines += ["", "Also in the ARM results, not device timings (rehearsals with --local, "
                  "emulated runs, non-ARM machines): " + ", ".join(
                      f"{e.get('design') or e['model']} {e['variant']} on "
                      f"{e['device']['machine']} ({e.get('transport', 'no transport')})"
                      for e in others) + "."]
    return "\n".join(lines)


def protocol_groups(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Rows by protocol key ('': runs of their own recipes), each key's table apart.

    A protocol's rows compare designs only if scored on the same faces: a ValueError
    otherwise (an old score of another validation set, say), naming the runs.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get("protocol") or "", []).append(r)
    for key, members in groups.items():
        scored = {(r["dataset"], r["split"], r["num_examples"]) for r in members}
        if key and len(scored) > 1:
            raise ValueError(
                f"protocol {key!r}: its runs were scored on different faces ("
                + "; ".join(f"{run_name(r)}: {r['dataset']}/{r['split']} {r['num_examples']}"
                            for r in members)
                + "): score them again with --rescore")
    return dict(sorted(groups.items()))


def _mean_sd(values: Sequence[float | None], scale: float = 100.0) -> str:
    values = [scale * v for v in values if v is not None]
    if len(values) < 2:
        return f"{values[0]:.2f}" if values else "-"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _by_design(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Rows by design, in configs/table5.py's order (the thesis's seven, then ours)."""
    from configs import table5

    order = {d: i for i, d in enumerate(table5.DESIGNS)}
    designs: dict[str, list[Mapping[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (order.get(r["design"], len(order)), r["design"],
                                         r.get("seed") or 0)):
        designs.setdefault(r["design"], []).append(r)
    return designs


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def protocol_markdown(key: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Table 5 and Table 7 of one protocol's runs: a line per design, seeds pooled."""
    first = rows[0]
    lines = [f"## Table 5 under one protocol: `{key}` ({first['dataset']} / {first['split']}, "
             f"{first['num_examples']:,} faces)", "",
             "Every design trained the same way (configs/table5.py); `recipe`: the --config "
             "that reproduces a row (`python launch.py --config RECIPE --workdir W "
             "--config.data_dir=FERPLUS`; all rows: `bash scripts/table5.sh`). Accuracy and "
             "balanced accuracy: mean ± sd over the seeds. `thesis`: the seed's Table 5 "
             "(reduced AffectNet at 224x224, 25K test faces: another dataset and input, "
             "beside ours, not comparable). Train time: a whole run, validation included, "
             "mean over seeds; img/s: the training steps' median over epochs; `on`: the "
             "device it trained on. ms: LiteRT at batch 1, 1 thread, on the machine that ran compare.", "",
             "| design | thesis acc. % | params | seeds | accuracy % | balanced acc. % | "
             "train time | img/s | on | int8 KiB | float32 ms | int8 ms | faces | recipe |",
             "|" + " --- |" * 14]
    designs = _by_design(rows)
    for design, runs in designs.items():
        seeds = [str(r.get("seed") or 0) for r in runs]
        thesis = THESIS_TABLE5.get(design)
        sizes = [r["sizes"]["int8"] for r in runs if "int8" in r["sizes"]]
        refused = sum("int8" in r["refused"] for r in runs)
        int8 = (f"{sizes[0] / 1024:.1f}" if sizes else "refused" if refused else "-") + (
            f" ({refused} of {len(runs)} refused)" if sizes and refused else "")
        ms = {v: _mean(r["litert"].get(f"{v}@1", {}).get("ms_median") for r in runs)
              for v in ("float32", "int8")}
        ips = _mean(r.get("images_per_second") for r in runs)
        recipe_text = runs[0].get("recipe") or "-"
        if len(runs) > 1:
            recipe_text = recipe_text.replace(f"seed={seeds[0]}", f"seed={'|'.join(seeds)}")
        lines.append("| " + " | ".join([
            design, f"{100 * thesis[0]:.2f}" if thesis else "-", f"{runs[0]['params']:,}",
            ",".join(seeds), _mean_sd([r["accuracy"] for r in runs]),
            _mean_sd([r["balanced_accuracy"] for r in runs]),
            _duration(_mean(r.get("train_seconds") for r in runs)),
            "-" if ips is None else f"{ips:.0f}",
            ", ".join(sorted({str(r.get("trained_on") or "-") for r in runs})), int8,
            *(f"{ms[v]:.3f}" if ms[v] is not None else
              "refused" if all(v in r["refused"] for r in runs) else "-" for v in ms),
            f"{first['num_examples']:,}", f"`{recipe_text}`"]) + " |")
    lines += ["", verdict(designs)] if verdict(designs) else []
    labels = list(dict.fromkeys(label for r in rows for label in r.get("per_label") or {}))
    lines += ["", f"### Accuracy per label % (seed Table 7) under `{key}`, mean over seeds", "",
              "| design | " + " | ".join(labels) + " |", "|" + " --- |" * (len(labels) + 1)]
    for design, runs in designs.items():
        cells = [_mean((r.get("per_label") or {}).get(label) for r in runs) for label in labels]
        lines.append(f"| {design} | " + " | ".join("-" if c is None else f"{c:.1f}"
                                                    for c in cells) + " |")
    lines.append("| xcao2, thesis Table 7 (AffectNet, 25K test faces) | " + " | ".join(
        str(THESIS_TABLE7.get(label, "-")) for label in labels) + " |")
    return "\n".join(lines)


def verdict(designs: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The table's answer: the best of the thesis's designs and by how much ours beat it."""
    def score(design):
        runs = designs[design]
        return (_mean(r["accuracy"] for r in runs), _mean(r["balanced_accuracy"] for r in runs),
                _mean(r["litert"].get("float32@1", {}).get("ms_median") for r in runs))

    thesis = [d for d in designs if d in THESIS_TABLE5 and score(d)[0] is not None]
    ours = [d for d in designs if d not in THESIS_TABLE5 and score(d)[0] is not None]
    if not thesis or not ours:
        return ""
    best, mine = (max(group, key=lambda d: score(d)[0]) for group in (thesis, ours))
    (acc, bal, ms), (acc2, bal2, ms2) = score(best), score(mine)
    cost = "" if ms is None or ms2 is None else f", at {ms2:.3f} ms against {ms:.3f} ms"
    return (f"Best of the thesis's designs: {best} ({100 * acc:.2f}% accuracy, "
            f"{100 * bal:.2f}% balanced); best of ours: {mine} ({100 * acc2:.2f}%, "
            f"{100 * bal2:.2f}%): {100 * (acc2 - acc):+.2f} points of accuracy and "
            f"{100 * (bal2 - bal):+.2f} of balanced accuracy{cost}.")


def estimate_markdown(rows: Sequence[Mapping[str, Any]], epochs: int) -> str:
    """Per run: its measured img/s and what `epochs` epochs of it take at that speed."""
    lines = [f"## Time for {epochs} epochs at the measured speed", "",
             "| run | on | img/s | train images/epoch | validation s/epoch | "
             f"{epochs} epochs |", "|" + " --- |" * 6]
    for r in rows:
        seconds = estimate_seconds(r, epochs)
        lines.append(f"| {run_name(r)} | {r.get('trained_on') or '-'} | "
                     + ("- | - | - | unmeasured |" if seconds is None else
                        f"{r['images_per_second']:.0f} | {r['epoch_images']:,} | "
                        f"{r['eval_seconds']:.1f} | {_duration(seconds)} |"))
    return "\n".join(lines)


def flat_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        flat = {"run": run_name(r), "measured": r.get("measured", "")}
        flat.update({k: r[k] for k in ("design", "dataset", "split", "num_examples", "accuracy",
                                  "balanced_accuracy", "loss", "params", "workdir")})
        flat.update({k: r.get(k) for k in ("protocol", "recipe", "seed", "train_seconds",
                                           "images_per_second", "trained_on")})
        flat.update({f"bytes_{v}": b for v, b in r["sizes"].items()})
        flat.update({f"top1_agreement_{v}": a for v, a in r["agreement"].items()})
        for name, entry in [("jax_cpu", r["jax_cpu"])] + [
                (f"litert_{k.replace('@', '_t')}", e) for k, e in r["litert"].items()]:
            for stat in ("ms_median", "ms_min", "ms_max"):
                flat[f"{name}_{stat}"] = round(entry[stat], 4)
        out.append(flat)
    return out


def plot_points(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The plot's points, most accurate first (their numbers in the plot and its key)."""
    points = []
    for r in rows:
        entry = r["litert"].get("float32@1") or r["jax_cpu"]
        if r["accuracy"] is not None:
            points.append({"ms": entry["ms_median"], "accuracy": 100 * r["accuracy"],
                           "params": r["params"], "run": run_name(r),
                           "family": str(r.get("design", "")).split(" ")[0]})
    return sorted(points, key=lambda p: (-p["accuracy"], p["run"]))


def plot(rows: Sequence[Mapping[str, Any]], path: str) -> str | None:
    """Accuracy against LiteRT float32 1-thread latency; bubble area ~ parameters.

    Runs of one design sit close together, so bubbles carry numbers and the
    names go in a key beside the plot, where they cannot overlap.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = plot_points(rows)
    if not points:
        return None
    fig, (ax, key) = plt.subplots(1, 2, figsize=(11, 5.5),
                                  gridspec_kw={"width_ratios": [3, 2]})
    largest = max(p["params"] for p in points) or 1
    families = sorted({p["family"] for p in points})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    for number, p in enumerate(points, 1):
        ax.scatter(p["ms"], p["accuracy"], s=80 + 2400 * p["params"] / largest, alpha=0.45,
                   color=colours[p["family"]], edgecolors="black", linewidths=0.5)
        ax.annotate(str(number), (p["ms"], p["accuracy"]), ha="center", va="center",
                    fontsize=8, fontweight="bold")
    ax.set_xlabel("ms per prediction (LiteRT float32, 1 thread, batch 1)")
    ax.set_ylabel("accuracy %")
    ax.set_title("Accuracy against latency (bubble area ~ parameters)")
    ax.grid(alpha=0.3)
    ax.margins(0.1)  # Room for the largest bubbles at the edges.
    times = [p["ms"] for p in points if p["ms"] > 0]
    if times and max(times) > 20 * min(times):  # Otherwise the fast runs pile up at 0.
        ax.set_xscale("log")
    key.axis("off")
    step = 1.0 / (len(points) + 2)
    key.text(0.0, 1.0 - step, " #   acc.  params     ms  run", family="monospace",
             fontsize=8, va="center", transform=key.transAxes)
    for number, p in enumerate(points, 1):
        key.text(0.0, 1.0 - (number + 1) * step,
                 f"{number:>2} {p['accuracy']:5.1f}% {p['params'] / 1e6:6.2f}M "
                 f"{p['ms']:6.2f}  {p['run']}", color=colours[p["family"]],
                 family="monospace", fontsize=8, va="center", transform=key.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The seed's Table 5 over trained runs")
    parser.add_argument("--runs", default="runs", help="folder holding training workdirs")
    parser.add_argument("--out", default=latency.default_out_dir("compare"))
    parser.add_argument("--timing-runs", type=int, default=100,
                        help=f"timed predictions per cell (>= {runner.MIN_RUNS})")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", default=",".join(map(str, THREADS)))
    parser.add_argument("--variants", default=",".join(LITERT_VARIANTS),
                        help="LiteRT variants to time (exported when missing)")
    parser.add_argument("--no-export", action="store_true",
                        help="only use variants already exported")
    parser.add_argument("--arm", default=arm.ARM_RESULTS, help="ARM results to merge")
    parser.add_argument("--rescore", action="store_true",
                        help="score every run's best checkpoint again (today's data protocol)")
    parser.add_argument("--keep", action="store_true",
                        help="keep --out's earlier rows of runs no longer under --runs")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw --out's plot from its compare.json (no run is timed)")
    parser.add_argument("--estimate", type=int, metavar="EPOCHS", default=0,
                        help="only print what EPOCHS epochs of each run under --runs take at "
                             "its measured img/s (no export, no timing, nothing written)")
    args = parser.parse_args(argv)
    if args.replot:
        record = os.path.join(args.out, "compare.json")
        if not os.path.exists(record):
            parser.error(f"--replot: no {record}; run the comparison first")
        with open(record) as f:
            figure = plot(json.load(f)["rows"], os.path.join(args.out, "accuracy_latency.png"))
        print(figure or f"--replot: no row of {record} has an accuracy")
        return 0
    if args.timing_runs < runner.MIN_RUNS:
        parser.error(f"--timing-runs must be >= {runner.MIN_RUNS}")
    workdirs = find_workdirs(args.runs)
    if not workdirs:
        parser.error(f"no trained runs under {args.runs} (folders with report.json, "
                     "model.json and config.json): train with `python launch.py` first")
    if args.estimate:
        from fer.training import checkpoint

        print(estimate_markdown([{"run": os.path.basename(w), **training_record(
            w, checkpoint.load_config(w))} for w in workdirs], args.estimate))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    threads = runner.parse_threads(args.threads)
    rows = []
    for workdir in workdirs:
        print(f"Benchmarking {workdir}", flush=True)
        rows.append(benchmark_run(workdir, runs=args.timing_runs, warmup=args.warmup,
                                  threads=threads, variants=variants,
                                  export=not args.no_export, rescore=args.rescore))
    if args.keep:
        rows = kept_rows(os.path.join(args.out, "compare.json"), rows) + rows
        rows.sort(key=run_name)
    arm_entries = arm.load_reports(args.arm)
    host = runner.device_info()
    groups = protocol_groups(rows)
    sections = [protocol_markdown(key, members) + "\n\n" + markdown(
        members, [], variants, threads, host, args.timing_runs,
        title=f"Every run under `{key}`") for key, members in groups.items() if key]
    if "" in groups or not sections:
        sections.append(markdown(groups.get("", []), arm_entries, variants, threads, host,
                                 args.timing_runs))
    text = "\n\n".join(sections)
    paths = latency.write_outputs(args.out, "compare", text, flat_rows(rows),
                                  {"host": host, "rows": rows, "arm": arm_entries})
    figure = plot(rows, os.path.join(args.out, "accuracy_latency.png"))
    if figure:
        with open(paths["md"], "a") as f:
            f.write("\n![accuracy against latency](accuracy_latency.png)\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
