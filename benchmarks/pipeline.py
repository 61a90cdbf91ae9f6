"""python -m benchmarks.pipeline DIR --json OUT [--model DIR | --design NAME] [--make-samples N]

The photo pipeline per step (the seed's Table 8: read/decode, face detection,
crop+resize, gray, classify, total; mean and standard deviation in ms on one
core) and photos per second of a real scan with 1 and 2 worker processes.

Photos in each subfolder of DIR form one group (e.g. 640x480/, 4000x3000/); loose
files in DIR form a group of their own. `--make-samples N` first writes N JPEGs of
each size in SIZES made from scikit-image's astronaut photo (a real face, shipped
with the package), and N 640x480 JPEGs with three faces each (640x480x3faces/).
Without a trained model, `--design baseline` exports that
design with random weights: the timing is the same, the labels are meaningless.
Goals (issue 6): <= 25 ms per 640x480 photo and <= 50 ms per 12-MP JPEG on one core;
(issue 20) <= 10 ms per 640x480 photo with three faces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

from fer.gallery import analyze, detect, index, photos, scan

SIZES = ((640, 480), (4000, 3000))
GROUP_SIZE = (640, 480)  # The three-face group's photo size.
GOALS_MS = {"640x480": 25.0, "4000x3000": 50.0, "640x480x3faces": 10.0}
# BlazeFace's face boxes (x0, y0, x1, y1) on scikit-image's photos: the astronaut
# (512x512), and the head crops (rows, columns) that the three-face group pastes,
# with their heights as a fraction of the photo's (the cameraman's profile needs more).
ASTRONAUT_FACE = (171, 66, 277, 172)
HEADS = {"astronaut": ((0, 300), (100, 350), (70, 65, 182, 177), (0.35, 0.5)),
         "camera": ((60, 300), (150, 330), (50, 62, 124, 136), (0.5, 0.58))}


def make_samples(directory: str, count: int) -> dict[str, list[tuple[float, ...]]]:
    """`count` JPEGs per size: the astronaut at varied places, scales and backgrounds,
    and a 640x480 group with three heads each (the astronaut, mirrored, and the
    cameraman). Returns each photo's face boxes (x0, y0, x1, y1) in its pixels."""
    from skimage import data as skdata

    face = skdata.astronaut()
    rng = np.random.default_rng(0)
    truths = {}
    for w, h in SIZES:
        group = os.path.join(directory, f"{w}x{h}")
        os.makedirs(group, exist_ok=True)
        for i in range(count):
            bg = background(rng, w, h)
            side = int(min(w, h) * rng.uniform(0.5, 0.9))
            person = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA
                                if side < 512 else cv2.INTER_CUBIC)
            x, y = rng.integers(0, w - side + 1), rng.integers(0, h - side + 1)
            bg[y:y + side, x:x + side] = person
            path = os.path.join(group, f"photo_{i:03d}.jpg")
            truths[path] = [tuple(float(v) * side / 512 + o for v, o in
                                  zip(ASTRONAUT_FACE, (x, y, x, y)))]
            _save_jpeg(path, rng, bg)
    camera = np.repeat(skdata.camera()[..., None], 3, axis=2)
    sources = {"astronaut": face, "camera": camera}
    w, h = GROUP_SIZE
    group = os.path.join(directory, f"{w}x{h}x3faces")
    os.makedirs(group, exist_ok=True)
    for i in range(count):
        bg = background(rng, w, h)
        boxes = []
        for column, (name, mirror) in enumerate(
                (("astronaut", False), ("astronaut", True), ("camera", False))):
            (r0, r1), (c0, c1), box, (lo, hi) = HEADS[name]
            head = sources[name][r0:r1, c0:c1]
            if mirror:
                head = head[:, ::-1]
                box = (c1 - c0 - box[2], box[1], c1 - c0 - box[0], box[3])
            scale = rng.uniform(lo, hi) * h / head.shape[0]
            hw, hh = round(head.shape[1] * scale), round(head.shape[0] * scale)
            x = column * w // 3 + int(rng.integers(0, w // 3 - hw + 1))
            y = int(rng.integers(0, h - hh + 1))
            bg[y:y + hh, x:x + hw] = cv2.resize(head, (hw, hh), interpolation=cv2.INTER_AREA)
            boxes.append(tuple(v * scale + o for v, o in zip(box, (x, y, x, y))))
        path = os.path.join(group, f"photo_{i:03d}.jpg")
        truths[path] = boxes
        _save_jpeg(path, rng, bg)
    return truths


def background(rng, w: int, h: int) -> np.ndarray:
    """Blurred colour noise, upscaled: smooth, photo-like, no faces."""
    bg = cv2.GaussianBlur(rng.integers(40, 220, (h // 8, w // 8, 3), np.uint8), (0, 0), 2)
    return cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)


def with_noise(rng, rgb: np.ndarray) -> np.ndarray:
    """A camera's faint sensor noise (sigma 3) on an RGB uint8 image."""
    noisy = np.clip(rgb.astype(np.int16) + rng.normal(0, 3, rgb.shape), 0, 255)
    return noisy.astype(np.uint8)


def _save_jpeg(path: str, rng, rgb: np.ndarray) -> None:
    cv2.imwrite(path, cv2.cvtColor(with_noise(rng, rgb), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def export_design(design: str, out_dir: str) -> str:
    """Exports `design` with random weights (timing only) to `out_dir`."""
    import jax

    from fer import models, spec as spec_lib
    from fer.export import tflite

    spec = spec_lib.ModelSpec.for_label_set(design, "ferplus")
    module = models.create_model(design, num_classes=spec.num_classes,
                                 input_shape=spec.input_shape)
    rng = jax.random.PRNGKey(0)
    variables = module.init({"params": rng, "dropout": rng},
                            np.zeros((1, *spec.input_shape), np.float32), train=False)
    images = np.random.default_rng(0).integers(0, 256, (8, *spec.input_shape), np.uint8)
    tflite.export(module, variables, spec, out_dir, validation_images=images)
    return out_dir


def groups_of(directory: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item in scan.walk_photos(os.path.abspath(directory)):
        if isinstance(item, scan.Candidate):
            rel = os.path.relpath(os.path.dirname(item.path), directory)
            groups.setdefault("." if rel == "." else rel.split(os.sep)[0], []).append(
                item.path)
    return groups


def readable(analyzer: analyze.PhotoAnalyzer, paths: list[str]
             ) -> tuple[list[str], dict[str, str]]:
    """(photos the analyzer reads, {photo: why not}): the scan's PhotoError skips
    (an empty file, a truncated JPEG, ...) are skipped here too, not timed.
    Doubles as the warm-up."""
    good, skipped = [], {}
    for path in paths:
        try:
            analyzer.analyze(path)
        except photos.PhotoError as e:
            skipped[path] = str(e)
            continue
        good.append(path)
    return good, skipped


def per_step(analyzer: analyze.PhotoAnalyzer, paths: list[str]) -> dict:
    """Mean/std ms of each step over readable `paths`, one thread (warm after
    `readable`)."""
    rows, faces = [], 0
    for path in paths:
        cpu = time.process_time()
        result = analyzer.analyze(path)
        # CPU time is what one core spends, whatever else shares the machine.
        rows.append({**result.timings_ms, "total_cpu": (time.process_time() - cpu) * 1e3})
        faces += len(result.faces)
    steps = {}
    for step in analyze.STEPS + ("total", "total_cpu"):
        values = [r[step] for r in rows]
        steps[step] = {"mean_ms": round(statistics.fmean(values), 3),
                       "std_ms": round(statistics.pstdev(values), 3),
                       "median_ms": round(statistics.median(values), 3)}
    return {"photos": len(paths), "faces": faces, "steps": steps}


def throughput(paths: list[str], model_dir: str, detector: str, workers: int) -> dict:
    """Photos/s of `fer scan` (thumbnails and SQLite included) over `paths`.

    Rate is measured from the first committed photo to the last, so worker
    start-up (model loading) is left out; wall time includes it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "photos")
        os.makedirs(root)
        for i, path in enumerate(paths):
            os.symlink(path, os.path.join(root, f"{i:05d}{os.path.splitext(path)[1]}"))
        conn = index.connect(os.path.join(tmp, "index.sqlite"))
        stamps = []
        started = time.perf_counter()
        scan.scan(root, conn, scan.analyzer_factory(model_dir, detector),
                  "bench", workers=workers, progress=False,
                  on_photo=lambda _: stamps.append(time.perf_counter()))
        wall = time.perf_counter() - started
        conn.close()
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else None
    return {"workers": workers, "photos": len(paths), "wall_s": round(wall, 3),
            "photos_per_s": None if steady is None else round(steady, 2),
            "photos_per_s_with_startup": round(len(paths) / wall, 2)}


def markdown(record: dict) -> str:
    header = (["group", "photos", "faces", *analyze.STEPS, "total", "total median",
               "total CPU", "goal", "photos/s 1 worker", "photos/s 2 workers"])
    lines = [f"Photo pipeline ({record['detector']}, model {record['model_design']}, "
             f"{record['cpu']}, load average {record['load_average']}); ms per photo "
             f"on one core, mean ± std (wall clock; total CPU is the process's CPU time).",
             "",
             "| " + " | ".join(header) + " |",
             "| --- " * len(header) + "|"]
    for name, g in record["groups"].items():
        s = g["per_step"]["steps"]
        cells = [f"{s[k]['mean_ms']:.2f} ± {s[k]['std_ms']:.2f}"
                 for k in analyze.STEPS + ("total",)]
        rates = {t["workers"]: t["photos_per_s"] for t in g["throughput"]}
        goal = GOALS_MS.get(name)
        lines.append(f"| {name} | {g['per_step']['photos']} | {g['per_step']['faces']} | "
                     + " | ".join(cells) + f" | {s['total']['median_ms']:.2f} | "
                     f"{s['total_cpu']['mean_ms']:.2f} ± {s['total_cpu']['std_ms']:.2f} | "
                     f"{'<= %g' % goal if goal else ''} | "
                     f"{rates.get(1)} | {rates.get(2)} |")
    skipped = {**record.get("skipped", {}),  # Records from before skips were counted.
               **{p: why for g in record["groups"].values()
                  for p, why in g.get("skipped", {}).items()}}
    if skipped:
        lines += ["", f"Skipped {len(skipped)} unreadable photos, as `fer scan` does: "
                  + "; ".join(f"{os.path.basename(p)} ({why})" for p, why in skipped.items())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("dir")
    parser.add_argument("--json", required=True, help="output JSON (a .md table beside it)")
    parser.add_argument("--model", help="exported model directory")
    parser.add_argument("--design", help="export this design with random weights instead")
    parser.add_argument("--detector", default="blazeface", choices=detect.DETECTORS)
    parser.add_argument("--make-samples", type=int, default=0, metavar="N")
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    parser.add_argument("--max-photos", type=int, default=0,
                        help="at most this many photos per group (0: all)")
    args = parser.parse_args(argv)

    if args.make_samples:
        make_samples(args.dir, args.make_samples)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = (export_design(args.design, tmp) if args.design
                     else args.model or analyze.default_model_dir())
        analyzer = scan.make_analyzer(model_dir, args.detector, thumbnail_side=None)
        record = {"dir": os.path.abspath(args.dir), "detector": args.detector,
                  "model_design": analyzer.classifier.spec.design,
                  "random_weights": bool(args.design),
                  "cpu": platform.processor() or platform.machine(),
                  "python": sys.version.split()[0], "threads": 1,
                  "load_average": [round(x, 2) for x in os.getloadavg()],
                  "work_side": photos.WORK_SIDE, "groups": {},
                  # What the scan skips before reading (broken links, bad names, ...).
                  "skipped": {item[0]: item[1] for item in scan.walk_photos(
                      os.path.abspath(args.dir)) if not isinstance(item, scan.Candidate)}}
        for name, paths in sorted(groups_of(args.dir).items()):
            if args.max_photos:
                paths = paths[:args.max_photos]
            paths, skipped = readable(analyzer, paths)
            print(f"{name}: {len(paths)} photos, {len(skipped)} skipped as the scan skips "
                  "them" + "".join(f"\n  {p}: {why}" for p, why in skipped.items()),
                  file=sys.stderr)
            if not paths:
                record["skipped"].update(skipped)
                continue
            group = {"per_step": per_step(analyzer, paths), "throughput": [],
                     "skipped": skipped}
            for workers in (int(w) for w in args.workers.split(",")):
                group["throughput"].append(
                    throughput(paths, model_dir, args.detector, workers))
            record["groups"][name] = group
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=2)
    table = markdown(record)
    with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
