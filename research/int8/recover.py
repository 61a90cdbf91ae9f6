"""python -m research.int8.recover --model fer/assets/model --out runs/int8/shipped_members

The shipped ensemble's members as training runs again, read back from its TFLite file.

The members' checkpoints were not kept, so full-integer int8 could not be tried on the
shipped networks themselves. Their weights are still in the shipped file: dynamic-range
quantization stores each convolution and dense kernel as int8 with one float scale per
output channel, and the converter folded every BatchNorm into the convolution before it.
So each member is rebuilt as a `resnet_fer_tiny` whose kernels are those int8 values
times their scales and whose BatchNorms are the identity plus the folded bias. These are
exactly the weights the shipped file computes with; only its on-the-fly activation
quantization is gone. Each member becomes a run folder (config.json, model.json, a
'best' checkpoint) that `fer.export.make_ensemble`, `fer.export` and `research.int8`
read like any trained run. The --check flag compares the rebuilt ensemble with the
shipped file on validation faces.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

import numpy as np

MEMBER = re.compile(r"members_(\d+)/")
# The TFLite ops that carry a member's weights, in graph order: a kernel (input 1) and
# a bias (input 2), named after the Flax module that made them.
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _dequantize(interpreter, detail: dict[str, Any]) -> np.ndarray:
    values = interpreter.get_tensor(detail["index"])
    if values.dtype == np.float32:
        return values
    q = detail["quantization_parameters"]
    scales, zeros = np.asarray(q["scales"]), np.asarray(q["zero_points"])
    if values.dtype != np.int8 or np.any(zeros != 0):
        raise ValueError(f"{detail['name']}: expected symmetric int8 weights, got "
                         f"{values.dtype} with zero points {zeros[:4]}")
    shape = [1] * values.ndim
    shape[q["quantized_dimension"]] = -1
    return values.astype(np.float32) * (scales.reshape(shape) if scales.size > 1 else scales)


def read_members(path: str) -> list[list[dict[str, Any]]]:
    """Per member, its weight ops in graph order: {op, name, kernel, bias, out_hw, pooled}.

    `pooled`: the pixels a SUM before the op adds up (its mean's 1/pooled is in the kernel).
    """
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interpreter = Interpreter(model_path=path)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # noqa: SLF001 (LiteRT's only op listing)
    producer = {t: op for op in ops for t in op["outputs"]}
    members: dict[int, list[dict[str, Any]]] = {}
    for op in ops:
        if op["op_name"] not in _WEIGHT_OPS:
            continue
        kernel, bias = (details[i] for i in op["inputs"][1:3])
        match = MEMBER.search(kernel["name"])
        if match is None:
            raise ValueError(f"{path}: op {op['index']} ({kernel['name']}) belongs to no "
                             "ensemble member; expected a file written by make_ensemble")
        out = details[op["outputs"][0]]
        # Global average pooling became SUM with 1/(h*w) folded into the dense kernel.
        source = producer.get(op["inputs"][0])
        pooled = (int(np.prod(details[source["inputs"][0]]["shape"][1:3]))
                  if source is not None and source["op_name"] == "SUM" else 1)
        members.setdefault(int(match.group(1)), []).append(dict(
            op=op["op_name"], name=kernel["name"], kernel=_dequantize(interpreter, kernel),
            bias=_dequantize(interpreter, bias), out_hw=tuple(out["shape"][1:3]),
            pooled=pooled))
    return [members[m] for m in sorted(members)]


def _module_paths(params: dict[str, Any]) -> list[tuple[str, ...]]:
    """resnet_fer_tiny's conv and dense modules in the order its graph runs them."""
    paths = [("stem",)]
    for stage in sorted(k for k in params if k.startswith("stage")):
        paths.append((stage, "ConvBN_0"))
        paths.append((stage, "Conv_0"))
        if "projection" in params[stage]:
            paths.append((stage, "projection"))
    return paths + [("head",)]


def member_variables(ops: list[dict[str, Any]], params: dict[str, Any],
                     batch_stats: dict[str, Any], epsilon: float):
    """(params, batch_stats) of one member, shaped like `params` (a fresh init)."""
    import jax  # noqa: PLC0415

    params = jax.tree.map(np.asarray, params)
    batch_stats = jax.tree.map(np.asarray, batch_stats)
    paths = _module_paths(params)
    if len(paths) != len(ops):
        raise ValueError(f"the file has {len(ops)} weight ops per member; "
                         f"resnet_fer_tiny has {len(paths)}")
    for path, op in zip(paths, ops):
        if path[-1] != "head" and path[0] not in op["name"]:
            raise ValueError(f"op {op['name']!r} is not {'/'.join(path)}")
        if path == ("head",):
            params["head"]["kernel"] = op["kernel"].T * op["pooled"]
            params["head"]["bias"] = op["bias"]
            continue
        # The second conv of a block and its BatchNorm are siblings; the others nest.
        conv_parent, bn_parent, bn_stats = _locate(params, batch_stats, path)
        kernel = op["kernel"]  # OHWI (CONV_2D) or 1HWO (DEPTHWISE_CONV_2D, 1 input channel)
        kernel = (np.transpose(kernel, (1, 2, 0, 3)) if op["op"] == "DEPTHWISE_CONV_2D"
                  else np.transpose(kernel, (1, 2, 3, 0)))
        if conv_parent["kernel"].shape != kernel.shape:
            raise ValueError(f"{'/'.join(path)}: kernel {kernel.shape} in the file, "
                             f"{conv_parent['kernel'].shape} in the design")
        conv_parent["kernel"] = kernel
        # Folded BatchNorm: y = conv(x) + bias, i.e. mean 0, variance 1 - eps, scale 1.
        bn_parent["scale"] = np.ones_like(bn_parent["scale"])
        bn_parent["bias"] = op["bias"].astype(np.float32)
        bn_stats["mean"] = np.zeros_like(bn_stats["mean"])
        bn_stats["var"] = np.full_like(bn_stats["var"], 1.0 - epsilon)
    return params, batch_stats


def _locate(params, batch_stats, path):
    if path[-1] == "Conv_0":  # A block's second conv: Conv_0 and BatchNorm_0 side by side.
        block, stats = params[path[0]], batch_stats[path[0]]
        return block["Conv_0"], block["BatchNorm_0"], stats["BatchNorm_0"]
    module, stats = params, batch_stats
    for key in path:
        module, stats = module[key], stats[key]
    return module["Conv_0"], module["BatchNorm_0"], stats["BatchNorm_0"]


def write_member(out: str, ops, spec, stride: int, data_dir: str) -> None:
    """A run folder holding one member: config.json, model.json, checkpoints/best/0."""
    import jax  # noqa: PLC0415

    from configs import resnet_fer  # noqa: PLC0415
    from fer.models import layers  # noqa: PLC0415
    from fer.training import checkpoint as checkpoint_lib  # noqa: PLC0415
    from fer.training import state as state_lib  # noqa: PLC0415

    config = resnet_fer.get_config(f"size=tiny,data=ferplus,stride={stride}")
    config.data_dir = data_dir
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=2)
    spec.save(out)
    model = state_lib.create_model(config, spec.num_classes)
    tx = state_lib.create_optimizer(config, steps_per_epoch=1)
    state = state_lib.create_train_state(jax.random.PRNGKey(0), model, tx,
                                         tuple(spec.input_shape))
    params, batch_stats = member_variables(ops, state.params, state.batch_stats,
                                           layers.BN_EPSILON)
    state = state.replace(params=params, batch_stats=batch_stats)
    checkpoints = checkpoint_lib.Checkpoints(out, keep=1)
    try:
        checkpoints.best.save(0, args=checkpoint_lib.save_args(
            state, {"epoch": 0, "step": 0, "recovered_from": "shipped TFLite",
                    checkpoint_lib.SLIM_KEY: True}))
        checkpoints.wait()
    finally:
        checkpoints.close()


def recover(model_dir: str, out: str, data_dir: str) -> list[str]:
    """Writes out/member_<i> for each member of the shipped file; returns their paths."""
    from fer import spec as spec_lib  # noqa: PLC0415

    spec = spec_lib.ModelSpec.load(model_dir)
    spec = spec_lib.ModelSpec.from_dict({**spec.to_dict(), "design": "resnet_fer_tiny"})
    members = read_members(os.path.join(model_dir, "model.tflite"))
    paths = []
    for i, ops in enumerate(members):
        stride = spec.input_shape[0] // ops[0]["out_hw"][0]
        path = os.path.join(out, f"member_{i}")
        write_member(path, ops, spec, stride, data_dir)
        paths.append(path)
        print(f"{path}: stem stride {stride}, {len(ops)} weight ops")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fer/assets/model",
                        help="a shipped model folder written by make_ensemble + ship")
    parser.add_argument("--out", required=True, help="a new folder for the member runs")
    parser.add_argument("--data_dir", default=os.path.join(os.environ.get("FER_DATA", ""),
                                                           "ferplus"),
                        help="FER+ (for the prior and the validation faces; "
                             "default $FER_DATA/ferplus)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"--out {args.out} exists; recover writes a new folder")
    if not os.path.exists(os.path.join(args.model, "model.tflite")):
        parser.error(f"--model {args.model} holds no model.tflite")
    recover(args.model, args.out, args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
