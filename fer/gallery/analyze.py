"""One photo from file to labelled faces: read, detect, crop, gray, classify.

`PhotoAnalyzer` holds a face detector and an expression classifier (anything with
a `spec` and `predict_probs`, such as `fer.export.runtime.LiteRTClassifier`) and
times each step, so the scan, `fer predict` and the pipeline benchmark share one
code path. A model directory may hold abstain.json (per-class thresholds on the
top probability, fer.evaluation.abstention): a face under its class's threshold
is labelled "uncertain" and keeps its best guess and probabilities.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Protocol

import json
from typing import Mapping, Sequence

import cv2
import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib
from fer.data import preprocessing as preprocessing_lib
from fer.evaluation import abstention as abstention_lib
from fer.gallery import detect as detect_lib
from fer.gallery import photos as photos_lib

MULTIPLE = "multiple"  # Photo label when it shows several faces (fer.labels.EMOJI has it).
MODEL_ENV = "FER_MODEL"
# The seed's Table 8 steps; "gray" includes the model's preprocessing variant.
STEPS = ("read_decode", "detect", "crop_resize", "gray", "classify")


class Classifier(Protocol):
    """What the gallery needs from a model: its spec and batched probabilities."""

    spec: spec_lib.ModelSpec

    def predict_probs(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, H, W, C) at spec.input_shape -> float32 (N, K)."""


def default_model_dir(shipped: str = spec_lib.SHIPPED_MODEL_DIR) -> str:
    """The model `fer` uses without --model: $FER_MODEL, else the shipped one.

    A set $FER_MODEL that is not a model directory is an error, never a silent
    fallback to the shipped model.
    """
    if directory := os.environ.get(MODEL_ENV):
        if not os.path.exists(os.path.join(directory, spec_lib.SPEC_FILENAME)):
            raise FileNotFoundError(
                f"{MODEL_ENV}={directory} is not an exported model directory (no "
                f"{spec_lib.SPEC_FILENAME} there): point it at one written by launch.py "
                f"or fer.export, or unset {MODEL_ENV} to use the shipped model")
        return directory
    if os.path.exists(os.path.join(shipped, spec_lib.SPEC_FILENAME)):
        return shipped
    raise FileNotFoundError(
        f"no expression model found (looked in {shipped}): train one with launch.py "
        f"and pass its exported directory with --model DIR (or set {MODEL_ENV})")


def load_classifier(model_dir: str | None = None, num_threads: int = 1) -> Classifier:
    """Loads an exported model directory (model.tflite + model.json) on LiteRT."""
    from fer.export import runtime  # Deferred: only scans and predictions need it.

    model_dir = model_dir or default_model_dir()
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model directory {model_dir} does not exist; expected an "
                                f"exported model directory (model.tflite + model.json)")
    return runtime.LiteRTClassifier(model_dir, num_threads=num_threads)


def load_abstention(model_dir: str) -> dict[str, float | None] | None:
    """The thresholds of model_dir/abstain.json (label -> threshold); None without one."""
    path = os.path.join(model_dir, abstention_lib.FILENAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
        thresholds = record["thresholds"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected JSON with a 'thresholds' mapping ({e})") from None
    if not isinstance(thresholds, dict):
        raise ValueError(f"{path}: 'thresholds' must map labels to thresholds")
    return thresholds


@dataclasses.dataclass
class Face:
    """A classified face; box is (x, y, w, h) as fractions of the upright photo.

    `label` is the expression, or "uncertain" when the model abstains; `guess` is
    always the most probable expression and `confidence` its probability.
    """

    box: tuple[float, float, float, float]
    detector_score: float
    label: str
    confidence: float
    probs: dict[str, float]
    guess: str = ""

    def __post_init__(self):
        self.guess = self.guess or self.label

    def to_json(self) -> dict:
        return {"box": [round(v, 5) for v in self.box],
                "detector_score": round(self.detector_score, 4),
                "label": self.label, "guess": self.guess,
                "emoji": labels_lib.EMOJI[self.label],
                "confidence": round(self.confidence, 4),
                "probs": {k: round(v, 4) for k, v in self.probs.items()}}


@dataclasses.dataclass
class PhotoResult:
    width: int
    height: int
    faces: list[Face]
    timings_ms: dict[str, float]
    thumbnail: bytes | None = None

    @property
    def label(self) -> str | None:
        """The face's expression; MULTIPLE with several faces; None without a face."""
        if not self.faces:
            return None
        return self.faces[0].label if len(self.faces) == 1 else MULTIPLE

    @property
    def confidence(self) -> float | None:
        if not self.faces:
            return None
        return self.faces[0].confidence if len(self.faces) == 1 else float(
            np.mean([f.confidence for f in self.faces]))

    def to_json(self) -> dict:
        return {"label": self.label,
                "emoji": labels_lib.EMOJI.get(self.label) if self.label else None,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "width": self.width, "height": self.height,
                "faces": [f.to_json() for f in self.faces]}


def crop_faces(image: np.ndarray, crops: list[tuple[float, float, float]],
               size: tuple[int, int]) -> np.ndarray:
    """Square crops (cx, cy, side) of an RGB image, resized to size=(H, W): (N, H, W, 3).

    Crops reaching past the border are padded by replicating edge pixels, as the
    FER crops never show a black frame.
    """
    out = np.empty((len(crops), size[0], size[1], 3), np.uint8)
    h, w = image.shape[:2]
    for i, (cx, cy, side) in enumerate(crops):
        side = max(side, 2.0)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        s = max(2, int(round(side)))
        pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
        src = image
        if pad:
            src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        patch = src[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
        interp = cv2.INTER_AREA if s > size[0] else cv2.INTER_LINEAR
        out[i] = cv2.resize(patch, (size[1], size[0]), interpolation=interp)
    return out


def to_model_input(faces_rgb: np.ndarray, channels: int,
                   preprocessing: str = "none") -> np.ndarray:
    """(N, H, W, 3) RGB -> (N, H, W, channels) as the model's spec asks.

    Gray models get the same gray conversion and preprocessing variant that
    training used (fer.data.preprocessing), so the gallery feeds the pixels the
    model learnt from.
    """
    if channels == 3:
        if preprocessing_lib.canonical_name(preprocessing) != "none":
            raise ValueError(f"preprocessing {preprocessing!r} is defined for gray "
                             f"models only; this model takes 3 channels")
        return faces_rgb
    if channels != 1:
        raise ValueError(f"models with {channels} input channels are not supported "
                         f"(expected 1 or 3)")
    out = np.empty(faces_rgb.shape[:3] + (1,), np.uint8)
    for i, face in enumerate(faces_rgb):
        out[i, :, :, 0] = preprocessing_lib.apply(preprocessing,
                                                  preprocessing_lib.to_gray(face))
    return out


class PhotoAnalyzer:
    """Detector + classifier; `analyze(path)` -> PhotoResult (raises PhotoError)."""

    def __init__(self, detector: detect_lib.FaceDetector, classifier: Classifier, *,
                 margin: float = detect_lib.CROP_MARGIN,
                 lift: float = detect_lib.CROP_LIFT, thumbnail_side: int | None = None,
                 abstain: Mapping[str, float | None] | None = None):
        """`abstain`: per-label thresholds on the top probability (load_abstention)."""
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.lift = lift
        self.thumbnail_side = thumbnail_side
        spec = classifier.spec
        self._size = tuple(spec.input_shape[:2])
        self._channels = int(spec.input_shape[2])
        self._labels = spec.canonical_labels
        self._preprocessing = preprocessing_lib.canonical_name(spec.preprocessing)
        self._thresholds: Sequence[float | None] | None = None
        if abstain is not None:
            self._thresholds = abstention_lib.thresholds_for(
                {"thresholds": {labels_lib.canonical(k): v for k, v in abstain.items()}},
                self._labels)

    def analyze(self, path: str) -> PhotoResult:
        t0 = time.perf_counter()
        photo = photos_lib.read_photo(path)
        return self.analyze_photo(photo, read_ms=(time.perf_counter() - t0) * 1e3)

    def analyze_photo(self, photo: photos_lib.Photo, read_ms: float = 0.0) -> PhotoResult:
        timings = {"read_decode": read_ms}
        t = time.perf_counter()
        detections = self.detector.detect(photo.image)
        timings["detect"], t = _lap(t)
        crops = detect_lib.square_crop_boxes(detections, self.margin, self.lift)
        faces_rgb = crop_faces(photo.image, crops, self._size)
        timings["crop_resize"], t = _lap(t)
        faces_in = to_model_input(faces_rgb, self._channels, self._preprocessing)
        timings["gray"], t = _lap(t)
        if len(detections):
            probs = np.asarray(self.classifier.predict_probs(faces_in), np.float32)
            if probs.shape != (len(detections), len(self._labels)):
                raise ValueError(f"classifier returned {probs.shape}, expected "
                                 f"{(len(detections), len(self._labels))}")
        else:
            probs = np.zeros((0, len(self._labels)), np.float32)
        timings["classify"], t = _lap(t)
        h, w = photo.image.shape[:2]
        uncertain = (abstention_lib.abstain_mask(probs, self._thresholds)
                     if self._thresholds is not None and len(probs)
                     else np.zeros(len(probs), bool))
        faces = []
        for det, p, unsure in zip(detections, probs, uncertain):
            best = int(np.argmax(p))
            faces.append(Face(
                box=(det.x0 / w, det.y0 / h, det.width / w, det.height / h),
                detector_score=float(det.score),
                label=abstention_lib.UNCERTAIN if unsure else self._labels[best],
                confidence=float(p[best]), guess=self._labels[best],
                probs={name: float(v) for name, v in zip(self._labels, p)}))
        timings["total"] = sum(timings[s] for s in STEPS)
        thumb = (photos_lib.thumbnail_jpeg(photo.image, self.thumbnail_side)
                 if self.thumbnail_side else None)
        return PhotoResult(width=photo.width, height=photo.height, faces=faces,
                           timings_ms=timings, thumbnail=thumb)


def _lap(t: float) -> tuple[float, float]:
    now = time.perf_counter()
    return (now - t) * 1e3, now
