"""python -m research.per_class_offsets ENSEMBLE_DIR --out DIR [--data_dir DIR]

Would eight per-class offsets serve the FER+ goals better than the one prior-correction
tau an ensemble ships with? Fits them on the ensemble's evaluation split for the
goals (tools.readme_tables: the best accuracy with balanced accuracy and every class
at or over their goals), then cross-fits them (fitted on one stratified half, scored on the
other, both ways): the gap between the two is what fitting a split's few rarest faces
is worth. Runs the members over the split (minutes on CPU); writes DIR/offsets.md
and DIR/offsets.json.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from fer import spec as spec_lib
from fer.evaluation import prior_correction as pc
from fer.export import make_ensemble as ensemble_lib
from fer.models import ensemble as ensemble_model
from tools import readme_tables


def fit_offsets(log_probs: np.ndarray, labels: np.ndarray, start: np.ndarray, *,
                min_balanced: float, min_recall: float, rounds: int = 4,
                grid: Sequence[float] = tuple(np.round(np.arange(-1.5, 1.51, 0.05), 2))
                ) -> np.ndarray:
    """Per-class shifts (subtracted like tau * log prior) for the best accuracy that keeps
    balanced accuracy >= min_balanced and every recall >= min_recall (penalised when not).

    Coordinate ascent from `start` over `grid`: eight free numbers where tau is one.
    With a few dozen faces in the rarest classes this fits noise; `offsets_cross_fitted`
    says how much.
    """
    log_probs = np.asarray(log_probs, np.float64)
    shift = np.asarray(start, np.float64).copy()

    def value(s):
        row = pc.score(pc.confusion(log_probs, labels, s))
        return (row["accuracy"] - 10 * max(0.0, min_balanced - row["balanced_accuracy"])
                - 10 * max(0.0, min_recall - row["min_recall"]))

    for _ in range(rounds):
        for c in range(len(shift)):
            candidates = [np.where(np.arange(len(shift)) == c, shift[c] - g, shift)
                          for g in grid]
            shift = max(candidates, key=value)
    return shift


def offsets_cross_fitted(log_probs: np.ndarray, labels: np.ndarray, start: np.ndarray, *,
                         seed: int = 0, **targets) -> dict[str, Any]:
    """fit_offsets on one stratified half, scored on the other, both ways, pooled."""
    return pc.score(pc.cross_fit(log_probs, labels,
                                 lambda lp, y: fit_offsets(lp, y, start, **targets), seed))


def compare_rules(log_probs: np.ndarray, labels: np.ndarray, tau_shift: np.ndarray,
                  **targets) -> dict[str, dict[str, Any]]:
    """Scores of the tau shift, of offsets fitted on all of it, and of cross-fitted offsets."""
    fitted = fit_offsets(log_probs, labels, tau_shift, **targets)
    return {
        "tau (shipped)": pc.score(pc.confusion(log_probs, labels, tau_shift)),
        "per-class offsets, fitted on the split": {
            **pc.score(pc.confusion(log_probs, labels, fitted)),
            "offsets": [float(v) for v in fitted - tau_shift]},
        "per-class offsets, cross-fitted": offsets_cross_fitted(
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
    parser.add_argument("--out", required=True,
                        help="where the table goes (research/per_class_offsets/results/NAME)")
    parser.add_argument("--data_dir", default="", help="the dataset ('' = the members' own)")
    args = parser.parse_args(argv)
    path = os.path.join(args.ensemble_dir, ensemble_lib.ENSEMBLE_RECORD)
    if not os.path.exists(path):
        parser.error(f"{args.ensemble_dir} is not an ensemble directory (no {path}): "
                     "make one with python -m fer.export.make_ensemble")
    record, workdirs = ensemble_lib.read_record(args.ensemble_dir)
    members, _, config = ensemble_lib.load_members(workdirs, record["which"])
    if args.data_dir:
        config.data_dir = args.data_dir
    shift_px = record.get("shift_px", 0)
    labels, views = ensemble_lib.member_log_probs(members, config, record["split"],
                                                  shift_px=shift_px)
    log_probs = ensemble_lib.combine_log_probs(views, record["mirror"], shifted=shift_px > 0)
    tau_shift = np.asarray(ensemble_model.prior_shift(record["train_counts"], record["tau"]))
    targets = {"min_balanced": readme_tables.GOAL_FERPLUS_BALANCED,
               "min_recall": readme_tables.GOAL_EVERY_CLASS}
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
