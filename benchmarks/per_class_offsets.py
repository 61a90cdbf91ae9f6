"""python -m benchmarks.per_class_offsets ENSEMBLE_DIR [--out DIR] [--data_dir DIR]

Would eight per-class offsets serve the FER+ goals better than the one prior-correction
tau an ensemble ships with? Fits them on the ensemble's evaluation split for the
README's goals (the best accuracy with balanced accuracy and every class at or over
their goals), then cross-fits them (fitted on one stratified half, scored on the
other, both ways): the gap between the two is what fitting a split's few rarest faces
is worth. Runs the members over the split (minutes on CPU); writes DIR/offsets.md
and DIR/offsets.json.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping

import numpy as np

from benchmarks import readme
from fer import spec as spec_lib
from fer.evaluation import prior_correction as pc
from fer.export import ensemble as ensemble_lib
from fer.models import ensemble as ensemble_model


def compare_rules(log_probs: np.ndarray, labels: np.ndarray, tau_shift: np.ndarray,
                  **targets) -> dict[str, dict[str, Any]]:
    """Scores of the tau shift, of offsets fitted on all of it, and of cross-fitted offsets."""
    fitted = pc.fit_offsets(log_probs, labels, tau_shift, **targets)
    return {
        "tau (shipped)": pc.score(pc.confusion(log_probs, labels, tau_shift)),
        "per-class offsets, fitted on the split": {
            **pc.score(pc.confusion(log_probs, labels, fitted)),
            "offsets": [float(v) for v in fitted - tau_shift]},
        "per-class offsets, cross-fitted": pc.offsets_cross_fitted(
            log_probs, labels, tau_shift, **targets)}


def markdown(rows: Mapping[str, Mapping[str, Any]], design: str, split: str,
             targets: Mapping[str, float]) -> str:
    lines = [f"## One tau or eight offsets: {design} on {split}", "",
             f"Offsets maximise accuracy subject to balanced accuracy >= "
             f"{100 * targets['min_balanced']:g}% and every class >= "
             f"{100 * targets['min_recall']:g}%.", "",
             "| rule | accuracy % | balanced % | lowest class % |", "| --- | --- | --- | --- |"]
    for name, row in rows.items():
        lines.append(f"| {name} | {100 * row['accuracy']:.2f} | "
                     f"{100 * row['balanced_accuracy']:.2f} | {100 * row['min_recall']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ensemble_dir")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "ensemble"))
    parser.add_argument("--data_dir", default="", help="the dataset ('' = the members' own)")
    args = parser.parse_args(argv)
    path = os.path.join(args.ensemble_dir, ensemble_lib.ENSEMBLE_RECORD)
    if not os.path.exists(path):
        parser.error(f"{args.ensemble_dir} is not an ensemble directory (no {path}): "
                     "make one with python -m fer.export.ensemble")
    record, workdirs = ensemble_lib.read_record(args.ensemble_dir)
    members, _, config = ensemble_lib.load_members(workdirs, record["which"])
    if args.data_dir:
        config.data_dir = args.data_dir
    shift_px = record.get("shift_px", 0)
    labels, views = ensemble_lib.member_log_probs(members, config, record["split"],
                                                  shift_px=shift_px)
    log_probs = ensemble_lib.combine_log_probs(views, record["mirror"], shifted=shift_px > 0)
    tau_shift = np.asarray(ensemble_model.prior_shift(record["train_counts"], record["tau"]))
    targets = {"min_balanced": readme.GOAL_FERPLUS_BALANCED,
               "min_recall": readme.GOAL_EVERY_CLASS}
    rows = compare_rules(log_probs, labels, tau_shift, **targets)
    design = spec_lib.ModelSpec.load(args.ensemble_dir).design
    text = markdown(rows, design, f"{config.dataset} / {record['split']}", targets)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "offsets.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "offsets.json"), "w") as f:
        json.dump({"targets": targets, "tau": record["tau"], "rules": rows}, f, indent=2)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
