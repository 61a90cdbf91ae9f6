"""python -m research.int8 --workdir RUN --out research/int8/results/NAME

What makes a full-integer int8 export of a trained run (or an ensemble directory)
pass the accuracy rule of fer.export (docs/export.md)? Each row is one conversion of
the same checkpoint, scored on the same validation faces against the same JAX model
and judged by the exporter's own rule (tflite.refusal_reasons):

  * `flax graph`: the model as Flax computes it (the exporter before issue #20):
    BatchNorm as (x - mean) * a + bias, an ensemble's mean of log-probabilities;
    calibrated on the first N training faces in eval order (what
    `fer.export --calibration N` passes);
  * `affine BN` (and, for an ensemble, `mean of logits`): the exporter now
    (fer.export.tflite.probability_fn);
  * `..., K layers float`: TFLite's QuantizationDebugger ranks the int8 model's
    tensors by RMSE / scale on 200 calibration faces and the K worst stay float
    (not full-integer: QUANTIZE/DEQUANTIZE around them);
  * for an ensemble, `flax graph, combination float`: every op after the members'
    logits (log-softmax, mean over views and members, prior shift, softmax) stays
    float.

Writes results.md, results.json and layers.csv (the debugger's ranking) to --out,
and the .tflite files to --out/models/ (not kept in git). Latency is LiteRT at batch
1, median of --runs after --warmup, on this machine (benchmarks.arm.runner).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import time

import numpy as np

from benchmarks.arm import runner
from fer import loading
from fer.export import tflite


def debugger(holder, cf, calibration: np.ndarray):
    """(QuantizationDebugger, rows of layers.csv worst first) on 200 calibration faces."""
    import tensorflow as tf  # noqa: PLC0415

    dbg = tf.lite.experimental.QuantizationDebugger(
        converter=tflite.converter(holder, cf, "int8", calibration, integer_io=False),
        debug_dataset=tflite.representative_dataset(calibration[:200]))
    dbg.run()
    buffer = io.StringIO()
    dbg.layer_statistics_dump(buffer)
    buffer.seek(0)
    rows = list(csv.DictReader(buffer))
    for row in rows:
        row["rmse_over_scale"] = float(np.sqrt(float(row["mean_squared_error"]))
                                       / float(row["scale"]))
    rows.sort(key=lambda r: -r["rmse_over_scale"])
    return dbg, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="a run or an ensemble directory")
    parser.add_argument("--out", required=True)
    parser.add_argument("--which", default="best")
    parser.add_argument("--calibration", default="500,2000",
                        help="numbers of training faces to calibrate on")
    parser.add_argument("--num_validation", type=int, default=1000)
    parser.add_argument("--float_layers", default="4",
                        help="K worst layers kept float (comma list; empty: none)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    which = int(args.which) if args.which.isdigit() else args.which
    module, variables, spec, config = loading.load_model(args.workdir, which)
    sizes = [int(n) for n in args.calibration.split(",") if n]
    calibration = tflite.split_images(config, config.train_split, max(sizes))
    validation, labels = tflite.split_faces(config, config.eval_split, args.num_validation)
    reference = tflite.jax_probs(module, variables, validation)
    reference_metrics = tflite.label_metrics(reference, labels)
    models_dir = os.path.join(args.out, "models")
    os.makedirs(models_dir, exist_ok=True)
    spec.save(models_dir)
    is_ensemble = type(module).__name__ == "Ensemble"

    rows = []

    def record(name: str, flatbuffer: bytes, **extra):
        path = os.path.join(models_dir, name.replace(" ", "_").replace(",", "") + ".tflite")
        with open(path, "wb") as f:
            f.write(flatbuffer)
        check = tflite.compare(path, reference, validation, labels)
        reasons = tflite.refusal_reasons(check, reference_metrics,
                                         max_accuracy_drop=tflite.MAX_ACCURACY_DROP,
                                         min_agreement=tflite.MIN_AGREEMENT)
        timing = runner.time_model(path, 1, args.runs, args.warmup)
        row = {"model": name, "file": os.path.basename(path), "bytes": len(flatbuffer),
               "accuracy": check["accuracy"], "balanced_accuracy": check["balanced_accuracy"],
               "accuracy_drop_points": 100 * (reference_metrics["accuracy"] - check["accuracy"]),
               "balanced_accuracy_drop_points": 100 * (reference_metrics["balanced_accuracy"]
                                                       - check["balanced_accuracy"]),
               "top1_agreement": check["top1_agreement"], "accepted": not reasons,
               "reasons": reasons, "ops": check["ops"],
               "float_ops": tflite.float_ops(path) if "int8" in name else None,
               "ms_1_thread": timing["ms_median"], **extra}
        rows.append(row)
        print(f"{name}: {row['accuracy']:.2%} ({-row['accuracy_drop_points']:+.2f}), "
              f"balanced {row['balanced_accuracy']:.2%} "
              f"({-row['balanced_accuracy_drop_points']:+.2f}), agreement "
              f"{row['top1_agreement']:.2%}, {'accepted' if not reasons else 'refused'}, "
              f"{len(flatbuffer) / 1024:.0f} KiB, {row['ms_1_thread']:.3f} ms", flush=True)

    graphs = {}
    export_graph = "affine BN, mean of logits" if is_ensemble else "affine BN"
    for rewrite in (False, True):
        rewrites: dict[str, int] = {}
        holder, cf = tflite.concrete_function(module, variables, spec,
                                              affine_batch_norm=rewrite,
                                              ensemble_logits=rewrite, rewrites=rewrites)
        bn = export_graph if rewrite else "flax graph"
        graphs[bn] = (holder, cf)
        record(f"float32, {bn}", tflite.convert(holder, cf, "float32"),
               batch_norm=rewrites or None)
        for n in sizes:
            started = time.perf_counter()
            flatbuffer = tflite.convert(holder, cf, "int8", calibration[:n])
            record(f"int8, {bn}, {n} calibration faces", flatbuffer,
                   convert_seconds=round(time.perf_counter() - started, 1))

    holder, cf = graphs[export_graph]
    dbg, layers = debugger(holder, cf, calibration[:sizes[0]])
    with open(os.path.join(args.out, "layers.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, ["op_name", "rmse_over_scale", "scale", "tensor_name"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(layers)
    for k in [int(k) for k in args.float_layers.split(",") if k]:
        nodes = [r["tensor_name"] for r in layers[:k]]
        record(f"int8, {export_graph}, {k} worst layers float",
               tflite.with_float_nodes(dbg, nodes),
               float_layers=[f"{r['op_name']} {r['tensor_name'][:80]}" for r in layers[:k]])
    if is_ensemble:
        # What fer.export writes for an ensemble's int8: the members full-integer, their
        # combination (mean, prior shift, softmax) float (tflite.convert_int8_members).
        record(f"int8 members, {export_graph}, combination float",
               tflite.convert_int8_members(holder, cf, calibration[:sizes[0]]))
        holder, cf = graphs["flax graph"]
        record("int8, flax graph, combination float",
               tflite.convert_int8_members(holder, cf, calibration[:sizes[0]]))

    host = {"cpu_count": os.cpu_count(), "machine": platform.machine(),
            "cpu_model": runner.cpu_model()}
    result = {"workdir": args.workdir, "design": spec.design,
              "dataset": config.dataset, "split": config.eval_split,
              "num_validation": int(len(validation)), "float32_reference": reference_metrics,
              "acceptance": {"max_accuracy_drop_points": tflite.MAX_ACCURACY_DROP,
                             "min_agreement": tflite.MIN_AGREEMENT},
              "host": host, "rows": rows}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [f"{spec.design} on {config.dataset} {config.eval_split}, first "
             f"{len(validation)} faces: float32 (JAX) accuracy "
             f"{reference_metrics['accuracy']:.2%}, balanced "
             f"{reference_metrics['balanced_accuracy']:.2%}.", "",
             "| model | accuracy | balanced accuracy | top-1 agreement | accepted | KiB | "
             "ms (1 thread) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['accuracy']:.2%} ({-r['accuracy_drop_points']:+.2f}) | "
            f"{r['balanced_accuracy']:.2%} ({-r['balanced_accuracy_drop_points']:+.2f}) | "
            f"{r['top1_agreement']:.2%} | {'yes' if r['accepted'] else 'no'} | "
            f"{r['bytes'] / 1024:,.0f} | {r['ms_1_thread']:.3f} |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
