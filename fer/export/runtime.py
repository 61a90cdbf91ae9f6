"""Runs an exported model with LiteRT (`ai_edge_litert`), the way every reader does.

The model directory holds `model.tflite` (or `model_<variant>.tflite`) and the
`model.json` ModelSpec beside it. The classifier reads input shape, labels and
normalisation from that spec, never from its own constants, and handles int8
input/output quantization itself, so callers always hand in uint8 faces and get
float32 probabilities back whatever the variant.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from fer import spec as spec_lib

DEFAULT_FILENAME = "model.tflite"


def model_filename(variant: str | None) -> str:
    """File of a variant in an export directory: float32 (the default) is model.tflite."""
    if variant in (None, "", "float32", "default"):
        return DEFAULT_FILENAME
    return f"model_{variant}.tflite"


def resolve_model_path(model_dir_or_tflite_path: str, variant: str | None = None) -> str:
    """The .tflite file named by a directory (+ variant) or by a file path."""
    path = os.fspath(model_dir_or_tflite_path)
    if os.path.isdir(path):
        path = os.path.join(path, model_filename(variant))
    elif variant is not None:
        raise ValueError(f"variant={variant!r} needs a model directory, got file {path}")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no TFLite model at {path}: export one with "
            "`python -m fer.export --workdir <run>` (writes <run>/export/model.tflite)")
    return path


def make_interpreter(tflite_path: str, num_threads: int = 1):
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_path=tflite_path, num_threads=int(num_threads))


def quantize(x: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """float -> the tensor's dtype, with its (scale, zero point) when it is quantized."""
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if dtype in (np.float32, np.float16) or not scale:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(scale) + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]) in (np.float32, np.float16) or not scale:
        return q.astype(np.float32)
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


class LiteRTClassifier:
    """An exported expression classifier: uint8 faces in, probabilities out.

    Args:
      model_dir_or_tflite_path: an export directory (reads `model.tflite`, or
        `model_<variant>.tflite` with `variant`) or a .tflite file with the
        `model.json` spec beside it.
      num_threads: LiteRT CPU threads.
      variant: 'float32', 'float16', 'dynamic_range' or 'int8' (directories only).
    """

    def __init__(self, model_dir_or_tflite_path: str, num_threads: int = 1,
                 variant: str | None = None):
        self.path = resolve_model_path(model_dir_or_tflite_path, variant)
        self.spec = spec_lib.ModelSpec.load(os.path.dirname(os.path.abspath(self.path)))
        self.num_threads = int(num_threads)
        self._interpreter = make_interpreter(self.path, self.num_threads)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        expected = tuple(int(d) for d in self.spec.input_shape)
        model_shape = tuple(int(d) for d in self._input["shape"][1:])
        if model_shape != expected:
            raise ValueError(f"{self.path} takes inputs of shape {model_shape} but its "
                             f"model.json says {expected}")
        # A fixed batch (the exporter writes batch 1) is run one face at a time;
        # a dynamic batch dimension is resized to the whole request.
        self._dynamic_batch = int(self._input["shape_signature"][0]) == -1
        self._batch = int(self._input["shape"][0])
        self._interpreter.allocate_tensors()

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self._input["dtype"])

    def _check_faces(self, faces: np.ndarray) -> np.ndarray:
        faces = np.asarray(faces)
        h, w, c = self.spec.input_shape
        if faces.ndim == 3 and c == 1:
            faces = faces[..., None]
        if faces.ndim != 4 or faces.shape[1:] != (h, w, c):
            raise ValueError(
                f"expected faces of shape (N, {h}, {w}) or (N, {h}, {w}, {c}) resized to "
                f"the model's input (model.json), got {faces.shape}")
        return faces

    def predict_probs(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N,H,W) or (N,H,W,C) at spec.input_shape -> float32 (N, K)."""
        faces = self._check_faces(faces)
        if faces.dtype != np.uint8:
            raise TypeError(f"expected uint8 pixels, got {faces.dtype}; use "
                            "predict_normalised for float inputs in [0, 1]")
        return self.predict_normalised(spec_lib.normalise(faces))

    def predict_normalised(self, images: np.ndarray) -> np.ndarray:
        """Float32 images already normalised (fer.spec.normalise) -> (N, K)."""
        images = self._check_faces(np.asarray(images, np.float32))
        n = images.shape[0]
        out = np.empty((n, self.spec.num_classes), np.float32)
        if n == 0:
            return out
        if self._dynamic_batch:
            self._resize(n)
            out[:] = self._invoke(images)
        else:
            b = self._batch
            for start in range(0, n, b):
                chunk = images[start:start + b]
                if len(chunk) < b:  # Pad the last chunk to the model's fixed batch.
                    pad = np.zeros((b - len(chunk),) + chunk.shape[1:], np.float32)
                    out[start:] = self._invoke(np.concatenate([chunk, pad]))[:len(chunk)]
                else:
                    out[start:start + b] = self._invoke(chunk)
        return out

    def _resize(self, n: int) -> None:
        if int(self._input["shape"][0]) != n:
            self._interpreter.resize_tensor_input(
                self._input["index"], [n, *self.spec.input_shape])
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]

    def _invoke(self, images: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], quantize(images, self._input))
        self._interpreter.invoke()
        probs = dequantize(self._interpreter.get_tensor(self._output["index"]), self._output)
        if probs.shape[-1] != self.spec.num_classes:
            raise ValueError(f"{self.path} emits {probs.shape[-1]} values per face but "
                             f"model.json lists {self.spec.num_classes} labels")
        return probs

    def predict(self, faces: np.ndarray) -> list[str]:
        """Labels (as model.json spells them) of the most likely class per face."""
        return [self.spec.labels[i] for i in self.predict_probs(faces).argmax(-1)]

    def op_names(self) -> list[str]:
        """Operators in the model graph (to check for Flex or custom ops)."""
        return [d["op_name"] for d in self._interpreter._get_ops_details()]  # pylint: disable=protected-access


def predictor(classifier: LiteRTClassifier):
    """fer.evaluation.evaluate's predictor of an exported model: padding rows are not run."""
    from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415 (JAX: not on phones)

    def predict(batch):
        keep = evaluate_lib.keep_mask(batch)
        probs = np.zeros((len(keep), classifier.spec.num_classes), np.float32)
        probs[keep] = classifier.predict_normalised(np.asarray(batch["image"])[keep])
        return {"probs": probs}
    return predict


def split_probs(classifier: LiteRTClassifier, config, split: str,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(float64 probabilities, labels) over a split's faces in order (the first `limit`)."""
    from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415

    rows = evaluate_lib.collect(predictor(classifier), evaluate_lib.split_batches(
        config, split, batch_size=256, sharded=False), limit=limit)
    return rows["probs"].astype(np.float64), rows["label"]


def evaluate_export(directory: str, config, split: str, *, variant: str | None = None,
                    num_threads: int = 1) -> dict[str, Any]:
    """Scores an exported model on a dataset split (the report.json schema).

    Feeds the same input pipeline as training (float images in [0, 1]), so the
    numbers are directly comparable with the JAX model's report.
    """
    from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415

    classifier = LiteRTClassifier(directory, num_threads=num_threads, variant=variant)
    summary = evaluate_lib.evaluate(config, split, predictor(classifier),
                                    model_label_set=classifier.spec.label_set, sharded=False)
    summary.update(design=classifier.spec.design, checkpoint=classifier.path,
                   params=recorded_params(directory))
    return summary


def recorded_params(directory: str) -> int | None:
    """The JAX model's parameter count, which a .tflite file no longer states.

    From shipped.json beside a shipped model, or the report.json of the run an
    export folder sits in; None when neither is there.
    """
    directory = directory if os.path.isdir(directory) else os.path.dirname(directory) or "."
    shipped = os.path.join(directory, spec_lib.SHIPPED_RECORD)
    if os.path.exists(shipped):
        with open(shipped) as f:
            return json.load(f).get("run", {}).get("params")
    report = os.path.join(os.path.dirname(os.path.abspath(directory)), "report.json")
    if os.path.exists(report):
        with open(report) as f:
            return json.load(f).get("params")
    return None
