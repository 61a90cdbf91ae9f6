"""Training and inference throughput of fer's own jitted steps, optionally against PyTorch.

    python -m benchmarks.train_speed --design resnet_fer_tiny --design xcao2 \
        --torch --out /tmp/train_speed

Each design trains from its config (DESIGNS: the recipe a user runs, its optimizer,
schedule, label mode, class weights and dropout) with `fer.training.train`'s own
`compile_steps` train and eval steps, on synthetic in-memory batches of FER+'s shape
(8 classes, soft or hard targets as the recipe says): host numpy batches sharded
onto the device every step, as the training loop does, so no input pipeline is
timed. Warm-up steps (compilation) are excluded; every timed runner does `--steps`
steps per repeat, the runners take turns (interleaved) and each reports the median
over `--repeats` of images per second and of CPU cores busy (user + system CPU time
over wall time of this process).

`--torch` adds a PyTorch twin of the same network (benchmarks/torch_reference.py;
the parameter counts are asserted equal) trained with the same optimizer, eager
and `torch.compile`d, interleaved in the same run. torch is no dependency of fer:
install it apart (docs/training.md, "Training speed").
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

import configs
from benchmarks import latency
from fer import models
from fer.training import state as state_lib
from fer.training import train as train_lib

# Design -> the config it trains with (`file:arguments`, as launch.py's --config).
DESIGNS = {
    "resnet_fer_tiny": "configs/resnet_fer.py:size=tiny,data=ferplus",
    "xcao2": "configs/seed_designs.py:model=xcao2",
    "mobilenet_v1": "configs/seed_designs.py:model=mobilenet_v1",
}
NUM_CLASSES = 8  # FER+'s.
STEPS_PER_EPOCH = 28_709 // 64  # Sets only the schedule's length (FER+'s train split).
TORCH_MISSING = ("torch is not installed (no dependency of fer): the PyTorch comparison "
                 "is skipped. Install its CPU build apart from fer's venv, e.g. "
                 "`python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install "
                 "-r requirements.txt -e . torch --extra-index-url "
                 "https://download.pytorch.org/whl/cpu`, and run with that python.")


def synthetic_batch(config: ml_collections.ConfigDict, batch_size: int,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """A batch as fer.data.input_pipeline yields it (image, target, label, mask)."""
    rng = np.random.default_rng(seed)
    shape = state_lib.input_shape(config)
    image = rng.random((batch_size, *shape), dtype=np.float32)
    if config.label_mode == "probability":
        target = rng.random((batch_size, NUM_CLASSES), dtype=np.float32) ** 4
        target /= target.sum(-1, keepdims=True)
        label = target.argmax(-1)
    else:
        label = rng.integers(0, NUM_CLASSES, batch_size)
        target = np.eye(NUM_CLASSES, dtype=np.float32)[label]
    return {"image": image, "target": target, "label": label.astype(np.int32),
            "mask": np.ones((batch_size,), np.float32)}


def forward_macs(config: ml_collections.ConfigDict) -> int:
    """MACs per image of the config's model (its model_kwargs too) in eval mode.

    Half the flops of XLA's cost analysis of the forward pass, as benchmarks.params.
    """
    model = state_lib.create_model(config, NUM_CLASSES)
    x = jax.ShapeDtypeStruct((1, *state_lib.input_shape(config)), np.float32)
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    variables = jax.eval_shape(lambda r, x: model.init(r, x), rngs, x)
    cost = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
        variables, x).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return int(round(float(cost["flops"]) / 2))


def _timed(run: Callable[[], Any], steps: int, batch_size: int) -> dict[str, float]:
    """Images per second and cores busy of `steps` calls of `run` (which syncs at end)."""
    before, start = os.times(), time.perf_counter()
    run()
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"images_per_second": steps * batch_size / wall, "cores_busy": cpu / wall}


class FerRunner:
    """fer's compile_steps train and eval steps on one design's config."""

    def __init__(self, config: ml_collections.ConfigDict, batch: dict[str, np.ndarray]):
        mesh = train_lib.create_mesh()
        self.sharding = NamedSharding(mesh, P("data"))
        model = state_lib.create_model(config, NUM_CLASSES)
        tx = state_lib.create_optimizer(config, STEPS_PER_EPOCH)
        state = state_lib.create_train_state(jax.random.PRNGKey(int(config.seed)), model,
                                             tx, state_lib.input_shape(config))
        self.state = jax.device_put(state, NamedSharding(mesh, P()))
        weights = np.ones((NUM_CLASSES,), np.float32) if config.class_weights else None
        self.p_train, self.p_eval = train_lib.compile_steps(
            model, tx, mesh, NUM_CLASSES, weights, float(config.label_smoothing))
        self.batch = batch
        self.params = models.count_params(
            {"params": state.params, "batch_stats": state.batch_stats})["trainable"]

    def train(self, steps: int) -> None:
        state = self.state
        for _ in range(steps):
            state, metrics = self.p_train(
                state, train_lib.shard_batch(self.batch, self.sharding))
        self.state = jax.block_until_ready(state)
        jax.block_until_ready(metrics)

    def evaluate(self, steps: int) -> None:
        variables = train_lib.model_variables(self.state)
        for _ in range(steps):
            out = self.p_eval(variables, train_lib.shard_batch(self.batch, self.sharding))
        jax.block_until_ready(out)


class TorchRunner:
    """The PyTorch twin with the config's optimizer, eager or torch.compile'd."""

    def __init__(self, design: str, config: ml_collections.ConfigDict,
                 batch: dict[str, np.ndarray], compiled: bool):
        import torch

        from benchmarks import torch_reference

        self.torch = torch
        torch.manual_seed(int(config.seed))
        kwargs = {"stem_stride": config.model_kwargs.stem_stride} \
            if "stem_stride" in config.model_kwargs else {}
        model = torch_reference.create(design, NUM_CLASSES, int(config.image_size),
                                       int(config.channels), **kwargs)
        self.params = torch_reference.count_params(model)
        self.model = model
        self.forward = torch.compile(model) if compiled else model
        lr, wd = float(config.learning_rate), float(config.weight_decay)
        if config.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(model.parameters(), lr, weight_decay=wd)
        elif config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(model.parameters(), lr, weight_decay=wd)
        else:
            self.optimizer = torch.optim.SGD(model.parameters(), lr, momentum=0.9,
                                             nesterov=True, weight_decay=wd)
        self.batch = batch
        self.smoothing = float(config.label_smoothing)
        self.weights = torch.ones(NUM_CLASSES) if config.class_weights else None

    def _inputs(self):
        torch = self.torch
        return (torch.from_numpy(self.batch["image"]).permute(0, 3, 1, 2),
                torch.from_numpy(self.batch["target"]),
                torch.from_numpy(self.batch["mask"]))

    def train(self, steps: int) -> None:
        torch = self.torch
        self.model.train()
        for _ in range(steps):
            image, target, mask = self._inputs()
            if self.smoothing:
                target = target * (1 - self.smoothing) + self.smoothing / NUM_CLASSES
            logits = self.forward(image)
            per_example = -(target * torch.log_softmax(logits, -1)).sum(-1)
            weights = mask if self.weights is None else mask * (target @ self.weights)
            loss = (per_example * weights).sum() / weights.sum().clamp_min(1e-9)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            _ = (logits.argmax(-1), loss.detach())

    def evaluate(self, steps: int) -> None:
        torch = self.torch
        self.model.eval()
        with torch.inference_mode():
            for _ in range(steps):
                image, _, _ = self._inputs()
                self.forward(image).argmax(-1)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def measure(design: str, *, config_spec: str | None = None, batch_size: int = 64,
            steps: int = 20, repeats: int = 3, warmup: int = 3,
            with_torch: bool = False, log=print) -> dict[str, Any]:
    """One design's row: every runner's median img/s and cores, parameter counts, MACs."""
    config_spec = config_spec or DESIGNS[design]
    config = configs.load(config_spec)
    if config.model != design:
        raise ValueError(f"{config_spec} trains {config.model}, not {design}")
    batch = synthetic_batch(config, batch_size)
    runners: dict[str, Any] = {"fer": FerRunner(config, batch)}
    params = {"fer": runners["fer"].params}
    if with_torch:
        for name, compiled in (("torch_eager", False), ("torch_compile", True)):
            runners[name] = TorchRunner(design, config, batch, compiled)
            params[name] = runners[name].params
            if params[name] != params["fer"]:
                raise AssertionError(f"{design}: the PyTorch twin has {params[name]:,} "
                                     f"parameters, fer's {params['fer']:,}")
    for name, runner in runners.items():  # Compilation and first-touch, not timed.
        started = time.perf_counter()
        runner.train(warmup)
        runner.evaluate(warmup)
        log(f"{design} {name}: warm-up {time.perf_counter() - started:.1f} s")
    samples: dict[str, list[dict[str, float]]] = {
        f"{name} {phase}": [] for name in runners for phase in ("train", "eval")}
    for r in range(repeats):
        for name, runner in runners.items():
            for phase in ("train", "eval"):
                step = getattr(runner, "train" if phase == "train" else "evaluate")
                sample = _timed(lambda: step(steps), steps, batch_size)
                samples[f"{name} {phase}"].append(sample)
                log(f"{design} {name} {phase} repeat {r + 1}: "
                    f"{sample['images_per_second']:.0f} img/s, "
                    f"{sample['cores_busy']:.2f} cores")
    shape = state_lib.input_shape(config)
    macs = forward_macs(config)
    row: dict[str, Any] = {
        "design": design, "config": config_spec, "input_shape": list(shape),
        "batch_size": batch_size, "optimizer": config.optimizer, "params": params,
        "macs_per_image": macs}
    for key, values in samples.items():
        name, phase = key.split()
        for metric in ("images_per_second", "cores_busy"):
            row[f"{name}_{phase}_{metric}"] = statistics.median(v[metric] for v in values)
    row["fer_train_gmacs_per_second"] = row["fer_train_images_per_second"] * macs / 1e9
    for name in runners:
        if name != "fer":
            for phase in ("train", "eval"):
                row[f"fer_over_{name}_{phase}"] = (row[f"fer_{phase}_images_per_second"]
                                                  / row[f"{name}_{phase}_images_per_second"])
    return row


def markdown(rows: Sequence[dict[str, Any]], setting: dict[str, Any]) -> str:
    """One line per design and runner; ratios against fer's row."""
    lines = [f"Batch {setting['batch_size']}, median of {setting['repeats']} interleaved "
             f"repeats of {setting['steps']} steps, synthetic in-memory batches, "
             f"{setting['cpu_count']} CPU cores; jax {setting['jax']}"
             + (f", torch {setting['torch']}" if setting.get("torch") else "") + ".", "",
             "| design | runner | params | train img/s | cores | fer / runner (train) "
             "| eval img/s | fer / runner (eval) | train GMAC/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for name in row["params"]:
            ratio = "" if name == "fer" else f"{row[f'fer_over_{name}_train']:.2f}"
            eval_ratio = "" if name == "fer" else f"{row[f'fer_over_{name}_eval']:.2f}"
            gmacs = row[f"{name}_train_images_per_second"] * row["macs_per_image"] / 1e9
            lines.append(
                f"| {row['design']} {'x'.join(map(str, row['input_shape'][:2]))} "
                f"| {name.replace('_', ' ')} | {row['params'][name]:,} "
                f"| {row[f'{name}_train_images_per_second']:.0f} "
                f"| {row[f'{name}_train_cores_busy']:.2f} | {ratio} "
                f"| {row[f'{name}_eval_images_per_second']:.0f} | {eval_ratio} "
                f"| {gmacs:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--design", action="append", choices=sorted(DESIGNS),
                        help="repeatable (default: resnet_fer_tiny)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--torch", action="store_true",
                        help="also time the PyTorch twin, eager and torch.compile")
    parser.add_argument("--out", default=None,
                        help="folder for result.md/.csv/.json (default: print only)")
    args = parser.parse_args(argv)

    with_torch = args.torch and torch_available()
    if args.torch and not with_torch:
        print(TORCH_MISSING, file=sys.stderr)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    rows = [measure(design, batch_size=args.batch, steps=args.steps,
                    repeats=args.repeats, warmup=args.warmup, with_torch=with_torch,
                    log=log)
            for design in args.design or ["resnet_fer_tiny"]]
    setting = {"batch_size": args.batch, "steps": args.steps, "repeats": args.repeats,
               "warmup": args.warmup, "data": "synthetic in-memory batches",
               "cpu_count": os.cpu_count(), "processor": platform.processor(),
               "jax": jax.__version__, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if with_torch:
        import torch
        setting.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    text = markdown(rows, setting)
    print(text)
    record = {"setting": setting, "rows": rows}
    if args.out:
        flat = [{k: v for k, v in row.items() if k != "params"}
                | {f"params_{k}": v for k, v in row["params"].items()} for row in rows]
        latency.write_outputs(args.out, "result", text, flat, record)
    return record


if __name__ == "__main__":
    main()
