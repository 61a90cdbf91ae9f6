"""report.json, report.md and the figures of one evaluation (seed Tables 5 and 7).

The seed reported accuracy and loss only; a FER split is so unbalanced (contempt
is under 1% of FER+) that a model can score well while never predicting a class,
so the report leads with balanced accuracy and macro F1 beside them.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from fer.evaluation import plots

COMPARISON_HEADER = ("| design | dataset | split | examples | accuracy | balanced accuracy "
                     "| macro F1 | loss | params |")


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _num(x, digits=4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _interval(bounds) -> str:
    return "n/a" if bounds is None else f"{100 * bounds[0]:.1f}-{100 * bounds[1]:.1f}"


def comparison_row(summary: Mapping[str, Any]) -> str:
    """One markdown row under COMPARISON_HEADER (the seed's Table 5 shape)."""
    params = summary.get("params")
    return (f"| {summary.get('design', '?')} | {summary.get('dataset', '?')} "
            f"| {summary.get('split', '?')} | {summary['num_examples']} "
            f"| {_pct(summary['accuracy'])} | {_pct(summary['balanced_accuracy'])} "
            f"| {_pct(summary['macro_f1'])} | {_num(summary['loss'])} "
            f"| {'n/a' if params is None else f'{params:,}'} |")


def comparison_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """COMPARISON_HEADER, its separator and one row per summary."""
    columns = COMPARISON_HEADER.count("|") - 1
    return "\n".join([COMPARISON_HEADER, "|" + " --- |" * columns]
                     + [comparison_row(s) for s in summaries])


def to_markdown(summary: Mapping[str, Any]) -> str:
    labels = summary["labels"]
    lines = [f"# Evaluation: {summary.get('design', 'model')} on "
             f"{summary.get('dataset', '?')} / {summary.get('split', '?')}", ""]
    if summary.get("note"):
        lines += [f"> {summary['note']}", ""]
    if summary.get("label_mapping"):
        m = summary["label_mapping"]
        lines += [f"> A {m['from']} model scored on {m['to']} labels through the classes "
                  "both have, by name: " + ", ".join(f"{a} as {b}" for a, b in
                                                    m["mapped"].items())
                  + (f"; left out (probability dropped, the rest renormalised): "
                     f"{', '.join(m['left_out'])}" if m["left_out"] else "")
                  + (f"; never predicted (the model lacks them): {', '.join(m['unscored'])}"
                     if m["unscored"] else "") + ".", ""]
    if any(summary.get("skipped", {}).values()):
        lines += ["> The build skipped bad images or rows (per split and reason): "
                  + "; ".join(f"{split}: " + ", ".join(f"{k} {n}" for k, n in kinds.items())
                              for split, kinds in summary["skipped"].items()) + ".", ""]
    lines += [
        "| metric | value |", "| --- | --- |",
        f"| examples | {summary['num_examples']} |",
        f"| accuracy | {_pct(summary['accuracy'])} % |",
        f"| balanced accuracy (mean per-label recall) | "
        f"{_pct(summary['balanced_accuracy'])} % |",
        f"| macro F1 | {_pct(summary['macro_f1'])} % |",
        f"| loss (cross entropy) | {_num(summary['loss'])} |"]
    calibration = summary.get("calibration")
    if calibration:
        lines.append(f"| expected calibration error ({len(calibration['bins'])} bins, "
                     f"top label) | {_pct(calibration['ece'])} % |")
    lines += [
        "", "## Per label (seed Table 7)", "",
        "Accuracy is the label's recall; the 95% intervals are Wilson score intervals "
        "(recall over the label's faces, precision over the faces predicted as it).", "",
        "| label | examples | correct | misclassified | accuracy % | recall 95% | "
        "predicted | precision % | precision 95% | F1 % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for label in labels:
        c = summary["per_label_counts"][label]
        lines.append(f"| {label} | {c['examples']} | {c['correct']} | {c['misclassified']} "
                     f"| {_pct(summary['per_label'][label])} "
                     f"| {_interval(c.get('recall_interval'))} | {c.get('predicted', 'n/a')} "
                     f"| {_pct(c['precision'])} | {_interval(c.get('precision_interval'))} "
                     f"| {_pct(c['f1'])} |")
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
              "| true \\ predicted | " + " | ".join(labels) + " |",
              "| --- | " + " | ".join("---" for _ in labels) + " |"]
    for label, row in zip(labels, summary["confusion"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion](confusion.png)", ""]
    if calibration:
        lines += ["![reliability](reliability.png)", ""]
    if summary.get("has_curves"):
        lines += ["![curves](curves.png)", ""]
    return "\n".join(lines)


def write_report(directory: str, summary: Mapping[str, Any],
                 history: Sequence[Mapping[str, Any]] | None = None,
                 prefix: str = "report") -> dict[str, str]:
    """Writes <prefix>.json, <prefix>.md, confusion.png, (with calibration counts)
    reliability.png and (with history) curves.png.

    `summary` is `fer.evaluation.metrics.summarize(...)` plus optional context
    keys (design, dataset, split, params, note, checkpoint).
    """
    os.makedirs(directory, exist_ok=True)
    summary = dict(summary)
    paths = {}
    confusion_name = "confusion.png" if prefix == "report" else f"{prefix}_confusion.png"
    paths["confusion"] = plots.plot_confusion(
        summary["confusion"], summary["labels"], os.path.join(directory, confusion_name),
        title=f"{summary.get('design', '')} {summary.get('split', '')}".strip())
    reliability_name = ("reliability.png" if prefix == "report"
                        else f"{prefix}_reliability.png")
    if summary.get("calibration"):
        paths["reliability"] = plots.plot_reliability(
            summary["calibration"]["bins"], os.path.join(directory, reliability_name),
            title=f"{summary.get('design', '')} {summary.get('split', '')}".strip())
    if history:
        paths["curves"] = plots.plot_curves(
            history, os.path.join(directory, "curves.png"),
            title=f"{summary.get('design', '')} on {summary.get('dataset', '')}")
        summary["has_curves"] = True
    paths["json"] = os.path.join(directory, f"{prefix}.json")
    with open(paths["json"], "w") as f:
        json.dump(summary, f, indent=2)
    markdown = to_markdown(summary)
    if prefix != "report":
        markdown = markdown.replace("(confusion.png)", f"({confusion_name})")
        markdown = markdown.replace("(reliability.png)", f"({reliability_name})")
    paths["markdown"] = os.path.join(directory, f"{prefix}.md")
    with open(paths["markdown"], "w") as f:
        f.write(markdown)
    return paths
