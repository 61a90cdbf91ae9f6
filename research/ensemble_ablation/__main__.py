"""python -m research.ensemble_ablation ENSEMBLE_DIR --out DIR [--data_dir D]

What each ingredient of an ensemble (fer.export.make_ensemble) adds: one member or
all, mirror averaging or not, shifted views or not (when it uses them), prior
correction off or at the chosen tau; with the cross-fitted estimate of the
chosen tau and the tau trade-off plot the export recorded. Runs the members over
the ensemble's split (minutes on CPU); an ensemble.json written before the
ablation left the export already holds it, and is read as it is (its members
may be gone). Writes DIR/ensemble.{md,json} and DIR/prior_correction.png.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any, Mapping, Sequence

import numpy as np

from fer.export import make_ensemble as ensemble_lib


def ablation(labels: np.ndarray, log_probs: np.ndarray, log_prior: np.ndarray, tau: float,
             shift_px: int = 0) -> list[dict[str, Any]]:
    """Scores of member 1 / all, mirror or not, shifts or not, tau 0 or chosen.

    `log_probs` is member_log_probs' (2, S, M, N, K): every view of every member.
    """
    from fer.evaluation import prior_correction as pc

    count = log_probs.shape[2]
    rows = []
    for name, members in (("member 1", [0]), (f"{count} members", list(range(count)))):
        if name != "member 1" and count == 1:
            continue
        for shifted in (False, True) if shift_px else (False,):
            for mirror in (False, True):
                lp = ensemble_lib.combine_log_probs(log_probs[:, :, members], mirror, shifted)
                for t in sorted({0.0, tau}):
                    cm = pc.confusion(lp, labels, t * log_prior)
                    rows.append({"members": name, "mirror": mirror,
                                 "shift_px": shift_px if shifted else 0, "tau": t,
                                 **pc.score(cm)})
    return rows


def ablation_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The ablation as a table; a shifts column only when some row used shifted views."""
    shifts = any(r.get("shift_px", 0) for r in rows)
    lines = ["| members | mirror |" + (" shifts |" if shifts else "")
             + " tau | accuracy % | balanced % | lowest class % |",
             "| --- | --- |" + (" --- |" if shifts else "") + " --- | --- | --- | --- |"]
    for r in rows:
        shift = r.get("shift_px", 0)
        lines.append(f"| {r['members']} | {'yes' if r['mirror'] else 'no'} |"
                     + (f" {f'{shift} px' if shift else 'no'} |" if shifts else "")
                     + f" {r['tau']:g} | {100 * r['accuracy']:.2f} "
                     f"| {100 * r['balanced_accuracy']:.2f} | {100 * r['min_recall']:.2f} |")
    return "\n".join(lines)


def measure(ensemble_dir: str, *, data_dir: str = "") -> list[dict[str, Any]]:
    """The ablation rows of an ensemble directory, its members run over its split."""
    from fer.models import ensemble as ensemble_model

    record, workdirs = ensemble_lib.read_record(ensemble_dir)
    members, _, config = ensemble_lib.load_members(workdirs, record.get("which", "best"))
    if data_dir:
        config.data_dir = data_dir
    shift_px = record.get("shift_px", 0)
    labels, log_probs = ensemble_lib.member_log_probs(members, config, record["split"],
                                                      shift_px=shift_px)
    log_prior = np.asarray(ensemble_model.log_prior(record["train_counts"]))
    return ablation(labels, log_probs, log_prior, record["tau"], shift_px)


def markdown(record: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    cf = record["cross_fitted"]
    lines = [f"## What each ingredient adds: {report.get('design', 'ensemble')} on "
             f"{report.get('dataset', '?')} / {record['split']}", "",
             ablation_markdown(record["ablation"]), "",
             f"Chosen tau {record['tau']:g} ({record['tau_rule']}). Cross-fitted (tau picked "
             f"on one stratified half, scored on the other, both ways; taus "
             f"{', '.join(f'{t:g}' for t in cf['taus_chosen'])}): accuracy "
             f"{100 * cf['accuracy']:.2f}%, balanced {100 * cf['balanced_accuracy']:.2f}%, "
             f"lowest class {100 * cf['min_recall']:.2f}%.", "",
             "![prior correction](prior_correction.png)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ensemble_dir")
    parser.add_argument("--out", required=True,
                        help="where the table goes (research/ensemble_ablation/results/NAME)")
    parser.add_argument("--data_dir", default="", help="the dataset ('' = the members' own)")
    args = parser.parse_args(argv)
    paths = {name: os.path.join(args.ensemble_dir, name)
             for name in (ensemble_lib.ENSEMBLE_RECORD, "report.json", "prior_correction.png")}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        parser.error(f"{args.ensemble_dir} is not an ensemble directory (missing "
                     f"{', '.join(missing)}): make one with python -m fer.export.make_ensemble")
    with open(paths[ensemble_lib.ENSEMBLE_RECORD]) as f:
        record = json.load(f)
    with open(paths["report.json"]) as f:
        report = json.load(f)
    if "ablation" not in record:
        record["ablation"] = measure(args.ensemble_dir, data_dir=args.data_dir)
    os.makedirs(args.out, exist_ok=True)
    text = markdown(record, report)
    with open(os.path.join(args.out, "ensemble.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "ensemble.json"), "w") as f:
        json.dump({k: record.get(k) for k in ("members", "mirror", "shift_px", "tau", "tau_rule",
                                              "split", "params", "cross_fitted", "ablation")},
                  f, indent=2)
    shutil.copyfile(paths["prior_correction.png"], os.path.join(args.out, "prior_correction.png"))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
