"""python -m research.preprocessing_table4 --data_dir DIR [--epochs N] [--limit N] [--out DIR]

The seed's Table 4: the `baseline` design trained on FER2013 once per
preprocessing variant (none, equalize, dog, gamma, and resize to 98x98) with
the same schedule, seed and data, and scored on the validation split (its best
checkpoint). Each variant is an ordinary fer.training run in
<workdir_root>/<variant> (resumable: rerunning continues where it stopped).
--limit caps the training images per epoch and the validation images scored,
so the whole table can be run small; the table says when it was.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Mapping

from benchmarks import latency

# (name, config overrides). The seed resizes 48 -> 98 before the network.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("none", {"preprocessing": "none"}),
    ("equalize", {"preprocessing": "equalize"}),
    ("dog", {"preprocessing": "dog"}),
    ("gamma", {"preprocessing": "gamma"}),
    ("resize98", {"preprocessing": "none", "image_size": 98}),
)


def limited(dataset: str, split: str, limit: int) -> str:
    """The name of `dataset` with only the first `limit` examples of `split` (file order).

    Registered once in fer.data.sources, so that every variant is scored on the same
    faces; the training images per epoch are capped by config.steps_per_epoch (a
    fresh random subset every epoch: the split is shuffled).
    """
    import dataclasses
    import types

    import numpy as np

    from fer.data import sources

    name = f"{dataset}@{split}{limit}"
    if name not in sources.names():
        def load(config) -> sources.Dataset:
            whole = sources.load(types.SimpleNamespace(**{**dict(config.items()),
                                                          "dataset": dataset}))
            part = whole.split(split)
            first = sources.subset(part, np.arange(min(limit, len(part.labels))))
            return dataclasses.replace(whole, splits={**whole.splits, split: first},
                                       description=f"{whole.description}, the first "
                                                   f"{limit} of {split}")
        sources.register(name)(load)
    return name


def variant_config(base_config, overrides: Mapping[str, Any]):
    config = base_config.copy_and_resolve_references()
    config.unlock()
    for key, value in overrides.items():
        config[key] = value
    return config


def run_variant(name: str, config, workdir: str) -> dict[str, Any]:
    from fer.training import train

    started = time.time()
    summary = train.train_and_evaluate(config, workdir).best_summary  # Its best checkpoint.
    return {"preprocessing": name, "image_size": int(config.image_size),
            "accuracy": summary["accuracy"], "loss": summary["loss"],
            "balanced_accuracy": summary["balanced_accuracy"],
            "num_examples": summary["num_examples"], "epochs": int(config.epochs),
            "seconds": round(time.time() - started, 1), "workdir": os.path.abspath(workdir)}


def markdown(rows, *, dataset: str, epochs: int, limit: int | None) -> str:
    scope = (f"at most {limit} training images per epoch and {limit} validation images"
             if limit else "the full splits")
    lines = [f"## Preprocessing (seed Table 4): baseline on {dataset}, {epochs} epoch(s), "
             f"{scope}", "",
             "| preprocessing | input | accuracy % | loss | balanced acc. % | val. images |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['preprocessing']} | {r['image_size']}x{r['image_size']} | "
                     f"{100 * r['accuracy']:.2f} | {r['loss']:.4f} | "
                     f"{100 * r['balanced_accuracy']:.2f} | {r['num_examples']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The seed's Table 4")
    parser.add_argument("--dataset", default="fer2013", help="fer2013 (or demo for a smoke run)")
    parser.add_argument("--data_dir", default="", help="folder with fer2013.csv(.gz)")
    parser.add_argument("--design", default="baseline")
    parser.add_argument("--epochs", type=int, default=10, help="the seed's schedule: 10")
    parser.add_argument("--limit", type=int, default=0,
                        help="max training images per epoch and validation images (0 = all)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--variants", default=",".join(n for n, _ in VARIANTS))
    parser.add_argument("--workdir_root", default=os.path.join("runs", "preprocessing"))
    parser.add_argument("--out", default=os.path.join("runs", "preprocessing"),
                        help="where the table goes (research/preprocessing_table4/results/"
                             "NAME holds the measured one)")
    args = parser.parse_args(argv)
    if args.dataset != "demo" and not args.data_dir:
        parser.error("--data_dir is required (the folder holding fer2013.csv.gz); "
                     "use --dataset demo for a smoke run")
    known = dict(VARIANTS)
    chosen = [v for v in args.variants.split(",") if v]
    unknown = [v for v in chosen if v not in known]
    if unknown:
        parser.error(f"unknown variants {unknown}; expected some of {list(known)}")

    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain workers read absl flags.
        flags.FLAGS.mark_as_parsed()
    import configs.default as default_config

    base = default_config.get_config()
    base.model = args.design
    base.dataset = args.dataset
    base.data_dir = args.data_dir
    base.epochs = args.epochs
    base.batch_size = args.batch_size
    if args.limit:
        base.dataset = limited(args.dataset, base.eval_split, args.limit)
        base.steps_per_epoch = max(1, args.limit // args.batch_size)
    rows = []
    for name in chosen:
        workdir = os.path.join(args.workdir_root, f"{args.design}_{args.dataset}_{name}")
        print(f"Training {args.design} with preprocessing {name} -> {workdir}", flush=True)
        rows.append(run_variant(name, variant_config(base, known[name]), workdir))
    text = markdown(rows, dataset=args.dataset, epochs=args.epochs, limit=args.limit or None)
    latency.write_outputs(args.out, "preprocessing", text, rows,
                          {"design": args.design, "dataset": args.dataset,
                           "epochs": args.epochs, "limit": args.limit or None, "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
