"""python -m benchmarks.latency --model M.tflite [--threads 1,2] [--json OUT]

One model's LiteRT latency (batch 1, ms per prediction: median, min and max of
--runs after --warmup), in the JSON schema the ARM runner writes too, so host
and device numbers merge into one table. Also the output helpers shared by the
other benchmarks (markdown + CSV + JSON in one directory).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from typing import Any, Mapping, Sequence

from benchmarks.arm import runner

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
COLUMNS = ("model", "variant", "design", "threads", "ms_median", "ms_min", "ms_max",
           "runs", "model_bytes", "device", "cpu_model")


def default_out_dir(name: str) -> str:
    return os.path.join(RESULTS_DIR, name)


def write_outputs(out_dir: str, name: str, markdown: str,
                  rows: Sequence[Mapping[str, Any]] | None, record: Any) -> dict[str, str]:
    """Writes <name>.md, <name>.csv (one line per row; none without rows) and
    <name>.json into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    exts = ("md", "json") if rows is None else ("md", "csv", "json")
    paths = {ext: os.path.join(out_dir, f"{name}.{ext}") for ext in exts}
    with open(paths["md"], "w") as f:
        f.write(markdown.rstrip() + "\n")
    if rows is not None:
        fieldnames = list(dict.fromkeys(k for row in rows for k in row))
        with open(paths["csv"], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
    with open(paths["json"], "w") as f:
        json.dump(record, f, indent=2)
    return paths


def flat_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A latency entry as one flat table row."""
    row = {k: entry.get(k) for k in COLUMNS if k not in ("device", "cpu_model")}
    row["device"] = entry["device"]["name"]
    row["cpu_model"] = entry["device"]["cpu_model"]
    return row


def markdown_table(entries: Sequence[Mapping[str, Any]], emulated: bool = False) -> str:
    """One row per entry; an emulated run's rows carry no timings (qemu's are not a CPU's)."""
    if emulated:
        lines = ["| model | variant | machine (emulated) | threads | runs | ms |",
                 "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {e['model']} | {e['variant']} | {e['device']['machine']} | "
                  f"{e['threads']} | {e['runs']} | not shown: emulated |" for e in entries]
        return "\n".join(lines)
    lines = ["| model | variant | device | CPU | threads | ms median | ms min | ms max | runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        lines.append(f"| {e['model']} | {e['variant']} | {e['device']['name']} | "
                     f"{e['device']['cpu_model']} | {e['threads']} | {e['ms_median']:.3f} | "
                     f"{e['ms_min']:.3f} | {e['ms_max']:.3f} | {e['runs']} |")
    return "\n".join(lines)


def measure(models: Sequence[str], threads: Sequence[int], runs: int,
            warmup: int) -> dict[str, Any]:
    entries = [runner.time_model(m, t, runs, warmup) for m in models for t in threads]
    return runner.make_report(entries)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="LiteRT latency of .tflite models")
    parser.add_argument("--model", required=True, action="append", help=".tflite (repeatable)")
    parser.add_argument("--threads", default="1", help="comma list, e.g. 1,2")
    parser.add_argument("--runs", type=int, default=runner.DEFAULT_RUNS)
    parser.add_argument("--warmup", type=int, default=runner.DEFAULT_WARMUP)
    parser.add_argument("--json", help="write the JSON here (default <out>/latency.json)")
    parser.add_argument("--out", default=default_out_dir("latency"),
                        help="directory for latency.md/.csv/.json")
    args = parser.parse_args(argv)
    for model in args.model:
        if not os.path.exists(model):
            parser.error(f"no model at {model}")
    report = measure(args.model, runner.parse_threads(args.threads), args.runs, args.warmup)
    markdown = markdown_table(report["results"])
    write_outputs(args.out, "latency", markdown,
                  [flat_row(e) for e in report["results"]], report)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
