"""The one-call Python API: `fer.analyze(image)` and `fer.analyze_folder(dir)`.

    import fer
    for face in fer.analyze("group.jpg"):
        print(face.box, face.label, face.confidence)

`FER` holds a loaded face detector and expression model for repeated calls (as
PyPI fer's `FER().detect_emotions` or deepface's `analyze`); the module functions
use one default `FER`, created on first use. Every call goes through
`fer.gallery.analyze.PhotoAnalyzer`, the pipeline `fer scan` and `fer predict` use,
so a photo gets the same faces here as in the gallery.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Iterable, Iterator, NamedTuple, Union

import numpy as np

from fer import labels as labels_lib
from fer.gallery import analyze as analyze_lib
from fer.gallery import photos as photos_lib
from fer.gallery import scan as scan_lib

PhotoError = photos_lib.PhotoError
# A path, an RGB / gray / RGBA uint8 array, or a PIL image.
ImageLike = Union[str, os.PathLike, np.ndarray, "PIL.Image.Image"]  # noqa: F821


@dataclasses.dataclass
class Face:
    """One face: where it is and what expression it shows.

    `box` is (x, y, w, h) in pixels of the image as given (for a file: its upright
    size, after the EXIF orientation), `box_fraction` the same as fractions of its
    width and height. `probabilities` maps every class of the model to its
    probability; `guess` is the most likely one and `confidence` its probability.
    `label` is the guess, or "uncertain" when the model ships per-class thresholds
    (abstain.json) and the guess's probability is under its class's threshold.
    """

    box: tuple[int, int, int, int]
    box_fraction: tuple[float, float, float, float]
    label: str
    confidence: float
    probabilities: dict[str, float]
    detector_score: float
    guess: str = ""

    def __post_init__(self):
        self.guess = self.guess or self.label

    @classmethod
    def from_result(cls, face: analyze_lib.Face, width: int, height: int) -> Face:
        """From the pipeline's face (box in fractions) and the image's size in pixels."""
        fx, fy, fw, fh = face.box
        x, y = min(round(fx * width), width - 1), min(round(fy * height), height - 1)
        w = max(1, min(round(fw * width), width - x))
        h = max(1, min(round(fh * height), height - y))
        box = (x, y, w, h)
        return cls(box=box, box_fraction=face.box, label=face.label,
                   confidence=face.confidence, probabilities=dict(face.probs),
                   detector_score=face.detector_score, guess=face.guess)

    def to_json(self) -> dict:
        """Plain types for json.dumps; floats rounded as `fer predict` prints them."""
        return {"box": list(self.box), "box_fraction": [round(v, 5) for v in self.box_fraction],
                "label": self.label, "guess": self.guess,
                "emoji": labels_lib.EMOJI[self.label], "confidence": round(self.confidence, 4),
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
                "detector_score": round(self.detector_score, 4)}


class PhotoFaces(NamedTuple):
    """One photo of a folder: its faces (empty: none found), or why it was skipped."""

    path: str
    faces: list[Face] | None
    error: str | None


class FER:
    """A face detector and an expression model, loaded once for many images.

    model: an exported model directory (model.tflite + model.json); default
    $FER_MODEL, else the model shipped with fer. detector: "blazeface" (default)
    or "haar". One instance serves one thread at a time (LiteRT interpreters are
    not thread-safe): give each thread its own.
    """

    def __init__(self, model: str | os.PathLike | None = None, detector: str = "blazeface"):
        model_dir = os.fspath(model) if model is not None else None
        self.analyzer = scan_lib.make_analyzer(model_dir, detector, thumbnail_side=None)

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's classes, in the order of its outputs."""
        return tuple(self.analyzer.classifier.spec.canonical_labels)

    def analyze(self, image: ImageLike) -> list[Face]:
        """Faces in `image`, most confident detection first.

        image: a path (str or os.PathLike; read as `fer scan` reads photos), a
        numpy array (H, W, 3) RGB uint8, (H, W) gray or (H, W, 4) RGBA (composited
        on white), or a PIL image. Arrays are taken as RGB: OpenCV's BGR arrays
        need `cv2.cvtColor(a, cv2.COLOR_BGR2RGB)` first. Raises PhotoError for a
        file that is not a usable photo, ValueError for an array of another shape
        or type.
        """
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            if os.path.isdir(path):
                raise IsADirectoryError(f"{path} is a folder; use analyze_folder()")
            photo = photos_lib.read_photo(path)
        else:
            array = image if isinstance(image, np.ndarray) else _pil_to_array(image)
            photo = photos_lib.from_array(array)
        return faces_of(self.analyzer.analyze_photo(photo))

    def analyze_folder(self, directory: str | os.PathLike) -> Iterator[PhotoFaces]:
        """Every photo under `directory` (sub-folders too, as `fer scan` walks it).

        A file that cannot be used is yielded with its error instead of stopping
        the walk. Photos are analysed as the iterator is consumed.
        """
        directory = os.fspath(directory)
        if not os.path.isdir(directory):  # Now, not at the first next().
            raise NotADirectoryError(f"{directory} is not a folder")
        return (PhotoFaces(path, None if result is None else faces_of(result), error)
                for path, result, error in self.results([directory]))

    def results(self, paths: Iterable[str]
                ) -> Iterator[tuple[str, analyze_lib.PhotoResult | None, str | None]]:
        """(path, pipeline result, None) or (path, None, error) for each photo.

        Folders among `paths` are walked; other paths are read as photos whatever
        their name. This is what `fer predict` prints.
        """
        for path in paths:
            if not os.path.isdir(path):
                yield self._result(scan_lib.Candidate(path, 0, 0))
                continue
            for item in scan_lib.walk_photos(path):
                if isinstance(item, scan_lib.Candidate):
                    yield self._result(item)
                else:
                    yield item[0], None, item[1]

    def _result(self, candidate: scan_lib.Candidate):
        _, result, error = scan_lib._analyze(candidate, self.analyzer)  # Scan's rules.
        return candidate.path, result, error


def faces_of(result: analyze_lib.PhotoResult) -> list[Face]:
    """The pipeline's faces with boxes in pixels of the photo."""
    return [Face.from_result(f, result.width, result.height) for f in result.faces]


CSV_COLUMNS = ("path", "face", "x", "y", "w", "h", "label", "confidence")


def csv_header(labels: Iterable[str]) -> list[str]:
    """`fer predict --csv` columns: CSV_COLUMNS, one per class probability, error."""
    return [*CSV_COLUMNS, *labels, "error"]


def csv_rows(photo: PhotoFaces, labels: Iterable[str]) -> list[list]:
    """One row per face; a photo without faces gets one row with an empty label, a
    photo that could not be read one row with its error."""
    labels = list(labels)
    if not photo.faces:
        empty = [""] * (len(CSV_COLUMNS) - 1 + len(labels))
        return [[photo.path, *empty, photo.error or ""]]
    return [[photo.path, i, *face.box, face.label, round(face.confidence, 4),
             *(round(face.probabilities[k], 4) for k in labels), ""]
            for i, face in enumerate(photo.faces)]


def _pil_to_array(image) -> np.ndarray:
    """A PIL image, turned upright by its EXIF orientation, as uint8 RGB or RGBA."""
    from PIL import Image as pil_image
    from PIL import ImageOps

    if not isinstance(image, pil_image.Image):
        raise TypeError(f"expected a path, a numpy array or a PIL image, got "
                        f"{type(image).__name__}")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise ValueError(f"PIL image mode {image.mode} (16-bit or float) is not supported: "
                         f"pass the file's path, or convert it to 8 bits first")
    image = ImageOps.exif_transpose(image)
    alpha = "A" in image.getbands() or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if alpha else "RGB"))


@functools.lru_cache(maxsize=None)
def default() -> FER:
    """The shared FER behind `fer.analyze`: the default model and BlazeFace."""
    return FER()


def analyze(image: ImageLike) -> list[Face]:
    """Faces in one image with the default model; see `FER.analyze`."""
    return default().analyze(image)


def analyze_folder(directory: str | os.PathLike) -> Iterator[PhotoFaces]:
    """(path, faces, error) for each photo under a folder; see `FER.analyze_folder`."""
    return default().analyze_folder(directory)
