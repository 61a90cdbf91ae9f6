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
import math
import os
import time
from typing import Any, Iterator, Mapping

from benchmarks import latency

# (name, config overrides). The seed resizes 48 -> 98 before the network.
VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("none", {"preprocessing": "none"}),
    ("equalize", {"preprocessing": "equalize"}),
    ("dog", {"preprocessing": "dog"}),
    ("gamma", {"preprocessing": "gamma"}),
    ("resize98", {"preprocessing": "none", "image_size": 98}),
)


class LimitedPipeline:
    """fer.data.input_pipeline with at most `limits[split]` examples per epoch.

    Training batches stop after limit // batch_size steps (a fresh random
    subset every epoch: the split is shuffled); evaluation reads the first
    `limit` examples in file order (the same ones for every variant).
    """

    def __init__(self, base, limits: Mapping[str, int]):
        self.base = base
        self.limits = dict(limits)

    def get_dataset_info(self, config):
        info = self.base.get_dataset_info(config)
        num = dict(info.num_examples)
        for split, limit in self.limits.items():
            if split in num:
                num[split] = min(num[split], limit)
        return _with(info, num_examples=num)

    def class_weights(self, counts, power: float = 1.0):
        return self.base.class_weights(counts, power)

    def create_split(self, config, split, *, train, batch_size, **kw) -> Iterator[dict]:
        limit = self.limits.get(split)
        batches = self.base.create_split(config, split, train=train,
                                         batch_size=batch_size, **kw)
        if limit is None:
            yield from batches
            return
        steps = limit // batch_size if train else math.ceil(limit / batch_size)
        seen = 0
        for i, batch in enumerate(batches):
            if i >= steps:
                break
            if not train:  # Mask out examples beyond the limit in the last batch.
                keep = max(0, min(batch_size, limit - seen))
                batch = dict(batch)
                batch["mask"] = batch["mask"].copy()
                batch["mask"][keep:] = 0
                seen += keep
            yield batch


def _with(info, **changes):
    import dataclasses
    if dataclasses.is_dataclass(info):
        return dataclasses.replace(info, **changes)
    import copy
    info = copy.copy(info)
    for k, v in changes.items():
        setattr(info, k, v)
    return info


def variant_config(base_config, overrides: Mapping[str, Any]):
    config = base_config.copy_and_resolve_references()
    config.unlock()
    for key, value in overrides.items():
        config[key] = value
    return config


def run_variant(name: str, config, workdir: str, pipeline) -> dict[str, Any]:
    from fer.training import checkpoint
    from fer.training import train

    started = time.time()
    train.train_and_evaluate(config, workdir, pipeline=pipeline)
    module, variables, _, _ = checkpoint.load_model(workdir, "best")
    summary = train.evaluate(config, module, variables, config.eval_split, pipeline=pipeline)
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
    from fer.data import input_pipeline

    base = default_config.get_config()
    base.model = args.design
    base.dataset = args.dataset
    base.data_dir = args.data_dir
    base.epochs = args.epochs
    base.batch_size = args.batch_size
    pipeline = input_pipeline
    if args.limit:
        pipeline = LimitedPipeline(input_pipeline, {base.train_split: args.limit,
                                                    base.eval_split: args.limit})
    rows = []
    for name in chosen:
        workdir = os.path.join(args.workdir_root, f"{args.design}_{args.dataset}_{name}")
        print(f"Training {args.design} with preprocessing {name} -> {workdir}", flush=True)
        rows.append(run_variant(name, variant_config(base, known[name]), workdir, pipeline))
    text = markdown(rows, dataset=args.dataset, epochs=args.epochs, limit=args.limit or None)
    latency.write_outputs(args.out, "preprocessing", text, rows,
                          {"design": args.design, "dataset": args.dataset,
                           "epochs": args.epochs, "limit": args.limit or None, "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
