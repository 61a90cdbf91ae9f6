"""python -m benchmarks.gallery_crops --out DIR [--model fer/assets/model] [--limit N]

Does the model see in photos what it saw in training? FER+ faces are 48x48 crops
cut around each face; the gallery finds a face with BlazeFace and crops
`margin` x the box's longer side around it. Here every validation face is
upscaled (FACE_SIDE px), placed at a seeded random spot of a 640x480 canvas of
blurred noise, and run through the gallery's own path
(fer.gallery.analyze.PhotoAnalyzer: detect, crop, resize, gray, classify) at each
margin; the direct path classifies the 48x48 face itself. A tight FER crop on
noise lacks the hair, ears and neck a detector expects, so a second setting
pastes the face with its border replicated by CONTEXT x its side on each side
(the smeared edges stand in for a head). Reported per setting and margin:
detection rate, accuracy and balanced accuracy of the best guess on the
detected faces against the direct path on the same faces, and how the crop
compares with the training crop (crop side / pasted face side: 1 frames the
face as FER+ does). An "exact crop" row cuts the pasted face's own square out of
the photo with the gallery's crop and resize: what is left of the gap there is
the resampling (48 -> 160 -> 48 px), the rest is the detector's framing. A last
row crops with the geometry fitted on training faces pasted the same ways
(fit_geometry: where FER+'s crop sits around BlazeFace's box), so the crop the
gallery ships is chosen on faces the table does not score.
Writes DIR/gallery_crops.{md,json}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from benchmarks import latency
from fer import spec as spec_lib
from fer.evaluation import metrics as metrics_lib

CANVAS = (480, 640)  # (H, W)
FACE_SIDE = 160
MARGINS = (1.0, 1.1, 1.15, 1.25, 1.5)
FIT_FACES = 2000  # Training faces per context that fit the FER crop's geometry.
GOAL_POINTS = 1.0  # Gallery path within 1 point of the direct path.
CONTEXTS = (0.0, 0.25)  # Border replicated around the pasted face, x its side.


def compose(face: np.ndarray, rng: np.random.Generator, canvas=CANVAS,
            side: int = FACE_SIDE, context: float = 0.0
            ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(RGB photo, face region (x0, y0, x1, y1)): a gray face upscaled onto blurred noise,
    its border replicated by `context` x side around it."""
    h, w = canvas
    background = cv2.GaussianBlur(rng.integers(40, 216, (h, w, 3), dtype=np.uint8), (0, 0), 6)
    noise = rng.normal(0, 6, (h, w, 3))
    photo = np.clip(background + noise, 0, 255).astype(np.uint8)
    gray = face.reshape(face.shape[0], face.shape[1])
    big = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = int(round(context * side))
    if pad:
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    full = side + 2 * pad
    x0, y0 = int(rng.integers(0, w - full + 1)), int(rng.integers(0, h - full + 1))
    photo[y0:y0 + full, x0:x0 + full] = big[..., None]
    return photo, (x0 + pad, y0 + pad, x0 + pad + side, y0 + pad + side)


def fit_geometry(faces: np.ndarray, detector, *, n: int = FIT_FACES, seed: int = 0,
                 contexts: Sequence[float] = CONTEXTS) -> dict[str, Any]:
    """Where the FER crop sits around BlazeFace's box, from (training) faces pasted as here.

    Per detected face: the pasted face's side / the box's longer side (the margin that
    frames it as FER+ does) and how far its centre lies above the box's centre, x the
    box's side (the lift). The medians are the gallery's crop geometry; fitted on
    training faces, it is scored on validation faces it never saw.
    """
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(faces))[:n]
    margin, lift = [], []
    for context in contexts:
        for i in pick:
            photo, (x0, y0, x1, y1) = compose(faces[i], rng, context=context)
            for d in detector.detect(photo):
                cx, cy = (d.x0 + d.x1) / 2, (d.y0 + d.y1) / 2
                if _inside((x0, y0, x1, y1), cx, cy):
                    side = max(d.width, d.height)
                    margin.append((x1 - x0) / side)
                    lift.append((cy - (y0 + y1) / 2) / side)
                    break
    if not margin:
        raise ValueError("the detector found none of the faces the geometry is fitted on")
    quartiles = lambda v: [float(q) for q in np.percentile(v, (25, 50, 75))]
    return {"faces": int(len(pick) * len(contexts)), "detected": len(margin),
            "margin": round(float(np.median(margin)), 2),
            "lift": round(float(np.median(lift)), 2),
            "margin_quartiles": quartiles(margin), "lift_quartiles": quartiles(lift)}


def _inside(region: tuple[int, int, int, int], x: float, y: float) -> bool:
    x0, y0, x1, y1 = region
    return x0 <= x < x1 and y0 <= y < y1


def crop_of(row: Mapping[str, Any]) -> tuple[float, float]:
    """(margin, lift) of a result row (rows written before the lift existed have none)."""
    return row["margin"], row.get("lift", 0.0)


def shipped_row(setting: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The setting's row at the gallery's crop, or None if it was not measured."""
    from fer.gallery import detect

    shipped = (detect.CROP_MARGIN, detect.CROP_LIFT)
    return next((r for r in setting["margins"] if crop_of(r) == shipped), None)


def _match(faces, region, width: int, height: int):
    """The detected face whose box centre lies in the pasted face (largest overlap)."""
    x0, y0, x1, y1 = region
    best, best_area = None, 0.0
    for face in faces:
        fx, fy, fw, fh = face.box
        bx0, by0, bx1, by1 = fx * width, fy * height, (fx + fw) * width, (fy + fh) * height
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        if not _inside(region, cx, cy):
            continue
        area = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
        if area > best_area:
            best, best_area = face, area
    return best


class _DetectOnce:
    """The detector, run once per photo: the margins crop the same boxes."""

    def __init__(self, detector):
        self.detector = detector
        self._seen: dict[int, Any] = {}

    def detect(self, image: np.ndarray):
        key = id(image)  # The photos stay alive in `composed` for the whole run.
        if key not in self._seen:
            self._seen[key] = self.detector.detect(image)
        return self._seen[key]


def _scores(labels: np.ndarray, predictions: np.ndarray, k: int) -> dict[str, float]:
    cm = metrics_lib.confusion_matrix(labels, predictions, k)
    return {"accuracy": metrics_lib.accuracy(cm),
            "balanced_accuracy": metrics_lib.balanced_accuracy(cm),
            "recall": [None if np.isnan(r) else float(r)
                       for r in metrics_lib.per_class_recall(cm)]}


def measure(faces: np.ndarray, labels: np.ndarray, classifier, detector, *,
            crops: Sequence[tuple[float, float]] = tuple((m, 0.0) for m in MARGINS),
            seed: int = 0, context: float = 0.0) -> dict[str, Any]:
    """Direct and gallery-path predictions of every face, per crop (margin, lift)."""
    from fer.gallery import analyze, photos

    k = classifier.spec.num_classes
    names = list(classifier.spec.canonical_labels)
    direct = classifier.predict_probs(faces).argmax(1)
    rng = np.random.default_rng(seed)
    composed = [compose(face, rng, context=context) for face in faces]
    detector = _DetectOnce(detector)
    exact_rgb = np.concatenate([
        analyze.crop_faces(image, [((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0)],
                           tuple(classifier.spec.input_shape[:2]))
        for image, (x0, y0, x1, y1) in composed])
    exact = classifier.predict_probs(analyze.to_model_input(
        exact_rgb, int(classifier.spec.input_shape[2]), classifier.spec.preprocessing)
    ).argmax(1)
    out = {"faces": int(len(labels)), "seed": seed, "face_side": FACE_SIDE,
           "context": context, "exact_crop": _scores(labels, exact, k),
           "canvas": list(CANVAS[::-1]), "labels": names,
           "direct": _scores(labels, direct, k), "margins": []}
    for margin, lift in crops:
        analyzer = analyze.PhotoAnalyzer(detector, classifier, margin=margin, lift=lift)
        guess = np.full(len(labels), -1)
        ratio = np.full(len(labels), np.nan)
        start = time.perf_counter()
        for i, (image, region) in enumerate(composed):
            photo = photos.Photo(image=image, width=image.shape[1], height=image.shape[0],
                                 format="synthetic")
            face = _match(analyzer.analyze_photo(photo).faces, region, image.shape[1],
                          image.shape[0])
            if face is not None:
                guess[i] = names.index(face.guess)
                _, _, fw, fh = face.box
                ratio[i] = margin * max(fw * image.shape[1], fh * image.shape[0]) / FACE_SIDE
        seconds = time.perf_counter() - start
        found = guess >= 0
        gallery = _scores(labels[found], guess[found], k)
        same = _scores(labels[found], direct[found], k)
        out["margins"].append({
            "margin": margin, "lift": lift, "detected": int(found.sum()),
            "detection_rate": float(found.mean()), "gallery": gallery,
            "direct_same_faces": same,
            "gap_points": 100 * (same["accuracy"] - gallery["accuracy"]),
            "gap_balanced_points": 100 * (same["balanced_accuracy"]
                                          - gallery["balanced_accuracy"]),
            "agreement": float((guess[found] == direct[found]).mean()),
            "exact_crop_same_faces": _scores(labels[found], exact[found], k),
            "crop_to_face": {q: float(np.nanpercentile(ratio, p)) for q, p in
                             (("p10", 10), ("median", 50), ("p90", 90))},
            "ms_per_photo": 1e3 * seconds / len(labels)})
    return out


def markdown(records: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for record in records:
        lines += _setting(record)
    return "\n".join(lines) + "\n"


def _crop_name(row: Mapping[str, Any], geometry: Mapping[str, Any] | None) -> str:
    """A crop's margin and lift, tagged: '1.25', '1.14, lift 0.05 (shipped, fitted on
    training faces)'."""
    from fer.gallery import detect

    crop = crop_of(row)
    tags = [tag for tag, other in (
        ("shipped", (detect.CROP_MARGIN, detect.CROP_LIFT)),
        ("fitted on training faces", None if geometry is None
         else (geometry["margin"], geometry["lift"]))) if crop == other]
    return (f"{crop[0]:g}" + (f", lift {crop[1]:g}" if crop[1] else "")
            + (f" ({', '.join(tags)})" if tags else ""))


def _geometry_sentence(geometry: Mapping[str, Any] | None) -> str:
    if geometry is None:
        return ""
    (m25, _, m75), (l25, _, l75) = geometry["margin_quartiles"], geometry["lift_quartiles"]
    return (f" The fitted crop: the medians over {geometry['detected']:,} training faces "
            f"found of {geometry['faces']:,} pasted the same ways, of the face's side / the "
            f"box's side (margin {geometry['margin']:g}, quartiles {m25:.2f}-{m75:.2f}) and "
            f"of its centre's height above the box's, x the box's side (lift "
            f"{geometry['lift']:g}, quartiles {l25:.2f}-{l75:.2f}).")


def _setting(record: Mapping[str, Any]) -> list[str]:
    d = record["direct"]
    context = (f", its border replicated by {record['context']:g} x its side around it"
               if record["context"] else " (the tight FER crop alone)")
    lines = [
        f"## Faces as the gallery crops them: {record['faces']:,} FER+ validation faces"
        + (", with head context" if record["context"] else ""),
        "", f"Each face upscaled to {record['face_side']} px{context}, at a random spot of a "
        f"{record['canvas'][0]}x{record['canvas'][1]} canvas of blurred noise, then "
        "detected, cropped (margin x the box's longer side), resized and classified by "
        "`PhotoAnalyzer` (best guess, no abstention). Direct path: the 48x48 face itself, "
        f"accuracy {100 * d['accuracy']:.2f}%, balanced {100 * d['balanced_accuracy']:.2f}% "
        f"on all faces; the pasted face's exact square through the gallery's crop and "
        f"resize: {100 * record['exact_crop']['accuracy']:.2f}%, balanced "
        f"{100 * record['exact_crop']['balanced_accuracy']:.2f}%. Goal: the gallery path "
        f"within {GOAL_POINTS:g} point of the direct path on the same faces."
        + _geometry_sentence(record.get("geometry")), "",
        "| margin | detected | gallery accuracy % | direct, same faces % | gap (points) | "
        "exact crop, same faces % | gallery balanced % | direct balanced % | same label as "
        "direct | crop / face side (p10, median, p90) | goal |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in record["margins"]:
        g, s, r = row["gallery"], row["direct_same_faces"], row["crop_to_face"]
        margin = _crop_name(row, record.get("geometry"))
        lines.append(
            f"| {margin} | {row['detected']} ({100 * row['detection_rate']:.1f}%) | "
            f"{100 * g['accuracy']:.2f} | {100 * s['accuracy']:.2f} | "
            f"{row['gap_points']:+.2f} | "
            f"{100 * row['exact_crop_same_faces']['accuracy']:.2f} | "
            f"{100 * g['balanced_accuracy']:.2f} | "
            f"{100 * s['balanced_accuracy']:.2f} | {100 * row['agreement']:.1f}% | "
            f"{r['p10']:.2f}, {r['median']:.2f}, {r['p90']:.2f} | "
            f"{'met' if row['gap_points'] <= GOAL_POINTS else '**missed**'} |")
    lines += ["", "Per-class recall (gallery path / direct path on the same faces), %:", "",
              "| margin | " + " | ".join(record["labels"]) + " |",
              "| --- | " + " | ".join("---" for _ in record["labels"]) + " |"]
    for row in record["margins"]:
        cells = [("n/a" if a is None else f"{100 * a:.0f}") + " / "
                 + ("n/a" if b is None else f"{100 * b:.0f}")
                 for a, b in zip(row["gallery"]["recall"], row["direct_same_faces"]["recall"])]
        lines.append(f"| {_crop_name(row, record.get('geometry'))} | " + " | ".join(cells) + " |")
    return lines + [""]


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks import crossval
    from fer.export import runtime
    from fer.gallery import detect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec_lib.SHIPPED_MODEL_DIR)
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--data_dir", default=os.path.join(os.environ.get("FER_DATA", ""),
                                                           "ferplus"),
                        help="FER+ (default: $FER_DATA/ferplus)")
    parser.add_argument("--limit", type=int, default=0, help="first N faces only (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit_faces", type=int, default=FIT_FACES,
                        help="training faces per context that fit the crop geometry")
    args = parser.parse_args(argv)
    if args.fit_faces < 1:
        parser.error(f"--fit_faces must be >= 1, got {args.fit_faces}")
    try:
        faces, labels, names = crossval.load_faces(args.data_dir)
        if args.limit:
            faces, labels = faces[:args.limit], labels[:args.limit]
        classifier = runtime.LiteRTClassifier(args.model, num_threads=1)
        if tuple(classifier.labels) != tuple(names):
            raise ValueError(f"the model's labels {classifier.labels} are not the data's {names}")
        detector = detect.BlazeFaceDetector()
        train_faces, _, _ = crossval.load_faces(args.data_dir, split="train")
        geometry = fit_geometry(train_faces, detector, n=args.fit_faces, seed=args.seed)
        crops = [(m, 0.0) for m in MARGINS] + [(geometry["margin"], geometry["lift"])]
        records = [{**measure(faces, labels, classifier, detector, crops=crops,
                              seed=args.seed, context=context), "geometry": geometry}
                   for context in CONTEXTS]
    except (OSError, ValueError) as e:
        print(f"gallery_crops: {e}", file=sys.stderr)
        return 2
    text = markdown(records)
    latency.write_outputs(args.out, "gallery_crops", text, None, {"settings": records})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
