"""python -m research.shipped_tau --out DIR [--model fer/assets/model]

The prior-correction trade-off of the shipped ensemble as it stands: accuracy,
balanced accuracy and the lowest class per tau on the split its tau was last
chosen on, the cross-fitted estimate of that choice, and the re-tunings it went
through (research.shipped_tau.retune). Reads shipped.json (no model is run); writes
DIR/shipped_tau.{md,json} and DIR/prior_correction.png for docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping

from fer import spec as spec_lib

MAX_TAU_SHOWN = 0.6  # Past it every row loses accuracy and balanced accuracy alike.


def markdown(record: Mapping[str, Any]) -> str:
    run = record["run"]
    ensemble = run["ensemble"]
    labels = record["labels"]
    lines = [f"## Prior correction of the shipped model: {record['design']} on "
             f"{run['dataset']} / {run['split']} ({run['num_examples']:,} faces)", "",
             "| tau | accuracy % | balanced % | lowest class % | lowest class |",
             "| --- | --- | --- | --- | --- |"]
    for row in ensemble["sweep"]:
        if row["tau"] > MAX_TAU_SHOWN + 1e-9 and row["tau"] != ensemble["tau"]:
            continue
        recall = [-1.0 if r is None else r for r in row["recall"]]
        worst = labels[recall.index(min(r for r in recall if r >= 0))]
        tau = f"{row['tau']:g}"
        if row["tau"] == ensemble["tau"]:
            tau = f"**{tau}** (shipped)"
        lines.append(f"| {tau} | {100 * row['accuracy']:.2f} | "
                     f"{100 * row['balanced_accuracy']:.2f} | {100 * row['min_recall']:.2f} | "
                     f"{worst} |")
    cf = ensemble["cross_fitted"]
    lines += ["", f"Shipped tau {ensemble['tau']:g} ({ensemble['tau_rule']}). Cross-fitted "
              f"(tau picked on one stratified half, scored on the other, both ways; taus "
              f"{', '.join(f'{t:g}' for t in cf['taus_chosen'])}): accuracy "
              f"{100 * cf['accuracy']:.2f}%, balanced {100 * cf['balanced_accuracy']:.2f}%, "
              f"lowest class {100 * cf['min_recall']:.2f}%."]
    for step in ensemble.get("retuned", []):
        before = step["before"]
        lines += ["", f"Re-tuned from tau {step['from_tau']:g} to "
                  f"{step['tau']:g}{': ' + step['note'] if step.get('note') else ''}. Before: "
                  f"accuracy {100 * before['accuracy']:.2f}%, balanced "
                  f"{100 * before['balanced_accuracy']:.2f}% on {before['num_examples']:,} "
                  f"faces; the rewritten file's outputs are within "
                  f"{step['max_abs_delta_p']:.1e} of the re-corrected old ones."]
    lines += ["", "![prior correction](prior_correction.png)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from fer.evaluation import prior_correction as pc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec_lib.SHIPPED_MODEL_DIR)
    parser.add_argument("--out", required=True,
                        help="where the table goes (research/shipped_tau/results/NAME)")
    args = parser.parse_args(argv)
    path = os.path.join(args.model, spec_lib.SHIPPED_RECORD)
    if not os.path.exists(path):
        parser.error(f"{path} is missing: not a shipped model (fer.export.ship)")
    with open(path) as f:
        record = json.load(f)
    ensemble = record.get("run", {}).get("ensemble") or {}
    if "sweep" not in ensemble:
        parser.error(f"{path} holds no tau sweep: ship an ensemble (fer.export.make_ensemble) or "
                     "re-tune it (research.shipped_tau.retune)")
    os.makedirs(args.out, exist_ok=True)
    text = markdown(record)
    with open(os.path.join(args.out, "shipped_tau.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "shipped_tau.json"), "w") as f:
        json.dump({k: ensemble.get(k) for k in ("tau", "tau_rule", "cross_fitted", "retuned",
                                                "sweep")}, f, indent=2)
    run = record["run"]
    pc.plot(ensemble["sweep"], record["labels"], os.path.join(args.out, "prior_correction.png"),
            chosen=ensemble["tau"],
            title=f"{record['design']} on {run['dataset']} / {run['split']}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
