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
report.json: for when the data protocol changed after training (FER+'s
validation set, 2026-12-01). The table's `faces` column says what each row was
scored on.

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
                                                     "balanced_accuracy", "loss")}}
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
        "litert": {}}
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


def _ms(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    return f"{entry['ms_median']:.3f} ({entry['ms_min']:.3f}-{entry['ms_max']:.3f})"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(rows: Sequence[Mapping[str, Any]], arm_entries: Sequence[Mapping[str, Any]],
             variants: Sequence[str], threads: Sequence[int], host: Mapping[str, Any],
             runs: int) -> str:
    size_variants = list(dict.fromkeys(v for r in rows for v in [*r["sizes"], *r["refused"]]))
    latency_cols = [f"{v}@{t}" for v in variants for t in threads]
    header = (["run", "design", "dataset/split", "faces", "accuracy %", "balanced acc. %",
               "loss", "params"]
              + [f"{v} KiB" for v in size_variants] + ["JAX CPU ms"]
              + [f"LiteRT {v} {t}T ms" for v, t in
                 ((c.split("@")[0], c.split("@")[1]) for c in latency_cols)] + ["measured"])
    datasets = sorted({f"{r['dataset']} / {r['split']}" for r in rows})
    lines = [f"## Comparison of designs (seed Table 5): {', '.join(datasets)}", "",
             f"ms per prediction at batch 1: median (min-max) of {runs} runs after warm-up, "
             f"on {host['name']} ({host['cpu_model']}, {host['cpu_count']} CPUs).", "",
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


def flat_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        flat = {"run": run_name(r), "measured": r.get("measured", "")}
        flat.update({k: r[k] for k in ("design", "dataset", "split", "num_examples", "accuracy",
                                  "balanced_accuracy", "loss", "params", "workdir")})
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
    text = markdown(rows, arm_entries, variants, threads, host, args.timing_runs)
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
