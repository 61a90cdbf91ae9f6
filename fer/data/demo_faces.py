"""The embedded 'demo' dataset: synthetic cartoon faces, so a fresh checkout trains end to end.

Each 48x48 gray image is a drawn face whose brows, eyes and mouth encode one of the
FER+ 8 classes (a smile for happiness, an open round mouth and high brows for
surprise, a V of brows for anger, a one-sided smirk for contempt, ...). Position,
size, rotation, skin and background tone, lighting gradient, blur, pixel noise and the
strength of each expression vary, so a small CNN must learn shapes rather than
pixels, and weak expressions make some classes confusable, as in real data.

The set is generated from fixed seeds (identical on every machine), needs no file,
and says nothing about accuracy on real faces. It uses the `ferplus` label set and
also carries synthetic FER+ style vote counts, so `label_mode='probability'` runs too.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from fer import labels as labels_lib

LABEL_SET = labels_lib.FERPLUS
IMAGE_SIZE = 48
SPLIT_SIZES: dict[str, int] = {"train": 3200, "validation": 480, "test": 480}
# Mildly imbalanced like FER+ (neutral and happiness common, disgust and contempt rare),
# so that class weights and balanced sampling have something to do.
CLASS_SHARES = np.array([0.22, 0.20, 0.12, 0.12, 0.12, 0.06, 0.09, 0.07])
_SPLIT_SEEDS = {"train": 20131, "validation": 20132, "test": 20133}
_SCALE = 4  # Drawn at 4x and area-downsampled, for anti-aliased strokes.

# Per class (FER+ order): brow inner/outer lift (pixels, up is negative y), eye opening,
# mouth kind, mouth corner lift.
_NEUTRAL, _HAPPY, _SURPRISE, _SAD, _ANGER, _DISGUST, _FEAR, _CONTEMPT = range(8)
_BROWS = {  # (inner dy, outer dy) of the left brow; right mirrors unless contempt.
    _NEUTRAL: (0.0, 0.0), _HAPPY: (-0.5, -0.5), _SURPRISE: (-3.5, -3.0),
    _SAD: (-2.5, 1.0), _ANGER: (2.5, -1.5), _DISGUST: (1.5, 0.5),
    _FEAR: (-3.0, -1.0), _CONTEMPT: (0.0, 0.0)}
_EYE_OPENING = {_NEUTRAL: 1.5, _HAPPY: 1.1, _SURPRISE: 2.6, _SAD: 1.3, _ANGER: 0.8,
                _DISGUST: 0.7, _FEAR: 2.4, _CONTEMPT: 1.4}
# Which other class a rater would confuse each class with (for synthetic votes).
_CONFUSED_WITH = {_NEUTRAL: _SAD, _HAPPY: _NEUTRAL, _SURPRISE: _FEAR, _SAD: _NEUTRAL,
                  _ANGER: _DISGUST, _DISGUST: _ANGER, _FEAR: _SURPRISE,
                  _CONTEMPT: _NEUTRAL}


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _SCALE)), int(round(y * _SCALE))


def _draw_mouth(canvas, label: int, cx: float, cy: float, s: float, tone: int,
                rng: np.random.Generator) -> None:
    half = rng.uniform(4.5, 6.0) * s
    thick = max(1, int(round(rng.uniform(1.0, 1.6) * _SCALE)))
    lift = rng.uniform(0.75, 1.25)  # Strength of this face's expression.
    xs = np.linspace(-half, half, 17)
    if label in (_NEUTRAL, _ANGER, _HAPPY, _SAD, _CONTEMPT, _DISGUST):
        if label == _HAPPY:
            ys = -3.2 * lift * (xs / half) ** 2 + 1.0 * lift
        elif label == _SAD:
            ys = 3.0 * lift * (xs / half) ** 2 - 1.0 * lift
        elif label == _CONTEMPT:  # One corner up (a smirk).
            ys = -2.8 * lift * np.clip(xs / half, 0, None) ** 2
        elif label == _DISGUST:  # Raised, wavy upper lip.
            ys = -1.2 * lift * np.sin(np.pi * xs / half * 1.5) - 0.8 * lift
        elif label == _ANGER:  # Tight, short, thick.
            xs = xs * 0.75
            ys = np.zeros_like(xs)
            thick += _SCALE // 2
        else:
            ys = np.zeros_like(xs)
        points = np.array([_pt(cx + x, cy + y) for x, y in zip(xs, ys)], np.int32)
        cv2.polylines(canvas, [points], False, tone, thick, cv2.LINE_AA)
    elif label == _SURPRISE:  # Open round mouth.
        axes = _pt(rng.uniform(2.2, 3.2) * s * lift ** 0.5, rng.uniform(3.0, 4.2) * s * lift ** 0.5)
        cv2.ellipse(canvas, _pt(cx, cy + 0.5), axes, 0, 0, 360, tone, -1, cv2.LINE_AA)
    else:  # Fear: wide, stretched open mouth.
        axes = _pt(half * 1.05, rng.uniform(1.6, 2.4) * s * lift ** 0.5)
        cv2.ellipse(canvas, _pt(cx, cy), axes, 0, 0, 360, tone, -1, cv2.LINE_AA)


def _draw_face(label: int, rng: np.random.Generator) -> np.ndarray:
    n = IMAGE_SIZE * _SCALE
    background = rng.uniform(10, 245)
    skin = rng.uniform(110, 230)
    if abs(skin - background) < 45:  # Keep the face visible against its background.
        skin = background + 60 if background < 128 else background - 60
    dark = rng.uniform(0, max(10, skin - 100))
    canvas = np.full((n, n), background, np.float32)

    s = rng.uniform(0.92, 1.08)  # Face scale.
    cx, cy = 24 + rng.uniform(-1.5, 1.5), 25 + rng.uniform(-1.5, 1.5)
    cv2.ellipse(canvas, _pt(cx, cy), _pt(rng.uniform(14.5, 17.5) * s, rng.uniform(18.5, 21.5) * s),
                0, 0, 360, float(skin), -1, cv2.LINE_AA)

    # Eyes.
    eye_dx, eye_y = rng.uniform(5.5, 7.0) * s, cy - 4.5 * s
    opening = _EYE_OPENING[label] * rng.uniform(0.8, 1.2)
    for side in (-1, 1):
        cv2.ellipse(canvas, _pt(cx + side * eye_dx, eye_y), _pt(2.4 * s, opening * s),
                    0, 0, 360, float(dark), -1, cv2.LINE_AA)

    # Brows.
    inner_dy, outer_dy = _BROWS[label]
    strength = rng.uniform(0.75, 1.25)
    brow_y = eye_y - rng.uniform(4.0, 5.0) * s
    thick = max(1, int(round(rng.uniform(1.0, 1.5) * _SCALE)))
    for side in (-1, 1):
        i_dy, o_dy = inner_dy * strength, outer_dy * strength
        if label == _CONTEMPT and side == 1:  # One brow raised.
            i_dy, o_dy = -1.5 * strength, -2.5 * strength
        inner = _pt(cx + side * 2.2 * s, brow_y + i_dy)
        outer = _pt(cx + side * 9.0 * s, brow_y + o_dy)
        cv2.line(canvas, inner, outer, float(dark), thick, cv2.LINE_AA)

    # Nose (wrinkled for disgust).
    nose_top, nose_bottom = _pt(cx, cy - 1.5 * s), _pt(cx + 0.8, cy + 3.0 * s)
    cv2.line(canvas, nose_top, nose_bottom, float((skin + dark) / 2), _SCALE, cv2.LINE_AA)
    if label == _DISGUST:
        for side in (-1, 1):
            cv2.line(canvas, _pt(cx + side * 1.5 * s, cy - 1.0 * s),
                     _pt(cx + side * 3.5 * s, cy + 0.5 * s), float(dark), _SCALE // 2 + 1,
                     cv2.LINE_AA)

    _draw_mouth(canvas, label, cx, cy + 9.5 * s, s, float(dark), rng)

    # Head tilt, then lighting, blur and noise at the final size.
    matrix = cv2.getRotationMatrix2D(_pt(cx, cy), rng.uniform(-8, 8), 1.0)
    canvas = cv2.warpAffine(canvas, matrix, (n, n), borderMode=cv2.BORDER_REPLICATE)
    image = cv2.resize(canvas, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / IMAGE_SIZE - 0.5
    gx, gy = rng.uniform(-40, 40, 2)
    image = image * rng.uniform(0.8, 1.1) + gx * xx + gy * yy
    sigma = rng.uniform(0.0, 0.7)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0, rng.uniform(2, 8), image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _votes(label: int, rng: np.random.Generator) -> np.ndarray:
    """Ten FER+ style rater votes; the drawn class always keeps the plurality."""
    votes = np.zeros(len(labels_lib.FERPLUS_VOTE_COLUMNS), np.int32)
    dissent = min(int(rng.binomial(10, 0.2)), 4)
    votes[label] = 10 - dissent
    votes[_CONFUSED_WITH[label]] += dissent
    return votes


def _stratified_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    counts = np.floor(CLASS_SHARES / CLASS_SHARES.sum() * n).astype(int)
    counts[np.argsort(-CLASS_SHARES)[: n - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(counts)), counts)
    return rng.permutation(labels).astype(np.int64)


@functools.lru_cache(maxsize=None)
def load_split(split: str) -> dict[str, np.ndarray]:
    """{'image': uint8 (N, 48, 48, 1), 'label': int64 (N,), 'votes': int32 (N, 10)}.

    Deterministic: the same arrays on every call and machine (about a second to draw).
    """
    if split not in SPLIT_SIZES:
        raise ValueError(f"the demo dataset has splits {list(SPLIT_SIZES)}, not {split!r}")
    rng = np.random.default_rng(_SPLIT_SEEDS[split])
    labels = _stratified_labels(SPLIT_SIZES[split], rng)
    images = np.stack([_draw_face(int(c), rng) for c in labels])[..., None]
    votes = np.stack([_votes(int(c), rng) for c in labels])
    for array in (images, labels, votes):
        array.setflags(write=False)
    return {"image": images, "label": labels, "votes": votes}
