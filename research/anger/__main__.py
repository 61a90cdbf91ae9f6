"""python -m research.anger --data_dir D [--model fer/assets/model] --out DIR

Where FER2013's angry faces went when FER+'s ten raters relabelled them, and what
the shipped FER+ model says about each group. Anger as people pose it (lowered
brows, pressed lips) is what FER2013's single annotators called "angry"; FER+'s
raters, voting over eight emotions, moved many of those faces elsewhere, and a
model trained on the votes learns their narrower anger.

The two datasets are matched face by face through the pixels (FER+'s PNGs are
FER2013's rows; its file names are not row numbers), so no test split is read:
FER2013's Training and PublicTest against FER+'s FER2013Train and FER2013Valid.
Writes DIR/anger.{md,json}.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from fer import labels as labels_lib
from fer.data import sources

FER2013_USAGE = {"Training": "FER2013Train", "PublicTest": "FER2013Valid"}
NO_MAJORITY = "no majority"  # FER+'s reference reader drops the face.


def _key(pixels: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(pixels, np.uint8).tobytes(),
                           digest_size=16).digest()


def fer2013_faces(csv_path: str) -> Iterator[tuple[str, int, np.ndarray]]:
    """(usage, FER2013 label, 48x48 uint8 pixels) of every Training/PublicTest row."""
    from fer.data.builders import fer2013

    for _, row in fer2013.read_rows(csv_path):
        if not isinstance(row, dict) or row["Usage"].strip() not in FER2013_USAGE:
            continue
        pixels = fer2013.parse_pixels(row["pixels"])
        if isinstance(pixels, str):
            continue
        yield row["Usage"].strip(), int(row["emotion"]), pixels[..., 0]


def ferplus_votes(folder: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(48x48 uint8 pixels, raw 10-column votes) of every labelled FER+ face in folder."""
    import cv2

    from fer.data.builders import ferplus

    with open(os.path.join(folder, "label.csv"), newline="") as f:
        for row in csv.reader(f):
            parsed = ferplus.parse_row(row)
            if isinstance(parsed, str):
                continue
            name, votes = parsed
            image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_GRAYSCALE)
            if image is not None and image.shape == (48, 48):
                yield image, votes


def unique(items: Iterable[tuple[bytes, Any]]) -> dict[bytes, Any]:
    """{key: value} of the keys that occur once; a key seen twice is ambiguous, so dropped."""
    seen: dict[bytes, Any] = {}
    twice = set()
    for key, value in items:
        if key in seen:
            twice.add(key)
        seen[key] = value
    return {k: v for k, v in seen.items() if k not in twice}


def match(fer2013_rows: Sequence[tuple[str, int, np.ndarray]],
          ferplus: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]]) -> dict[str, Any]:
    """Faces in both, by pixels; a pixel pattern seen twice in either set is left out.

    Returns {'usage', 'fer2013' (label), 'ferplus' (majority label, -1: none),
    'votes' (N, 10), 'pixels' (N, 48, 48)} over the matched faces.
    """
    old = unique((_key(p), (usage, label, p)) for usage, label, p in fer2013_rows)
    new = unique((_key(p), (usage, votes)) for usage, faces in ferplus.items()
                 for p, votes in faces)
    keys = [k for k in old if k in new and FER2013_USAGE[old[k][0]] == new[k][0]]
    votes = np.stack([new[k][1] for k in keys]) if keys else np.zeros((0, 10), np.int32)
    return {"usage": np.array([old[k][0] for k in keys]),
            "fer2013": np.array([old[k][1] for k in keys], np.int64),
            "ferplus": sources.ferplus_majority(votes), "votes": votes,
            "pixels": np.stack([old[k][2] for k in keys]) if keys
            else np.zeros((0, 48, 48), np.uint8),
            "unmatched": {"fer2013": len(old) - len(keys), "ferplus": len(new) - len(keys)}}


def crosstab(fer2013_labels: np.ndarray, ferplus_labels: np.ndarray) -> dict[str, dict[str, int]]:
    """{FER2013 label: {FER+ majority label or 'no majority': faces}}."""
    columns = list(labels_lib.FERPLUS.labels) + [NO_MAJORITY]
    table = {}
    for i, name in enumerate(labels_lib.FER2013.labels):
        row = ferplus_labels[fer2013_labels == i]
        table[name] = {c: int(np.sum(row == (j if c != NO_MAJORITY else -1)))
                       for j, c in enumerate(columns)}
    return table


def predictions(model_dir: str, pixels: np.ndarray) -> np.ndarray:
    """The exported model's probabilities (N, 8) over FER+'s labels."""
    from fer.export import runtime

    classifier = runtime.LiteRTClassifier(model_dir)
    if tuple(classifier.labels) != labels_lib.FERPLUS.labels:
        raise ValueError(f"{model_dir} predicts {classifier.labels}, not FER+'s labels")
    return classifier.predict_probs(pixels[..., None])


def by_verdict(fer2013_labels: np.ndarray, ferplus_labels: np.ndarray, probs: np.ndarray,
               fer2013_label: str = "angry") -> list[dict[str, Any]]:
    """FER2013's faces of one label, grouped by FER+'s verdict: what the model predicts."""
    anger = labels_lib.FERPLUS.index("anger")
    picked = fer2013_labels == labels_lib.FER2013.index(fer2013_label)
    rows = []
    columns = list(labels_lib.FERPLUS.labels) + [NO_MAJORITY]
    for j, verdict in enumerate(columns):
        group = picked & (ferplus_labels == (j if verdict != NO_MAJORITY else -1))
        n = int(group.sum())
        if not n:
            continue
        top = probs[group].argmax(axis=1)
        counts = np.bincount(top, minlength=probs.shape[1])
        rows.append({"ferplus": verdict, "faces": n,
                     "predicted_anger": float(np.mean(top == anger)),
                     "mean_p_anger": float(probs[group, anger].mean()),
                     "predicted": {labels_lib.FERPLUS.labels[k]: int(c)
                                   for k, c in enumerate(counts) if c}})
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown(record: Mapping[str, Any]) -> str:
    labels = list(labels_lib.FERPLUS.labels) + [NO_MAJORITY]
    lines = ["## Anger: FER2013's labels against FER+'s votes", "",
             f"{record['matched']:,} faces matched by pixels (FER2013 Training + PublicTest "
             "against FER+'s FER2013Train + FER2013Valid; a pixel pattern seen twice in "
             f"either is left out: {record['unmatched']['fer2013']:,} FER2013 and "
             f"{record['unmatched']['ferplus']:,} FER+ faces). Rows: FER2013's label; "
             "columns: FER+'s majority under its reference reader (share of the row, %).",
             "", "| FER2013 | faces | " + " | ".join(labels) + " |",
             "|" + " --- |" * (len(labels) + 2)]
    for name, row in record["crosstab"].items():
        total = sum(row.values())
        lines.append(f"| {name} | {total:,} | " + " | ".join(
            _pct(row[c] / total) if total else "-" for c in labels) + " |")
    lines += ["", f"### What the model says about FER2013's angry faces "
              f"({record['model']}, {record['split']} faces)", "",
              "| FER+ verdict | faces | predicted anger % | mean p(anger) | predicted |",
              "| --- | --- | --- | --- | --- |"]
    for row in record["angry_by_verdict"]:
        predicted = ", ".join(f"{k} {v}" for k, v in sorted(
            row["predicted"].items(), key=lambda kv: -kv[1]))
        lines.append(f"| {row['ferplus']} | {row['faces']:,} | {_pct(row['predicted_anger'])} "
                     f"| {row['mean_p_anger']:.2f} | {predicted} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("FER_DATA", ""),
                        help="holds fer2013/ (fer2013.csv[.gz]) and ferplus/ (default $FER_DATA)")
    parser.add_argument("--model", default=os.path.join("fer", "assets", "model"),
                        help="an exported FER+ model directory")
    parser.add_argument("--split", default="PublicTest", choices=sorted(FER2013_USAGE),
                        help="whose angry faces the model is shown (it trained on Training)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if not args.data_dir:
        parser.error("--data_dir (or $FER_DATA) is required")
    from fer.data.builders import fer2013

    csv_path = fer2013.find_csv(os.path.join(args.data_dir, "fer2013"))
    ferplus = {folder: list(ferplus_votes(os.path.join(args.data_dir, "ferplus", folder)))
               for folder in FER2013_USAGE.values()}
    matched = match(list(fer2013_faces(csv_path)), ferplus)
    if not len(matched["fer2013"]):
        parser.error(f"no face of {csv_path} matched FER+'s under {args.data_dir}/ferplus")
    pick = matched["usage"] == args.split
    probs = predictions(args.model, matched["pixels"][pick])
    record = {"matched": int(len(matched["fer2013"])), "unmatched": matched["unmatched"],
              "crosstab": crosstab(matched["fer2013"], matched["ferplus"]),
              "model": os.path.normpath(args.model), "split": args.split,
              "angry_by_verdict": by_verdict(matched["fer2013"][pick],
                                             matched["ferplus"][pick], probs)}
    from benchmarks import latency

    text = markdown(record)
    latency.write_outputs(args.out, "anger", text, None, record)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
