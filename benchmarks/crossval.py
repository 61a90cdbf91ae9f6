"""python -m benchmarks.crossval --model fer/assets/model --out DIR [--data_dir D]

What the shipped model's choices are worth on faces that did not make them.
Its prior correction tau was picked on all of FER+'s validation faces (16
contempt, 25 disgust), so its validation scores flatter it. Here the faces are
split into 5 stratified folds; for each fold tau is chosen on the other four by
the shipping rule (fer.evaluation.prior_correction.choose) and the fold is
scored at that tau, and so are per-class abstention thresholds
(fer.evaluation.abstention) fitted on the four. Reported: mean and standard
deviation across folds, and the pooled out-of-fold confusion with 95% Wilson
intervals. Also writes DIR/abstain.json, the thresholds fitted on all the faces
at the shipped tau, for the gallery (copy it beside the model to use it).
The model is run once (about 10 s); nothing under the model is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

from fer import spec as spec_lib
from fer.evaluation import abstention
from fer.evaluation import metrics as metrics_lib

FOLDS = 5
GOAL_PRECISION = 0.5  # What a gallery filter should show: at least half right.
# Precision the thresholds are fitted for on the fitting folds: fitted for 50%, held-out
# faces get less (the rare classes' thresholds fit noise), so the fitting target is the
# smallest of these whose held-out precision reaches GOAL_PRECISION for every class,
# over SEEDS fold splits (choose_target).
FIT_TARGETS = (0.5, 0.6, 0.7, 0.8)
SEEDS = (0, 1, 2)
MIN_KEPT = 5  # Faces a threshold must keep on the fitting folds to count as reaching it.


def load_faces(data_dir: str, dataset: str = "ferplus", split: str = "validation"
               ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(uint8 faces (N, H, W, C), labels, label names) of a split, in order."""
    from configs import default
    from fer.data import input_pipeline, sources

    config = default.get_config()
    config.dataset, config.data_dir = dataset, data_dir
    data = input_pipeline.load_dataset(config)
    part = data.split(split)
    records = sources.read_many(part.source, range(len(part.labels)))
    return (np.stack([r["image"] for r in records]), np.asarray(part.labels),
            data.label_set.labels)


def shipped_record(model_dir: str) -> dict[str, Any]:
    path = os.path.join(model_dir, spec_lib.SHIPPED_RECORD)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: not a shipped model (fer.export.ship)")
    with open(path) as f:
        record = json.load(f)
    ensemble = record.get("run", {}).get("ensemble") or {}
    if "tau" not in ensemble or not ensemble.get("train_counts"):
        raise ValueError(f"{path} records no tau and training counts "
                         "(run.ensemble.tau, run.ensemble.train_counts)")
    return record


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _ratio(right: np.ndarray, shown: np.ndarray) -> list[float | None]:
    return [None if n == 0 else float(r / n) for r, n in zip(right, shown)]


def _intervals(right: np.ndarray, shown: np.ndarray) -> list[list[float] | None]:
    return [None if n == 0 else list(metrics_lib.wilson_interval(r, n))
            for r, n in zip(right, shown)]


def _spread(values: Sequence) -> dict[str, Any]:
    """Mean and sample standard deviation across folds, ignoring undefined folds."""
    x = np.array([np.nan if v is None else v for v in values], np.float64)
    x = x[~np.isnan(x)]
    return {"mean": float(x.mean()) if len(x) else None,
            "sd": float(x.std(ddof=1)) if len(x) > 1 else None, "folds": int(len(x))}


def _fold_scores(probs: np.ndarray, labels: np.ndarray, thresholds, k: int) -> dict[str, Any]:
    cm = metrics_lib.confusion_matrix(labels, probs.argmax(1), k)
    recall = metrics_lib.per_class_recall(cm)
    abstain = abstention.abstain_mask(probs, thresholds)
    right0, shown0 = abstention.precision_counts(probs, labels)
    right1, shown1 = abstention.precision_counts(probs, labels, abstain)
    return {
        "accuracy": metrics_lib.accuracy(cm),
        "balanced_accuracy": metrics_lib.balanced_accuracy(cm),
        "macro_f1": metrics_lib.macro_f1(cm),
        "min_recall": float(np.nanmin(recall)),
        "ece": metrics_lib.expected_calibration_error(
            metrics_lib.calibration_counts(probs, labels)),
        "recall": [None if np.isnan(r) else float(r) for r in recall],
        "precision": _ratio(right0, shown0),
        "abstained": float(abstain.mean()),
        "precision_abstaining": _ratio(right1, shown1),
        "accuracy_kept": float((probs.argmax(1) == labels)[~abstain].mean())
        if (~abstain).any() else None,
        "confusion": cm, "abstain": abstain}


def crossval(probs: np.ndarray, labels: np.ndarray, names: Sequence[str],
             train_counts: Sequence[int], shipped_tau: float, *, folds: int = FOLDS,
             seed: int = 0, target: float = GOAL_PRECISION, min_kept: int = MIN_KEPT,
             taus: Sequence[float] | None = None) -> dict[str, Any]:
    """Tau and abstention thresholds chosen on k-1 folds, scored on the k-th.

    `taus`: the prior-correction strengths tried (prior_correction.DEFAULT_TAUS, 0 to 1,
    when None); a model trained with a logit-adjusted loss needs negative ones too.
    """
    from fer.evaluation import prior_correction as pc
    from fer.models import ensemble as ensemble_lib

    labels = np.asarray(labels)
    k = len(names)
    log_prior = ensemble_lib.log_prior(train_counts)
    # The model's log-probabilities at tau 0 (up to a constant per face).
    uncorrected = np.log(np.clip(probs, 1e-12, 1.0)) + np.asarray(
        ensemble_lib.prior_shift(train_counts, shipped_tau))
    fold_of = pc.stratified_folds(labels, folds, seed)
    per_fold, pooled_cm = [], np.zeros((k, k), np.int64)
    pooled_calibration = np.zeros((metrics_lib.ECE_BINS, 3))
    pooled_right = np.zeros((2, k), np.int64)
    pooled_shown = np.zeros((2, k), np.int64)
    for f in range(folds):
        fit, held = fold_of != f, fold_of == f
        tau = pc.choose(pc.sweep(uncorrected[fit], labels[fit], log_prior,
                                 pc.DEFAULT_TAUS if taus is None else taus))["tau"]
        at_tau = _softmax(uncorrected - tau * log_prior)
        thresholds = abstention.fit_thresholds(at_tau[fit], labels[fit], target=target,
                                               min_kept=min_kept)
        scores = _fold_scores(at_tau[held], labels[held], thresholds, k)
        pooled_cm += scores.pop("confusion")
        abstain = scores.pop("abstain")
        pooled_calibration += metrics_lib.calibration_counts(at_tau[held], labels[held])
        for row, mask in enumerate((None, abstain)):
            right, shown = abstention.precision_counts(at_tau[held], labels[held], mask)
            pooled_right[row] += right
            pooled_shown[row] += shown
        per_fold.append({"fold": f, "faces": int(held.sum()), "tau": tau,
                         "thresholds": thresholds, **scores})
    summary = {key: _spread([row[key] for row in per_fold])
               for key in ("accuracy", "balanced_accuracy", "macro_f1", "min_recall", "ece",
                           "abstained", "accuracy_kept")}
    per_class = {key: [_spread([row[key][c] for row in per_fold]) for c in range(k)]
                 for key in ("recall", "precision", "precision_abstaining")}
    pooled = metrics_lib.summarize(pooled_cm, list(names), calibration=pooled_calibration)
    # The thresholds the gallery gets: fitted on every face, at the shipped tau.
    final = abstention.fit_thresholds(probs, labels, target=target, min_kept=min_kept)
    return {
        "faces": int(len(labels)), "folds": folds, "seed": seed, "labels": list(names),
        "class_faces": np.bincount(labels, minlength=k).tolist(),
        "shipped_tau": shipped_tau, "taus_chosen": [row["tau"] for row in per_fold],
        "target_precision": target, "min_kept": min_kept,
        "mean_sd": summary, "per_class_mean_sd": per_class, "pooled": pooled,
        "pooled_abstention": {
            "precision": _ratio(pooled_right[0], pooled_shown[0]),
            "precision_interval": _intervals(pooled_right[0], pooled_shown[0]),
            "precision_abstaining": _ratio(pooled_right[1], pooled_shown[1]),
            "precision_abstaining_interval": _intervals(pooled_right[1], pooled_shown[1]),
            "predicted": pooled_shown[0].tolist(), "shown": pooled_shown[1].tolist()},
        "per_fold": per_fold,
        "thresholds": abstention.thresholds_by_label(names, final)}


def choose_target(probs: np.ndarray, labels: np.ndarray, names: Sequence[str],
                  train_counts: Sequence[int], shipped_tau: float, *,
                  targets: Sequence[float] = FIT_TARGETS, seeds: Sequence[int] = SEEDS,
                  goal: float = GOAL_PRECISION, folds: int = FOLDS,
                  taus: Sequence[float] | None = None) -> tuple[float, list[dict[str, Any]]]:
    """The smallest fitting target whose pooled held-out precision, with abstention,
    is >= goal for every class shown at all, in every fold split (else the largest)."""
    rows = []
    for target in targets:
        worst, abstained = [], []
        for seed in seeds:
            r = crossval(probs, labels, names, train_counts, shipped_tau, folds=folds,
                         seed=seed, target=target, taus=taus)
            shown = [v for v in r["pooled_abstention"]["precision_abstaining"] if v is not None]
            worst.append(min(shown))
            abstained.append(r["mean_sd"]["abstained"]["mean"])
        rows.append({"target": target, "lowest_precision": worst, "abstained": abstained})
    chosen = next((row["target"] for row in rows if min(row["lowest_precision"]) >= goal),
                  targets[-1])
    return chosen, rows


def _pm(entry: Mapping[str, Any], scale: float = 100.0) -> str:
    if entry["mean"] is None:
        return "n/a"
    sd = "" if entry["sd"] is None else f" ± {scale * entry['sd']:.1f}"
    return f"{scale * entry['mean']:.1f}{sd}"


def _pct_ci(value, interval) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} ({100 * interval[0]:.1f}-{100 * interval[1]:.1f})"


def markdown(record: Mapping[str, Any]) -> str:
    m, pooled, names = record["mean_sd"], record["pooled"], record["labels"]
    pa = record["pooled_abstention"]
    lines = [
        f"## Cross-validated: the shipped model on FER+ validation ({record['faces']:,} faces, "
        f"{record['folds']} stratified folds)", "",
        f"Per fold, tau is chosen on the other {record['folds'] - 1} folds by the shipping "
        "rule and the fold is scored at it (taus chosen: "
        + ", ".join(f"{t:g}" for t in record["taus_chosen"])
        + f"; shipped: {record['shipped_tau']:g}). Mean ± standard deviation across folds, "
        "and the pooled out-of-fold faces (every face scored once, by a tau it did not "
        "choose).", "",
        "| metric | mean ± sd across folds % | pooled out-of-fold % |", "| --- | --- | --- |",
        f"| accuracy | {_pm(m['accuracy'])} | {100 * pooled['accuracy']:.2f} |",
        f"| balanced accuracy | {_pm(m['balanced_accuracy'])} | "
        f"{100 * pooled['balanced_accuracy']:.2f} |",
        f"| macro F1 | {_pm(m['macro_f1'])} | {100 * pooled['macro_f1']:.2f} |",
        f"| lowest class recall | {_pm(m['min_recall'])} | "
        f"{100 * min(v for v in pooled['per_label'].values() if v is not None):.2f} |",
        f"| expected calibration error (15 bins) | {_pm(m['ece'])} | "
        f"{100 * pooled['calibration']['ece']:.2f} |", "",
        "Per class: recall and precision, mean ± sd across folds, and pooled with its 95% "
        "Wilson interval.", "",
        "| label | faces | recall ± sd | recall pooled (95%) | precision ± sd | "
        "precision pooled (95%) |", "| --- | --- | --- | --- | --- | --- |"]
    pc = record["per_class_mean_sd"]
    for c, label in enumerate(names):
        counts = pooled["per_label_counts"][label]
        lines.append(
            f"| {label} | {record['class_faces'][c]} | {_pm(pc['recall'][c])} | "
            f"{_pct_ci(pooled['per_label'][label], counts['recall_interval'])} | "
            f"{_pm(pc['precision'][c])} | "
            f"{_pct_ci(pa['precision'][c], pa['precision_interval'][c])} |")
    lines += [
        "", f"### Abstention: \"uncertain\" under a per-class threshold on the top probability",
        "", f"Per fold, each class's threshold is the smallest (steps of 0.01) at which its "
        f"kept predictions on the other folds reach {100 * record['target_precision']:g}% "
        f"precision over at least {record['min_kept']} faces (never: always uncertain). "
        f"That fitting target is the smallest of "
        + ", ".join(f"{100 * r['target']:g}%" for r in record.get("target_sweep", []))
        + f" whose held-out precision reaches {100 * GOAL_PRECISION:g}% for every class "
        f"in each of {len(SEEDS)} fold splits (seeds {', '.join(map(str, SEEDS))}):"
        + "".join(f" fitted for {100 * r['target']:g}%: lowest class "
                  + "/".join(f"{100 * v:.1f}" for v in r["lowest_precision"])
                  + "% held out, " + "/".join(f"{100 * v:.1f}" for v in r["abstained"])
                  + "% abstained;" for r in record.get("target_sweep", []))
        + " (a choice made on these faces too: one number out of four). "
        f"Faces abstained on: {_pm(m['abstained'])}% across folds; accuracy on the faces "
        f"kept {_pm(m['accuracy_kept'])}% (all faces: {_pm(m['accuracy'])}%).", "",
        "| label | threshold (all faces) | predicted | precision pooled (95%) | shown | "
        "precision abstaining, pooled (95%) | precision abstaining ± sd |",
        "| --- | --- | --- | --- | --- | --- | --- |"]
    for c, label in enumerate(names):
        t = record["thresholds"][label]
        shown = _pct_ci(pa["precision_abstaining"][c], pa["precision_abstaining_interval"][c])
        lines.append(
            f"| {label} | {'always uncertain' if t is None else f'{t:.2f}'} | "
            f"{pa['predicted'][c]} | {_pct_ci(pa['precision'][c], pa['precision_interval'][c])}"
            f" | {pa['shown'][c]} | {shown} | {_pm(pc['precision_abstaining'][c])} |")
    lines += ["", "![reliability, pooled out-of-fold](reliability.png)"]
    return "\n".join(lines) + "\n"


def write(record: Mapping[str, Any], out: str) -> None:
    from fer.evaluation import plots

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "crossval.json"), "w") as f:
        json.dump(record, f, indent=2)
    with open(os.path.join(out, "crossval.md"), "w") as f:
        f.write(markdown(record))
    with open(os.path.join(out, abstention.FILENAME), "w") as f:
        json.dump({"thresholds": record["thresholds"],
                   "rule": f"smallest top probability (0.01 steps) at which a class's kept "
                           f"predictions reach {record['target_precision']:g} precision "
                           f"over >= {record['min_kept']} faces; null: always uncertain",
                   "fitted_on": f"{record['faces']} FER+ validation faces at the shipped tau "
                                f"{record['shipped_tau']:g}",
                   "cross_validated": "benchmarks.crossval (crossval.md)"}, f, indent=2)
    plots.plot_reliability(record["pooled"]["calibration"]["bins"],
                           os.path.join(out, "reliability.png"),
                           title="pooled out-of-fold")


def main(argv: Sequence[str] | None = None) -> int:
    from fer.export import runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec_lib.SHIPPED_MODEL_DIR)
    parser.add_argument("--out", required=True, help="results folder (crossval.md/.json, "
                        "abstain.json, reliability.png)")
    parser.add_argument("--data_dir", default=os.path.join(os.environ.get("FER_DATA", ""),
                                                           "ferplus"),
                        help="FER+ (default: $FER_DATA/ferplus)")
    parser.add_argument("--folds", type=int, default=FOLDS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if os.path.realpath(args.out) == os.path.realpath(args.model):
        parser.error("--out must not be the model directory: copy abstain.json there "
                     "yourself once you have read crossval.md")
    try:
        record = shipped_record(args.model)
        faces, labels, names = load_faces(args.data_dir, record["run"]["dataset"])
        classifier = runtime.LiteRTClassifier(args.model, num_threads=2)
        if tuple(classifier.labels) != tuple(names):
            raise ValueError(f"the model's labels {classifier.labels} are not the data's {names}")
        probs = classifier.predict_probs(faces).astype(np.float64)
        ensemble = record["run"]["ensemble"]
        counts, tau = ensemble["train_counts"], float(ensemble["tau"])
        target, sweep = choose_target(probs, labels, names, counts, tau, folds=args.folds)
        result = crossval(probs, labels, names, counts, tau, folds=args.folds,
                          seed=args.seed, target=target)
        result["target_sweep"] = sweep
    except (OSError, ValueError) as e:
        print(f"crossval: {e}", file=sys.stderr)
        return 2
    write(result, args.out)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
