"""Times a .tflite model with LiteRT; needs only numpy and ai-edge-litert.

This file is copied as is to a Raspberry Pi or an Android phone (Termux), so it
imports nothing from fer. It reads `model.json` beside the model when present
(input shape, labels, normalisation: the same spec every fer reader uses),
feeds faces normalised the way the spec says, and writes the latency JSON
schema shared with `python -m benchmarks.latency`:

  {"schema": "fer.latency/1", "results": [one entry per (model, threads)]}

With --faces (a .npy of uint8 faces) it also saves each model's probabilities
on them, for comparing the outputs of two CPUs (python -m benchmarks.arm.parity).

Usage:
  python3 runner.py --model model_int8.tflite --threads 1,2,4 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

SCHEMA = "fer.latency/1"
SPEC_FILENAME = "model.json"
# The records that say which variant a file is (fer.export.ship, fer.export.tflite):
# the shipped model.tflite is dynamic_range although its name says nothing.
RECORD_FILENAMES = ("shipped.json", "export.json")
DEFAULT_RUNS = 100
DEFAULT_WARMUP = 10
MIN_RUNS = 50  # The comparison table reports medians of at least this many runs.


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _android_property(name: str) -> str:
    try:
        out = subprocess.run(["getprop", name], capture_output=True, text=True, timeout=5)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ARM's "CPU part" numbers (implementer 0x41) of cores found in Pis and phones.
ARM_CORES = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0d": "Cortex-A77",
    "0xd41": "Cortex-A78", "0xd44": "Cortex-X1", "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd4b": "Cortex-A78C",
    "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3", "0xd80": "Cortex-A520",
    "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}


def arm_cores(cpuinfo: str) -> str:
    """'4x Cortex-A55 + 4x Cortex-A76' from /proc/cpuinfo's per-core CPU part lines."""
    counts: dict[str, int] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "CPU part":
            part = value.strip().lower()
            name = ARM_CORES.get(part, f"part {part}")
            counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def cpu_model(cpuinfo: str | None = None) -> str:
    """x86 'model name'; on ARM the cores (from 'CPU part') and the SoC when known."""
    info = _read("/proc/cpuinfo") if cpuinfo is None else cpuinfo
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields and value.strip():
            fields[key.strip()] = value.strip()
    if "model name" in fields:
        return fields["model name"]
    cores = arm_cores(info)
    soc = (_android_property("ro.soc.model") or _android_property("ro.board.platform")
           or fields.get("Hardware", ""))
    if cores:
        return f"{cores} ({soc})" if soc else cores
    return soc or platform.processor() or platform.machine()


def device_name() -> str:
    """A Pi's board name, a phone's maker and model, else the host name."""
    board = _read("/proc/device-tree/model")
    if board:
        return board
    phone = " ".join(p for p in (_android_property("ro.product.manufacturer"),
                                 _android_property("ro.product.model")) if p)
    return phone or platform.node() or "unknown"


def device_info() -> dict:
    return {"name": device_name(), "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


def litert_version() -> str:
    try:
        from importlib import metadata
        return metadata.version("ai-edge-litert")
    except Exception:  # pylint: disable=broad-except
        return "unknown"


def load_spec(model_path: str) -> dict | None:
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), SPEC_FILENAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _record(model_path: str, name: str) -> dict:
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), name)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def variant_of(model_path: str) -> str:
    """The model's variant as its records say, else by export's file names.

    shipped.json names the variant of a shipped model.tflite; export.json maps
    each file to its variant (and names the `default` copied to model.tflite
    when float32 was not exported). Without records: model.tflite is float32,
    model_<variant>.tflite the others.
    """
    name = os.path.basename(model_path)
    shipped = _record(model_path, RECORD_FILENAMES[0])
    if name == "model.tflite" and isinstance(shipped.get("variant"), str):
        return shipped["variant"]
    exported = _record(model_path, RECORD_FILENAMES[1])
    for variant, entry in (exported.get("variants") or {}).items():
        if isinstance(entry, dict) and entry.get("file") == name:
            return variant
    if name == "model.tflite" and isinstance(exported.get("default"), str):
        return exported["default"]
    stem = os.path.splitext(name)[0]
    if stem == "model":
        return "float32"
    return stem[len("model_"):] if stem.startswith("model_") else stem


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalise(faces: np.ndarray, spec: dict | None) -> np.ndarray:
    """uint8 -> float32 as model.json says ('unit': / 255, fer.spec.normalise)."""
    method = (spec or {}).get("normalisation", "unit")
    if method != "unit":
        raise ValueError(f"model.json asks for normalisation {method!r}; this runner "
                         "knows 'unit' (uint8 / 255)")
    return faces.astype(np.float32) * np.float32(1.0 / 255.0)


def model_input(detail: dict, images: np.ndarray) -> np.ndarray:
    """Float images -> the input tensor's dtype, applying its int8 quantization."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype in (np.float32, np.float16) or not scale:
        return images.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(images / np.float32(scale) + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def model_output(detail: dict, values: np.ndarray) -> np.ndarray:
    """The output tensor as float32, undoing its int8 quantization."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]) in (np.float32, np.float16) or not scale:
        return values.astype(np.float32)
    return (values.astype(np.float32) - zero_point) * np.float32(scale)


def make_interpreter(model_path: str, threads: int):
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_path=model_path, num_threads=int(threads))


def predict(model_path: str, faces: np.ndarray, threads: int = 1) -> np.ndarray:
    """Probabilities (N, K) float32 of uint8 faces (N, H, W[, C]), one invoke per face:
    what the parity check compares between two CPUs."""
    spec = load_spec(model_path)
    interpreter = make_interpreter(model_path, threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    faces = np.asarray(faces)
    if faces.ndim == len(shape) - 1 and shape[-1] == 1:
        faces = faces[..., None]
    if faces.dtype != np.uint8 or faces.shape[1:] != shape[1:]:
        raise ValueError(f"faces: expected uint8 (N, {', '.join(map(str, shape[1:]))}) for "
                         f"{model_path}, got {faces.dtype} {faces.shape}")
    inputs = model_input(detail, normalise(faces, spec))
    probs = []
    for x in inputs:
        interpreter.set_tensor(detail["index"], x[None])
        interpreter.invoke()
        probs.append(model_output(output, interpreter.get_tensor(output["index"]))[0])
    return np.stack(probs) if probs else np.zeros((0, 0), np.float32)


def time_model(model_path: str, threads: int = 1, runs: int = DEFAULT_RUNS,
               warmup: int = DEFAULT_WARMUP, seed: int = 0) -> dict:
    """One latency entry: ms per prediction (batch 1), median/min/max over `runs`."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} must be >= 1 and warmup={warmup} >= 0")
    spec = load_spec(model_path)
    interpreter = make_interpreter(model_path, threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    shape = tuple(int(d) for d in detail["shape"])
    if spec is not None and tuple(spec["input_shape"]) != shape[1:]:
        raise ValueError(f"{model_path} takes {shape[1:]} but its model.json says "
                         f"{tuple(spec['input_shape'])}")
    faces = np.random.default_rng(seed).integers(0, 256, (warmup + runs, *shape),
                                                 dtype=np.uint8)
    inputs = model_input(detail, normalise(faces, spec))
    output = interpreter.get_output_details()[0]["index"]
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        interpreter.set_tensor(detail["index"], inputs[i])
        interpreter.invoke()
        interpreter.get_tensor(output)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1e3)
    return {
        "model": os.path.basename(model_path),
        "model_path": os.path.abspath(model_path),
        "model_bytes": os.path.getsize(model_path),
        "sha256": sha256(model_path),
        "variant": variant_of(model_path),
        "design": (spec or {}).get("design"),
        "label_set": (spec or {}).get("label_set"),
        "input_shape": list(shape[1:]),
        "input_dtype": np.dtype(detail["dtype"]).name,
        "batch": shape[0],
        "runtime": f"ai-edge-litert {litert_version()}",
        "threads": int(threads),
        "warmup": int(warmup),
        "runs": int(runs),
        "ms_median": statistics.median(samples),
        "ms_min": min(samples),
        "ms_max": max(samples),
        "ms_mean": statistics.fmean(samples),
        "device": device_info(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }


def make_report(entries: list) -> dict:
    return {"schema": SCHEMA, "results": list(entries)}


def parse_threads(text: str) -> list:
    try:
        threads = [int(t) for t in str(text).split(",") if t.strip()]
    except ValueError:
        raise SystemExit(f"--threads: expected numbers like 1,2,4, got {text!r}") from None
    if not threads or min(threads) < 1:
        raise SystemExit(f"--threads: expected positive numbers, got {text!r}")
    return threads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, action="append",
                        help=".tflite file (repeatable); model.json beside it is read")
    parser.add_argument("--threads", default="1", help="comma list, e.g. 1,2,4")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--faces", help="uint8 faces (.npy, N x H x W[ x C]): also write each "
                        "model's probabilities on them (first --threads value)")
    parser.add_argument("--probs-dir", default="probs",
                        help="with --faces: <dir>/<i>.npy for the i-th --model")
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        print(f"note: {args.runs} runs (the comparison table uses >= {MIN_RUNS})",
              file=sys.stderr)
    entries = []
    for model in args.model:
        if not os.path.exists(model):
            raise SystemExit(f"no model at {model}")
        for threads in parse_threads(args.threads):
            entry = time_model(model, threads, args.runs, args.warmup)
            entries.append(entry)
            print(f"{entry['model']} threads={threads}: median {entry['ms_median']:.3f} ms "
                  f"(min {entry['ms_min']:.3f}, max {entry['ms_max']:.3f}) on "
                  f"{entry['device']['name']} / {entry['device']['cpu_model']}", flush=True)
    if args.faces:
        faces = np.load(args.faces)
        os.makedirs(args.probs_dir, exist_ok=True)
        for i, model in enumerate(args.model):
            path = os.path.join(args.probs_dir, f"{i}.npy")
            np.save(path, predict(model, faces, parse_threads(args.threads)[0]))
            print(f"{os.path.basename(model)}: probabilities of {len(faces)} faces in {path}",
                  flush=True)
    directory = os.path.dirname(os.path.abspath(args.json))
    os.makedirs(directory, exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(make_report(entries), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
