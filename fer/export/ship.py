"""Ships one exported variant as the package's default model (fer/assets/model/).

  python -m fer.export.ship --export runs/ferplus/resnet_fer_tiny/export --variant int8

The shipped directory is what `fer predict`, `fer scan` and launch.py use without
--model: `model.tflite` (the chosen variant), `model.json` (ModelSpec: labels in
order, input shape, normalisation), `labels.txt` (one label per line in output
order, for Android/TFLite tooling) and `shipped.json` (where it came from: the
variant's export record, the run's validation metrics, size). Only a variant the
export accepted (checked against its JAX model) can be shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Sequence

from fer import spec as spec_lib
from fer.export import runtime

SHIPPED_DIR = spec_lib.SHIPPED_MODEL_DIR
MAX_BYTES = 5 * 1024 * 1024  # The budget for a model carried in the package.


def ship(export_dir: str, variant: str, dest: str = SHIPPED_DIR, *,
         max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Copies `variant` of `export_dir` to `dest`; returns the shipped.json record."""
    with open(os.path.join(export_dir, "export.json")) as f:
        record = json.load(f)
    if variant not in record.get("variants", {}):
        refused = record.get("refused", {}).get(variant)
        why = (f" (refused at export: top-1 agreement {refused['top1_agreement']:.2%})"
               if refused else "")
        raise ValueError(f"variant {variant!r} is not an accepted export in {export_dir}"
                         f"{why}; accepted: {sorted(record.get('variants', {}))}")
    source = runtime.resolve_model_path(export_dir, variant)
    size = os.path.getsize(source)
    if size > max_bytes:
        raise ValueError(f"{source} is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.0f} "
                         f"MiB budget for the shipped model: ship a smaller variant")
    spec = spec_lib.ModelSpec.load(export_dir)
    run_dir = os.path.dirname(os.path.abspath(export_dir))
    metrics = _run_metrics(run_dir)

    os.makedirs(dest, exist_ok=True)
    shutil.copyfile(source, os.path.join(dest, runtime.DEFAULT_FILENAME))
    spec.save(dest)
    with open(os.path.join(dest, "labels.txt"), "w") as f:
        f.write("\n".join(spec.labels) + "\n")
    shipped = {"variant": variant, "bytes": size, "design": spec.design,
               "label_set": spec.label_set, "labels": list(spec.labels),
               "export": record["variants"][variant], "run": metrics}
    with open(os.path.join(dest, spec_lib.SHIPPED_RECORD), "w") as f:
        json.dump(shipped, f, indent=2)
    return shipped


def _run_metrics(run_dir: str) -> dict[str, Any]:
    """The run's validation numbers and recipe, when the export sits in a workdir."""
    out: dict[str, Any] = {}
    report = os.path.join(run_dir, "report.json")
    if os.path.exists(report):
        with open(report) as f:
            r = json.load(f)
        out.update({k: r.get(k) for k in ("dataset", "split", "accuracy", "balanced_accuracy",
                                          "macro_f1", "per_label", "num_examples", "params")})
    config = os.path.join(run_dir, "config.json")
    if os.path.exists(config):
        with open(config) as f:
            c = json.load(f)
        out["config"] = {k: c.get(k) for k in ("model", "model_kwargs", "dataset", "epochs",
                                               "label_mode", "class_weights",
                                               "class_weight_power", "augment", "seed",
                                               "distill_weight", "logit_adjustment",
                                               "logit_adjustment_prior")}
    ensemble = os.path.join(run_dir, "ensemble.json")  # fer.export.make_ensemble
    if os.path.exists(ensemble):
        with open(ensemble) as f:
            e = json.load(f)
        out["ensemble"] = {k: e.get(k) for k in ("members", "mirror", "shift_px", "tau",
                                                 "tau_rule", "train_counts", "cross_fitted")}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", required=True, help="an export directory (export.json)")
    parser.add_argument("--variant", required=True, help="float32, float16, dynamic_range or int8")
    parser.add_argument("--dest", default=SHIPPED_DIR)
    args = parser.parse_args(argv)
    try:
        shipped = ship(args.export, args.variant, args.dest)
    except (OSError, ValueError) as e:
        print(f"ship: {e}", file=sys.stderr)
        return 2
    print(f"shipped {shipped['design']} {shipped['variant']} ({shipped['bytes']:,} bytes, "
          f"labels {', '.join(shipped['labels'])}) to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
