"""python -m benchmarks.arm.parity --emulate ROOT --faces DIR --model M.tflite [...]

Do the models give the same answers on an aarch64 CPU as on this x86-64 one?
Each model runs on the same validation faces here (LiteRT, one invoke per face)
and in the aarch64 root made by benchmarks/arm/emulated.sh (qemu-user executes
aarch64's own instructions, so LiteRT runs its ARM kernels: XNNPACK's NEON
paths, not x86's AVX ones). The table gives, per model, the top-1 agreement
between the two CPUs and the largest |delta p|. No timing is shown: an emulated
CPU's speed says nothing about a device's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

from benchmarks import latency
from benchmarks.arm import __main__ as arm
from benchmarks.arm import runner

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_faces(directory: str, limit: int) -> tuple[np.ndarray, list[str]]:
    """The first `limit` gray faces of a folder (sorted by name), as uint8 (N, H, W)."""
    import cv2

    names = sorted(n for n in os.listdir(directory) if n.lower().endswith(IMAGE_SUFFIXES))
    faces, used = [], []
    for name in names[:limit]:
        face = cv2.imread(os.path.join(directory, name), cv2.IMREAD_GRAYSCALE)
        if face is None:
            raise ValueError(f"{os.path.join(directory, name)}: not a readable image")
        if faces and face.shape != faces[0].shape:
            raise ValueError(f"{os.path.join(directory, name)}: {face.shape}, but the first "
                             f"face is {faces[0].shape}; parity needs one face size")
        faces.append(face)
        used.append(name)
    if not faces:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
    return np.stack(faces), used


def faces_for(faces: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Faces resized to a model's (H, W, C) input, as the gallery's crops would be."""
    import cv2

    h, w, c = shape
    if c != 1:
        raise ValueError(f"parity uses gray faces; a model takes {c} channels")
    if faces.shape[1:] == (h, w):
        return faces
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in faces])


def model_name(path: str) -> str:
    """Relative to the repository when inside it, else its last three path parts."""
    path = os.path.abspath(path)
    if path.startswith(REPO + os.sep):
        return os.path.relpath(path, REPO)
    return os.path.join(*path.split(os.sep)[-3:])


def compare_outputs(x86: np.ndarray, arm64: np.ndarray) -> dict[str, Any]:
    delta = np.abs(x86 - arm64)
    return {"top1_agreement": float(np.mean(x86.argmax(-1) == arm64.argmax(-1))),
            "max_abs_delta_p": float(delta.max()),
            "mean_abs_delta_p": float(delta.mean()),
            "identical_faces": int(np.sum(np.all(x86 == arm64, axis=-1)))}


def parity(transport, models: Sequence[str], faces: np.ndarray, *,
           python: str = arm.EMULATED_PYTHON) -> list[dict[str, Any]]:
    """One row per model: x86-64 (here) against the transport's CPU on the same faces."""
    rows: list[dict[str, Any]] = []
    groups: dict[tuple[int, ...], list[str]] = {}
    for model in models:
        spec = runner.load_spec(model)
        if spec is None:
            raise FileNotFoundError(f"no {runner.SPEC_FILENAME} beside {model}")
        groups.setdefault(tuple(spec["input_shape"]), []).append(model)
    for shape, group in groups.items():
        sized = faces_for(faces, shape)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "faces.npy")
            np.save(path, sized)
            started = time.perf_counter()
            report = arm.run_on_device(transport, group, [1], runs=1, warmup=0,
                                       python=python, faces=path)
            seconds = time.perf_counter() - started
        for model, entry in zip(group, report["results"]):
            here = runner.predict(model, sized)
            rows.append({"model": model_name(model), "variant": entry["variant"],
                         "design": entry["design"], "faces": int(len(sized)),
                         **compare_outputs(here, entry["probs"]),
                         "x86_64": runner.device_info()["cpu_model"],
                         "other": f"{entry['device']['machine']} "
                                  f"({entry['transport'].split()[0]})",
                         "other_runtime": entry["runtime"],
                         "emulated_wall_seconds_all_models": round(seconds, 1)})
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| model | variant | faces | top-1 agreement | max abs delta p | "
             "mean abs delta p | faces with identical outputs |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['variant']} | {r['faces']:,} | "
                     f"{r['top1_agreement']:.2%} | {r['max_abs_delta_p']:.2e} | "
                     f"{r['mean_abs_delta_p']:.2e} | {r['identical_faces']:,} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulate", required=True, metavar="ROOT",
                        help="the aarch64 root made by benchmarks/arm/emulated.sh")
    parser.add_argument("--faces", required=True,
                        help="a folder of gray face images (e.g. FER+'s FER2013Valid)")
    parser.add_argument("--num-faces", type=int, default=1000)
    parser.add_argument("--model", required=True, action="append",
                        help=".tflite with its model.json beside it (repeatable)")
    parser.add_argument("--out", default=latency.default_out_dir("arm_parity"))
    args = parser.parse_args(argv)
    try:
        faces, _ = load_faces(args.faces, args.num_faces)
        rows = parity(arm.ChrootTransport(args.emulate), args.model, faces)
    except (arm.TransportError, OSError, ValueError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    text = (f"x86-64 ({rows[0]['x86_64']}) vs aarch64 ({rows[0]['other_runtime']}, emulated "
            f"by qemu-user): the same {rows[0]['faces']:,} faces of "
            f"{os.path.basename(os.path.normpath(args.faces))}, sorted by file name.\n\n"
            + markdown(rows))
    latency.write_outputs(args.out, "arm_parity", text, rows,
                          {"faces_folder": os.path.basename(os.path.normpath(args.faces)),
                           "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
