"""python -m benchmarks.ensemble ENSEMBLE_DIR [--out DIR]

What each ingredient of an ensemble (fer.export.ensemble) adds: one member or
all, mirror averaging or not, shifted views or not (when it uses them), prior
correction off or at the chosen tau; the cross-fitted estimate of the chosen
tau; and the tau trade-off plot. Reads the ensemble's ensemble.json (no model
is run), writes DIR/ensemble.{md,json} and DIR/prior_correction.png for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from typing import Any, Mapping

from fer.export import ensemble as ensemble_lib


def markdown(record: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    cf = record["cross_fitted"]
    lines = [f"## What each ingredient adds: {report.get('design', 'ensemble')} on "
             f"{report.get('dataset', '?')} / {record['split']}", "",
             ensemble_lib.ablation_markdown(record["ablation"]), "",
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
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "ensemble"))
    args = parser.parse_args(argv)
    paths = {name: os.path.join(args.ensemble_dir, name)
             for name in (ensemble_lib.ENSEMBLE_RECORD, "report.json", "prior_correction.png")}
    missing = [p for p in paths.values() if not os.path.exists(p)]
    if missing:
        parser.error(f"{args.ensemble_dir} is not an ensemble directory (missing "
                     f"{', '.join(missing)}): make one with python -m fer.export.ensemble")
    with open(paths[ensemble_lib.ENSEMBLE_RECORD]) as f:
        record = json.load(f)
    with open(paths["report.json"]) as f:
        report = json.load(f)
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
