"""python -m benchmarks.per_label WORKDIR [--out DIR]

The seed's Table 7 (accuracy per label: correct, misclassified, accuracy %)
from a run's report.json (or any evaluation directory / report.json file), and
its confusion matrix as confusion.png (the seed's Figure 27).
Counts come from the confusion matrix (rows true, columns predicted), so the
table adds up to the report's overall accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping

import numpy as np

from benchmarks import latency

REPORT = "report.json"


def load_report(path: str) -> dict[str, Any]:
    if os.path.isdir(path):
        path = os.path.join(path, REPORT)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {REPORT} at {path}: train (python launch.py) or "
                                "evaluate (launch.py --mode=evaluate) first")
    with open(path) as f:
        return json.load(f)


def per_label_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    labels = list(report["labels"])
    confusion = np.asarray(report["confusion"], np.int64)
    if confusion.shape != (len(labels), len(labels)):
        raise ValueError(f"report.json: confusion {confusion.shape} does not match "
                         f"{len(labels)} labels")
    rows = []
    for i, label in enumerate(labels):
        examples = int(confusion[i].sum())
        correct = int(confusion[i, i])
        rows.append({"label": label, "examples": examples, "correct": correct,
                     "misclassified": examples - correct,
                     "accuracy_pct": round(100.0 * correct / examples, 2) if examples else None})
    return rows


def markdown(report: Mapping[str, Any], rows) -> str:
    title = (f"Accuracy per label (seed Table 7): {report.get('design', 'model')} on "
             f"{report.get('dataset', '?')} / {report.get('split', '?')}")
    lines = [f"## {title}", "", "| label | correct | misclassified | accuracy % |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        acc = "n/a" if r["accuracy_pct"] is None else f"{r['accuracy_pct']:.2f}"
        lines.append(f"| {r['label']} | {r['correct']} | {r['misclassified']} | {acc} |")
    total = sum(r["examples"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    if total:
        lines.append(f"| **all** | {correct} | {total - correct} | "
                     f"{100.0 * correct / total:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The seed's Table 7 from report.json")
    parser.add_argument("workdir", help="a run's workdir, an eval_* directory or a report.json")
    parser.add_argument("--out", default=latency.default_out_dir("per_label"))
    args = parser.parse_args(argv)
    report = load_report(args.workdir)
    rows = per_label_rows(report)
    text = markdown(report, rows)
    latency.write_outputs(args.out, "per_label", text, rows,
                          {"source": os.path.abspath(args.workdir), "rows": rows})
    from fer.evaluation import plots  # matplotlib only when the table is written.
    plots.plot_confusion(np.asarray(report["confusion"]), report["labels"],
                         os.path.join(args.out, "confusion.png"),
                         title=f"{report.get('design', '')} on {report.get('dataset', '')} "
                               f"{report.get('split', '')}".strip())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
