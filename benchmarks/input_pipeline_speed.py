"""python -m benchmarks.input_pipeline_speed [--dataset ferplus] [--json OUT] [--batches N]

Images per second of fer's training input pipeline (fer.data.input_pipeline:
shuffle, decode, preprocess, resize, normalise, augment, batch) at 48x48 and
224x224 with 0 and 2 grain worker processes, beside what a training step of
each --step_configs config (default: configs/default.py) consumes on this machine:
the loader must deliver at least twice that. The step rate also tells how long a
run will take here (hosts differ: the shipped recipe's step ran at 650 images/s on
one 2-core host and 153 on another). Prints a markdown table; --json also writes it (and the
table as a .md beside it).

The dataset is FER+ from --data_dir or $FER_DATA/ferplus (built once into
--tfds_dir), or the embedded demo set when neither is there (--dataset=demo).
CPU seconds per image are given beside wall-clock rates: the machine may be shared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np


def _config(args, image_size: int, workers: int, augment: bool):
    import configs.default as default_config  # noqa: PLC0415

    config = default_config.get_config()
    config.dataset = args.dataset
    config.data_dir = args.data_dir
    config.tfds_dir = args.tfds_dir
    config.image_size = image_size
    config.num_workers = workers
    config.augment = augment
    return config


def measure_loader(config, batch_size: int, batches: int) -> dict[str, float]:
    """Steady-state images/s over `batches` batches (after the first, which pays start-up).

    Reads training's own iterator (create_train_iterator: endless, epoch after
    epoch, worker processes started once).
    """
    from fer.data import input_pipeline  # noqa: PLC0415

    input_pipeline.get_dataset_info(config)  # Build / load outside the timing.
    started = time.perf_counter()
    it = input_pipeline.create_train_iterator(config, config.train_split,
                                              batch_size=batch_size, seed=0,
                                              shard_index=0, shard_count=1)
    next(it)
    first = time.perf_counter() - started
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = sum(1 for _ in itertools.islice(it, batches))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    it.close()
    return {"images_per_s": n * batch_size / elapsed, "startup_s": first,
            "main_cpu_ms_per_image": 1000 * cpu / (n * batch_size)}


def step_config(spec: str):
    """The config `spec` names, as --config would: 'default', 'resnet_fer:stride=1'."""
    import configs  # noqa: PLC0415

    return configs.load(spec)


def measure_train_step(config, batch_size: int, steps: int) -> dict[str, Any]:
    """Images/s a jit-compiled training step of `config`'s design consumes."""
    import jax  # noqa: PLC0415
    from jax.sharding import NamedSharding, PartitionSpec  # noqa: PLC0415

    from fer.training import state as state_lib  # noqa: PLC0415
    from fer.training import train as train_lib  # noqa: PLC0415

    image_size = int(config.image_size)
    num_classes = 8
    model = state_lib.create_model(config, num_classes)
    tx = state_lib.create_optimizer(config, 100)
    mesh = train_lib.create_mesh()
    state = state_lib.create_train_state(jax.random.PRNGKey(0), model, tx,
                                         state_lib.input_shape(config))
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    p_train, _ = train_lib.compile_steps(model, tx, mesh, num_classes)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, num_classes, batch_size).astype(np.int32)
    batch = {"image": rng.random((batch_size, image_size, image_size, 1), np.float32),
             "label": labels, "target": np.eye(num_classes, dtype=np.float32)[labels],
             "mask": np.ones(batch_size, np.float32)}
    data = NamedSharding(mesh, PartitionSpec("data"))
    state, metrics = p_train(state, train_lib.shard_batch(batch, data))  # Compile.
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for _ in range(steps):
        state, metrics = p_train(state, train_lib.shard_batch(batch, data))
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t0
    return {"model": config.model, "model_kwargs": dict(config.model_kwargs),
            "image_size": image_size, "batch_size": batch_size,
            "images_per_s": steps * batch_size / elapsed}


def markdown(rows: list[dict[str, Any]], steps: list[dict[str, Any]]) -> str:
    lines = ["| dataset | size | workers | augment | images/s | start-up s "
             "| main-process CPU ms/image |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['image_size']}x{r['image_size']} | {r['workers']} | "
                     f"{'yes' if r['augment'] else 'no'} | {r['images_per_s']:,.0f} | "
                     f"{r['startup_s']:.1f} | {r['main_cpu_ms_per_image']:.3f} |")
    for step in steps:
        need = 2 * step["images_per_s"]
        slowest = min((r["images_per_s"] for r in rows if r["image_size"] == step["image_size"]),
                      default=float("nan"))
        kwargs = ", ".join(f"{k}={v}" for k, v in step.get("model_kwargs", {}).items())
        lines.append("")
        lines.append(f"Training step of {step.get('config', step['model'])} ({step['model']}"
                     f"{f' {kwargs}' if kwargs else ''}, {step['image_size']}x"
                     f"{step['image_size']}, batch {step['batch_size']}): "
                     f"{step['images_per_s']:,.0f} images/s; the loader must give >= {need:,.0f}; "
                     f"slowest loader setting at that size: {slowest:,.0f} "
                     f"({'ok' if slowest >= need else 'TOO SLOW'}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="", help="ferplus (default when found) or demo")
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--tfds_dir", default="")
    parser.add_argument("--sizes", default="48,224")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--augment", default="false,true",
                        help="comma list of true/false: rows with and without augmentation")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per row")
    parser.add_argument("--step_steps", type=int, default=20,
                        help="timed training steps per --step_configs config (0: skip)")
    parser.add_argument("--step_configs", default="default",
                        help="space-separated configs whose training step to time, each a "
                             "configs/ name with its arguments, e.g. "
                             "'default resnet_fer:size=tiny,data=ferplus'")
    parser.add_argument("--json", default="",
                        help="also write the results here (and a .md beside)")
    args = parser.parse_args(argv)

    from absl import flags  # noqa: PLC0415 (grain's workers read absl flags)

    flags.FLAGS.mark_as_parsed()
    if not args.dataset:
        fer_data = os.environ.get("FER_DATA", "")
        has_ferplus = args.data_dir or (
            fer_data and os.path.isdir(os.path.join(fer_data, "ferplus")))
        args.dataset = "ferplus" if has_ferplus else "demo"

    try:  # Before any measuring: a typo should not cost the loader rows' minutes.
        step_configs = [(name, step_config(name)) for name in
                        (args.step_configs.split() if args.step_steps else [])]
    except ValueError as e:
        parser.error(str(e))
    rows = []
    for size, workers, augment in itertools.product(
            [int(s) for s in args.sizes.split(",")], [int(w) for w in args.workers.split(",")],
            [a.strip().lower() == "true" for a in args.augment.split(",")]):
        result = measure_loader(_config(args, size, workers, augment), args.batch_size,
                                args.batches)
        rows.append({"dataset": args.dataset, "image_size": size, "workers": workers,
                     "augment": augment, **result})
        print(f"{args.dataset} {size}x{size} workers={workers} augment={augment}: "
              f"{result['images_per_s']:,.0f} images/s", file=sys.stderr, flush=True)
    steps = [{"config": name, **measure_train_step(config, args.batch_size, args.step_steps)}
             for name, config in step_configs]
    table = markdown(rows, steps)
    print(table)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "train_steps": steps, "cpus": os.cpu_count(),
                       "load_average": os.getloadavg(), "machine": platform.platform(),
                       "markdown": table}, f, indent=1)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(f"# Input pipeline ({os.cpu_count()} CPUs, load average "
                    f"{os.getloadavg()[0]:.1f} at the end)\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
