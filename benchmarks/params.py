"""Parameter and compute table of every design (the seed's Table 5 sizes).

    python -m benchmarks.params                   # the seed's setting
    python -m benchmarks.params --input-size 48   # every design at 48x48x1
    python -m benchmarks.params --json params.json --designs xcao,xcao2

The seed's setting is 224x224x1 with 8 classes for its own designs and
224x224x3 with 1000 classes for the two Keras references, whose counts it
quotes. Counts come from `jax.eval_shape` (nothing is allocated); MACs per
image are half the flops of XLA's cost analysis of the eval forward pass
(padding-aware, elementwise ops included), from lowering only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from tqdm import tqdm

from fer import models

REFERENCE_DESIGNS = ("inception_v3", "mobilenet_v1")
SEED_SHAPE, SEED_CLASSES = (224, 224, 1), 8
REFERENCE_SHAPE, REFERENCE_CLASSES = (224, 224, 3), 1000


def seed_setting(design: str) -> tuple[tuple[int, int, int], int]:
    """(input_shape, num_classes) at which the seed reports `design`."""
    if design in REFERENCE_DESIGNS:
        return REFERENCE_SHAPE, REFERENCE_CLASSES
    return SEED_SHAPE, SEED_CLASSES


def measure(design: str, input_shape: tuple[int, int, int],
            num_classes: int) -> dict[str, Any]:
    """Parameter counts and MACs per image of one design at one setting."""
    model = models.create_model(design, num_classes=num_classes,
                                input_shape=input_shape)
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = jax.eval_shape(lambda r, x: model.init(r, x), rngs, x)
    counts = models.count_params(variables)
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
    cost = lowered.cost_analysis()
    if isinstance(cost, (list, tuple)):  # Older jax: one dict per device.
        cost = cost[0]
    seed = models.SEED_PARAMS.get(design)
    at_seed = (tuple(input_shape), num_classes) == seed_setting(design)
    return {
        "design": design,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "params": counts["trainable"],
        "trainable_params": counts["trainable"],
        "total_params": counts["total"],
        "seed_params": seed,
        "seed_setting": at_seed,
        "ratio": counts["total"] / seed if seed and at_seed else None,
        "macs": int(round(float(cost["flops"]) / 2)),
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| design | input | classes | trainable | total | seed (Table 5) "
             "| total / seed | MMACs |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        seed = f"{r['seed_params']:,}" if r["seed_params"] else "-"
        ratio = f"{r['ratio']:.4f}" if r["ratio"] is not None else "-"
        lines.append(
            f"| {r['design']} | {'x'.join(map(str, r['input_shape']))} "
            f"| {r['num_classes']} | {r['trainable_params']:,} "
            f"| {r['total_params']:,} | {seed} | {ratio} | {r['macs'] / 1e6:,.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--designs", default="",
                        help="comma-separated names (default: all registered)")
    parser.add_argument("--input-size", type=int, default=None,
                        help="square input size for every design (default: "
                             "the seed's setting per design)")
    parser.add_argument("--channels", type=int, default=1,
                        help="input channels with --input-size (default 1, gray)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes (default: the seed's, 8 or 1000; 8 "
                             "with --input-size, as the designs are used)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)

    designs = [d for d in args.designs.split(",") if d] or models.list_models()
    rows = []
    for design in tqdm(designs, desc="designs", file=sys.stderr):
        shape, classes = seed_setting(design)
        if args.input_size is not None:
            shape = (args.input_size, args.input_size, args.channels)
            classes = SEED_CLASSES
        if args.num_classes is not None:
            classes = args.num_classes
        rows.append(measure(design, shape, classes))
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
