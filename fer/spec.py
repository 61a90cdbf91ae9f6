"""What a trained model expects and emits: input shape, normalisation, labels.

One `ModelSpec` is written beside every checkpoint and every exported model
(`model.json`) and read by every consumer (evaluation, export, the gallery,
the ARM runner), so that input size, normalisation and label order are never
restated anywhere else.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from fer import labels as labels_lib

DEFAULT_IMAGE_SIZE = 48  # FER2013/FER+ native crop size.
DEFAULT_CHANNELS = 1     # Gray: expression needs no colour (seed, section 3.3.1).
NORMALISATION = "unit"   # uint8 / 255 -> float32 in [0, 1] (the seed's).
SPEC_FILENAME = "model.json"
# The model fer ships (python -m fer.export.ship writes it); used without --model.
SHIPPED_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "model")
SHIPPED_RECORD = "shipped.json"  # Beside it: where the shipped model came from, its numbers.


def normalise(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; the only normalisation fer uses."""
    return np.asarray(images, dtype=np.float32) * np.float32(1.0 / 255.0)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The contract between a trained model and everything that feeds or reads it."""

    design: str
    label_set: str
    labels: tuple[str, ...]
    input_shape: tuple[int, int, int] = (
        DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE, DEFAULT_CHANNELS)
    normalisation: str = NORMALISATION
    preprocessing: str = "none"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        expected = labels_lib.get_label_set(self.label_set).labels
        if tuple(self.labels) != expected:
            raise ValueError(
                f"labels {self.labels} do not match label set {self.label_set!r} "
                f"order {expected}")
        if self.normalisation != NORMALISATION:
            raise ValueError(f"unsupported normalisation {self.normalisation!r}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def canonical_labels(self) -> tuple[str, ...]:
        return labels_lib.get_label_set(self.label_set).canonical

    @classmethod
    def for_label_set(cls, design: str, label_set: str, **kwargs) -> "ModelSpec":
        return cls(design=design, label_set=label_set,
                   labels=labels_lib.get_label_set(label_set).labels, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        d["canonical_labels"] = list(self.canonical_labels)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in fields}
        kwargs["labels"] = tuple(kwargs["labels"])
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
        return cls(**kwargs)

    def save(self, directory: str) -> str:
        path = os.path.join(directory, SPEC_FILENAME)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
        return path

    @classmethod
    def load(cls, path: str) -> "ModelSpec":
        """Reads a spec from a `model.json` file or a directory holding one."""
        if os.path.isdir(path):
            path = os.path.join(path, SPEC_FILENAME)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"no model spec at {path}: an exported model directory holds "
                f"{SPEC_FILENAME} beside model.tflite")
        with open(path) as f:
            return cls.from_dict(json.load(f))
