"""python -m benchmarks.detect_recall --out DIR [--photos N] [--fer-data DIR]

Face detection recall and false faces by face size, with tiles off and on: real
faces (scikit-image's astronaut; FER+ validation faces when --fer-data or
$FER_DATA names the data folder) pasted at 3%, 5%, 8% and 15% of the photo's
width into 4000x3000 photos with non-face clutter (scikit-image's coffee, cat and
rocket photos on blurred noise), encoded as JPEG and read as a scan reads them;
plus the pipeline benchmark's own photos (benchmarks.pipeline.make_samples).

A face's truth box is BlazeFace's own box on the same face shown large, mapped to
where it was pasted (faces it does not find large are not used), so only the loss
from being small is measured. A face is found when a detection has IoU >= 0.3 with
it (each detection matches one face at most); every other detection is a false
face. Writes DIR/detect_recall.json and DIR/detect_recall.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np

from benchmarks import latency, pipeline
from fer.gallery import detect, photos

SIZES = (0.03, 0.05, 0.08, 0.15)  # Face box width / photo width.
PHOTO = (4000, 3000)
MATCH_IOU = 0.3
CLUTTER = ("coffee", "chelsea", "rocket")
TILE_SCORES = (0.5, 0.6, 0.65, 0.7)  # Tile score thresholds compared.


def skimage_heads() -> list[tuple[str, np.ndarray]]:
    """The astronaut's and the cameraman's heads (benchmarks.pipeline.HEADS)."""
    from skimage import data as skdata

    photos_by_name = {"astronaut": skdata.astronaut(),
                      "camera": np.repeat(skdata.camera()[..., None], 3, axis=2)}
    return [(name, np.ascontiguousarray(photos_by_name[name][r0:r1, c0:c1]))
            for name, ((r0, r1), (c0, c1), *_) in pipeline.HEADS.items()]


def fer_heads(root: str, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` FER+ validation faces that no voter called "not a face", as heads:
    upscaled 48 -> 192 px in a blurred replicated border of half a face."""
    folder = os.path.join(root, "ferplus", "FER2013Valid")
    label_csv = os.path.join(folder, "label.csv")
    if not os.path.exists(label_csv):
        raise FileNotFoundError(f"--fer-data {root}: no {label_csv}")
    with open(label_csv, newline="") as f:
        names = [row[0] for row in csv.reader(f) if row and int(row[-1]) == 0]
    rng = np.random.default_rng(seed)
    heads = []
    for name in rng.permutation(names)[:count]:
        gray = cv2.imread(os.path.join(folder, name), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise FileNotFoundError(f"cannot read FER+ face {os.path.join(folder, name)}")
        face = cv2.resize(cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB), (192, 192),
                          interpolation=cv2.INTER_CUBIC)
        sharp = cv2.copyMakeBorder(face, 96, 96, 96, 96, cv2.BORDER_REPLICATE)
        # Blurred outside the face, so the replicated border does not streak.
        mask = np.zeros(sharp.shape[:2], np.float32)
        mask[104:280, 104:280] = 1
        mask = cv2.GaussianBlur(mask, (0, 0), 6)[..., None]
        blurred = cv2.GaussianBlur(sharp, (0, 0), 24)
        heads.append((sharp * mask + blurred * (1 - mask)).astype(np.uint8))
    return heads


def reference_box(detector: detect.BlazeFaceDetector, head: np.ndarray
                  ) -> np.ndarray | None:
    """BlazeFace's best box (x0, y0, x1, y1) on `head` shown whole, or None."""
    found = detector.detect(head)
    return detect.as_boxes(found[:1])[0] if found else None


def _place(rng, taken: list, w: int, h: int, pw: int, ph: int) -> tuple[int, int]:
    """A random spot for a pw x ph patch overlapping none of `taken` (x0, y0, x1, y1)."""
    for _ in range(1000):
        x, y = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
        if all(x + pw <= a or b <= x or y + ph <= c or d <= y for a, c, b, d in taken):
            taken.append((x, y, x + pw, y + ph))
            return x, y
    raise RuntimeError("no free spot for a patch; use fewer or smaller patches")


def synthetic_photo(rng, heads: list[tuple[np.ndarray, np.ndarray]],
                    clutter: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 4000x3000 RGB photo with one head per size in SIZES, and its truth boxes."""
    w, h = PHOTO
    bg = pipeline.background(rng, w, h)
    taken: list = []
    truths = []
    for fraction, (head, ref) in sorted(zip(SIZES, heads), key=lambda p: -p[0]):
        scale = fraction * w / (ref[2] - ref[0])
        patch = cv2.resize(head, (round(head.shape[1] * scale), round(head.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
            ref = np.float32([head.shape[1] - ref[2], ref[1], head.shape[1] - ref[0], ref[3]])
        x, y = _place(rng, taken, w, h, patch.shape[1], patch.shape[0])
        bg[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        truths.insert(0, ref * scale + np.float32([x, y, x, y]))  # In SIZES order.
    for image in clutter:
        side = rng.uniform(0.1, 0.2) * w / image.shape[1]
        patch = cv2.resize(image, (round(image.shape[1] * side), round(image.shape[0] * side)),
                           interpolation=cv2.INTER_CUBIC)
        x, y = _place(rng, taken, w, h, patch.shape[1], patch.shape[0])
        bg[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
    return pipeline.with_noise(rng, bg), truths


def encode(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("could not encode a JPEG")
    return buf.tobytes()


def match(truths: list[np.ndarray], found: list[detect.Detection]) -> tuple[list[bool], int]:
    """Greedy IoU >= MATCH_IOU matching, best pairs first: (found per truth, false faces)."""
    boxes = detect.as_boxes(found)
    pairs = sorted(((float(v), t, j) for t, truth in enumerate(truths)
                    for j, v in enumerate(detect.iou(truth, boxes)) if v >= MATCH_IOU),
                   reverse=True)
    hit, used = [False] * len(truths), set()
    for _, t, j in pairs:
        if not hit[t] and j not in used:
            hit[t] = True
            used.add(j)
    return hit, len(found) - len(used)


def score(detector: detect.BlazeFaceDetector,
          cases: list[tuple[str, str, photos.Photo, list[tuple[str, np.ndarray]]]]) -> dict:
    """Recall per (set, size), false faces per photo and ms per photo for one detector."""
    recall: dict[tuple, list[bool]] = {}
    false: dict[str, list[int]] = {}
    ms: dict[str, list[float]] = {}
    for group, source, photo, truths in cases:
        t = time.process_time()  # One core's work, whatever else shares the machine.
        found = detector.detect(photo.image)
        ms.setdefault(group, []).append((time.process_time() - t) * 1e3)
        s = photo.scale
        hit, n_false = match([box * s for _, box in truths], found)
        false.setdefault(group, []).append(n_false)
        for (size, _), h in zip(truths, hit):
            recall.setdefault((group, source, size), []).append(h)
            if group.startswith("synthetic"):
                recall.setdefault((group, "all", size), []).append(h)
    return {"recall": {" | ".join(k): [sum(v), len(v)] for k, v in sorted(
                recall.items(), key=lambda kv: (kv[0][:2], len(kv[0][2]), kv[0][2]))},
            "false_faces_per_photo": {k: round(statistics.fmean(v), 3)
                                      for k, v in false.items()},
            "false_faces": {k: int(sum(v)) for k, v in false.items()},
            "ms_per_photo": {k: round(statistics.fmean(v), 2) for k, v in ms.items()}}


def build_cases(count: int, fer_root: str | None, reference: detect.BlazeFaceDetector,
                seed: int = 0) -> tuple[list, dict]:
    """The synthetic 4000x3000 photos and the pipeline samples, decoded as a scan does."""
    from skimage import data as skdata

    sources: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    heads = skimage_heads()
    if fer_root:
        heads += [("FER+", head) for head in fer_heads(fer_root, count * len(SIZES))]
    unused: dict[str, int] = {}
    for name, head in heads:
        ref = reference_box(reference, head)
        if ref is None:
            unused[name] = unused.get(name, 0) + 1
        else:
            sources.setdefault(name, []).append((head, ref))
    clutter = [getattr(skdata, name)() for name in CLUTTER]
    rng = np.random.default_rng(seed)
    names = sorted(sources)
    cases = []
    for i in range(count):
        name = names[i % len(names)]
        pool = sources[name]
        chosen = [pool[(i // len(names) * len(SIZES) + k) % len(pool)]
                  for k in range(len(SIZES))]
        rgb, truths = synthetic_photo(rng, chosen, clutter)
        photo = photos.decode_photo(encode(rgb))
        cases.append(("synthetic 4000x3000", name, photo,
                      [(f"{size:.0%}", box) for size, box in zip(SIZES, truths)]))
    with tempfile.TemporaryDirectory() as tmp:
        for path, boxes in sorted(pipeline.make_samples(tmp, max(1, count // 2)).items()):
            group = os.path.basename(os.path.dirname(path))
            photo = photos.read_photo(path)
            truths = [("as made", np.float32(b)) for b in boxes]
            cases.append((f"pipeline {group}", "astronaut", photo, truths))
    return cases, {"face_pool": {k: len(v) for k, v in sources.items()},
                   "heads_not_found_large": unused}


def markdown(record: dict) -> str:
    names = list(record["settings"])
    rows = next(iter(record["settings"].values()))["recall"]
    lines = ["Faces found (IoU >= 0.3 with the truth box) by BlazeFace, tiles off and on; "
             f"{record['photos']} synthetic 4000x3000 photos (one face at each size, clutter) "
             "and the pipeline benchmark's samples, read as a scan reads them. Face pool (heads "
             "BlazeFace finds when shown large): "
             + ", ".join(f"{k} {v}" for k, v in record["face_pool"].items())
             + "; not found even large, so left out: "
             + (", ".join(f"{k} {v}" for k, v in record["heads_not_found_large"].items())
                or "none") + ".", "",
             "| photos | face | face width / photo width | " + " | ".join(names) + " |",
             "| --- " * (3 + len(names)) + "|"]
    for key in rows:
        group, source, size = key.split(" | ")
        cells = ["{}/{}".format(*record["settings"][n]["recall"][key]) for n in names]
        lines.append(f"| {group} | {source} | {size} | " + " | ".join(cells) + " |")
    for label, field, fmt in (("false faces per photo", "false_faces_per_photo", "{:.2f}"),
                              ("detect CPU ms per photo", "ms_per_photo", "{:.1f}")):
        for group in next(iter(record["settings"].values()))[field]:
            cells = [fmt.format(record["settings"][n][field][group]) for n in names]
            lines.append(f"| {group} | {label} | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", required=True, help="output folder (.json and .md)")
    parser.add_argument("--photos", type=int, default=45,
                        help="synthetic 4000x3000 photos, the face sources taking turns")
    parser.add_argument("--fer-data", default=os.environ.get("FER_DATA"),
                        help="data folder holding ferplus/ (default: $FER_DATA)")
    args = parser.parse_args(argv)

    reference = detect.BlazeFaceDetector(tile_above=None)
    cases, info = build_cases(args.photos, args.fer_data, reference)
    record = {"photos": args.photos, "sizes": SIZES, "match_iou": MATCH_IOU,
              "tile_above": detect.TILE_ABOVE, "tile_fraction": detect.TILE_FRACTION,
              "tile_overlap": detect.TILE_OVERLAP, "tile_max_face": detect.TILE_MAX_FACE,
              "threads": 1, "load_average": [round(x, 2) for x in os.getloadavg()],
              **info, "settings": {}}
    settings = [("tiles off", {"tile_above": None})] + [
        (f"tiles on, tile score >= {t:g}"
         + (" (default)" if t == detect.DEFAULT_TILE_MIN_SCORE else ""),
         {"tile_min_score": t}) for t in TILE_SCORES]
    for name, kwargs in settings:
        print(name, file=sys.stderr)
        record["settings"][name] = score(detect.BlazeFaceDetector(**kwargs), cases)
    table = markdown(record)
    latency.write_outputs(args.out, "detect_recall", table, None, record)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
