"""jax2tf -> TFLite export in four variants, each checked against the JAX model.

Why this shape:
- The exported function returns softmax probabilities, so every reader gets
  the same numbers the JAX model's `jax.nn.softmax(logits)` gives.
- Batch is fixed at 1: the converter then folds BatchNorm into the convolution
  weights and emits a short graph of built-in ops (a polymorphic batch leaves
  SHAPE/BROADCAST_TO chains around every op). The runtime loops over faces.
- Built-in ops only (TFLITE_BUILTINS, and TFLITE_BUILTINS_INT8 for int8): a
  model with Flex ops would not run on the stock LiteRT wheel of a phone or Pi.
- The StableHLO quantizer option of the converter is not used: it silently
  writes an unquantized file.
- Every variant is run on real validation images beside the JAX model;
  `export.json` records max |delta p| and top-1 agreement, and an int8 model
  below `min_int8_agreement` is refused (Int8AgreementError) and not kept.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from absl import logging
import numpy as np

from fer import spec as spec_lib
from fer.export import runtime

VARIANTS: tuple[str, ...] = ("float32", "float16", "dynamic_range", "int8")
EXPORT_DIRNAME = "export"
EXPORT_RECORD = "export.json"
MIN_INT8_AGREEMENT = 0.99
# int8 calibration is slow beyond a few hundred images and gains nothing.
MAX_CALIBRATION_IMAGES = 500


class Int8AgreementError(RuntimeError):
    """An int8 model agreed with its JAX model on too few validation images."""

    def __init__(self, message: str, record: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.record = dict(record or {})


def _as_unit_float(images: np.ndarray | None, spec: spec_lib.ModelSpec,
                   what: str) -> np.ndarray | None:
    """uint8 or float [0, 1] images of spec.input_shape -> float32 NHWC in [0, 1]."""
    if images is None:
        return None
    images = np.asarray(images)
    h, w, c = spec.input_shape
    if images.ndim == 3 and c == 1:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (h, w, c):
        raise ValueError(f"{what} images: expected (N, {h}, {w}[, {c}]) as in "
                         f"model.json, got {images.shape}")
    if images.dtype == np.uint8:
        return spec_lib.normalise(images)
    images = images.astype(np.float32)
    if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{what} images: float pixels must be in [0, 1] "
                         f"(fer.spec.normalise), got [{images.min()}, {images.max()}]")
    return images


def probability_fn(module, variables) -> Callable[[Any], Any]:
    """x (B,H,W,C) float32 in [0,1] -> softmax probabilities float32 (B, K)."""
    import jax

    def fn(x):
        logits = module.apply(variables, x, train=False)
        return jax.nn.softmax(logits.astype("float32"), axis=-1)
    return fn


def jax_probs(module, variables, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import jax
    fn = jax.jit(probability_fn(module, variables))
    out = [np.asarray(fn(images[i:i + batch_size]))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def concrete_function(module, variables, spec: spec_lib.ModelSpec):
    """(tf.Module, concrete function) of the probability function at batch 1."""
    import tensorflow as tf
    from jax.experimental import jax2tf

    tf_fn = tf.function(
        jax2tf.convert(probability_fn(module, variables), with_gradient=False),
        autograph=False)
    holder = tf.Module()
    holder.probabilities = tf_fn  # Keeps the function alive for the converter.
    cf = tf_fn.get_concrete_function(
        tf.TensorSpec((1, *spec.input_shape), tf.float32, name="image"))
    return holder, cf


def convert(holder, cf, variant: str,
            calibration: np.ndarray | None = None) -> bytes:
    """One TFLite flatbuffer of `variant` from a jax2tf concrete function."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([cf], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("int8 export needs calibration images (real training "
                             "images: pass calibration_images=...)")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

        def representative_dataset():
            for image in calibration:
                yield [image[None].astype(np.float32)]
        converter.representative_dataset = representative_dataset
    return converter.convert()


def builtin_op_problems(op_names: Iterable[str]) -> list[str]:
    """Ops a stock LiteRT runtime lacks: Flex (TF) and custom ops."""
    return sorted({op for op in op_names
                   if op.startswith("Flex") or op.upper() == "CUSTOM"})


def compare(tflite_path: str, reference: np.ndarray, images: np.ndarray) -> dict[str, Any]:
    """max |delta p| and top-1 agreement of a .tflite against reference probabilities."""
    classifier = runtime.LiteRTClassifier(tflite_path)
    probs = classifier.predict_normalised(images)
    delta = np.abs(probs - reference)
    return {"num_validation": int(len(images)),
            "max_abs_delta_p": float(delta.max()) if delta.size else 0.0,
            "mean_abs_delta_p": float(delta.mean()) if delta.size else 0.0,
            "top1_agreement": float(np.mean(probs.argmax(-1) == reference.argmax(-1)))
            if len(images) else float("nan"),
            "ops": sorted(set(classifier.op_names()) - {"DELEGATE"})}


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("jax", "flax", "tensorflow", "ai-edge-litert"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def export(module, variables, spec: spec_lib.ModelSpec, out_dir: str,
           variants: Sequence[str] = ("float32",),
           calibration_images: np.ndarray | None = None,
           validation_images: np.ndarray | None = None, *,
           min_int8_agreement: float = MIN_INT8_AGREEMENT,
           max_calibration_images: int = MAX_CALIBRATION_IMAGES,
           seed: int = 0) -> dict[str, Any]:
    """Converts a Flax model to TFLite variants and checks each against JAX.

    Args:
      module, variables: the Flax model (`module.apply(variables, x, train=False)`
        gives logits).
      spec: its ModelSpec; written as `out_dir/model.json`.
      out_dir: the export directory (created).
      variants: any of VARIANTS. float32 is written as `model.tflite`, the
        others as `model_<variant>.tflite`; when float32 is not asked for, the
        first accepted variant is also `model.tflite`.
      calibration_images: real training images (uint8, or float in [0, 1]) of
        spec.input_shape; required for int8 (at most `max_calibration_images`
        are used, drawn with `seed`).
      validation_images: real validation images the exported models are
        compared on; without them the calibration images are used (recorded
        as `validation_source`).
      min_int8_agreement: refuse an int8 model below this top-1 agreement.

    Returns:
      The export.json record. Raises Int8AgreementError (after writing every
      other variant and export.json) when the int8 model is refused.
    """
    variants = tuple(dict.fromkeys(variants))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants {list(variants)}: expected some of {VARIANTS}")
    calibration = _as_unit_float(calibration_images, spec, "calibration")
    validation = _as_unit_float(validation_images, spec, "validation")
    source = "validation"
    if validation is None:
        if calibration is None:
            raise ValueError("export needs validation_images (or at least "
                             "calibration_images) to compare TFLite with JAX")
        logging.warning("No validation images: comparing on calibration images.")
        validation, source = calibration, "calibration"
    if calibration is not None and len(calibration) > max_calibration_images:
        pick = np.random.default_rng(seed).choice(
            len(calibration), max_calibration_images, replace=False)
        calibration = calibration[np.sort(pick)]

    os.makedirs(out_dir, exist_ok=True)
    spec.save(out_dir)
    reference = jax_probs(module, variables, validation)
    started = time.perf_counter()
    holder, cf = concrete_function(module, variables, spec)
    trace_seconds = time.perf_counter() - started

    record: dict[str, Any] = {
        "spec": spec.to_dict(), "input_batch": 1, "output": "softmax probabilities",
        "validation_source": source, "num_validation": int(len(validation)),
        "num_calibration": int(len(calibration)) if calibration is not None else 0,
        "min_int8_agreement": float(min_int8_agreement),
        "trace_seconds": round(trace_seconds, 3), "versions": _versions(),
        "variants": {}, "refused": {}}
    refusal = None
    for variant in variants:
        started = time.perf_counter()
        flatbuffer = convert(holder, cf, variant, calibration)
        seconds = time.perf_counter() - started
        # Checked from a scratch file: a refused model never becomes the model.
        fd, scratch = tempfile.mkstemp(suffix=".tflite", dir=out_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(flatbuffer)
        try:
            check = compare(scratch, reference, validation)
        except Exception:
            os.remove(scratch)
            raise
        entry = {"file": runtime.model_filename(variant), "bytes": len(flatbuffer),
                 "convert_seconds": round(seconds, 3), **check}
        problems = builtin_op_problems(check["ops"])
        if problems:
            os.remove(scratch)
            raise RuntimeError(f"{variant} model uses ops outside LiteRT's built-ins: "
                               f"{problems}")
        if variant == "int8" and not check["top1_agreement"] >= min_int8_agreement:
            os.remove(scratch)
            stale = os.path.join(out_dir, entry["file"])
            if os.path.exists(stale):  # An earlier export's int8 must not survive.
                os.remove(stale)
            entry["file"] = None
            record["refused"][variant] = entry
            refusal = (
                f"int8 model refused: top-1 agreement with the JAX model is "
                f"{check['top1_agreement']:.2%} on {len(validation)} {source} images, "
                f"below the required {min_int8_agreement:.2%} (max |delta p| "
                f"{check['max_abs_delta_p']:.3f}). Calibrate on more, or more "
                f"representative, real training images, or ship the float16 / "
                f"dynamic_range variant instead.")
            logging.error(refusal)
            continue
        os.chmod(scratch, 0o644)
        os.replace(scratch, os.path.join(out_dir, entry["file"]))
        record["variants"][variant] = entry
        logging.info("Exported %s: %d bytes, top-1 agreement %.4f, max |dp| %.2e",
                     variant, len(flatbuffer), check["top1_agreement"],
                     check["max_abs_delta_p"])

    accepted = list(record["variants"])
    if accepted and "float32" not in accepted:
        first = record["variants"][accepted[0]]["file"]
        with open(os.path.join(out_dir, first), "rb") as src, open(
                os.path.join(out_dir, runtime.DEFAULT_FILENAME), "wb") as dst:
            dst.write(src.read())
    record["default"] = accepted[0] if accepted else None
    with open(os.path.join(out_dir, EXPORT_RECORD), "w") as f:
        json.dump(record, f, indent=2)
    if refusal:
        raise Int8AgreementError(refusal, record)
    return record


def load_record(export_dir: str) -> dict[str, Any]:
    path = os.path.join(export_dir, EXPORT_RECORD)
    with open(path) as f:
        return json.load(f)


def split_images(config, split: str, limit: int, *, pipeline=None,
                 batch_size: int = 256) -> np.ndarray:
    """Up to `limit` float images in [0, 1] of one split, in the pipeline's eval order."""
    if pipeline is None:
        from fer.data import input_pipeline as pipeline
    images, count = [], 0
    for batch in pipeline.create_split(config, split, train=False,
                                       batch_size=batch_size, seed=int(config.get("seed", 0))):
        keep = np.asarray(batch.get("mask", np.ones(len(batch["image"])))) > 0
        chosen = np.asarray(batch["image"], np.float32)[keep][:limit - count]
        images.append(chosen)
        count += len(chosen)
        if count >= limit:
            break
    if not count:
        raise ValueError(f"split {split!r} of dataset {config.get('dataset')!r} gave no "
                         "images to calibrate or validate the export with")
    return np.concatenate(images)


def export_workdir(workdir: str, variants: Sequence[str] = ("float32",), *,
                   calibration: int = MAX_CALIBRATION_IMAGES,
                   num_validation: int = 1000, which: str | int = "best",
                   out_dir: str | None = None,
                   min_int8_agreement: float = MIN_INT8_AGREEMENT,
                   pipeline=None) -> str:
    """Exports a training run's checkpoint to `workdir/export/`; returns that directory.

    Calibration images come from the run's training split and comparison
    images from its validation split, read through the same input pipeline
    (and preprocessing) as training, so the int8 ranges match what the model saw.
    """
    from fer.training import checkpoint as checkpoint_lib

    module, variables, spec, config = checkpoint_lib.load_model(workdir, which)
    calibration_images = None
    if "int8" in variants:
        calibration_images = split_images(
            config, config.get("train_split", "train"), calibration, pipeline=pipeline)
    validation_images = split_images(
        config, config.get("eval_split", "validation"), num_validation, pipeline=pipeline)
    out_dir = out_dir or os.path.join(workdir, EXPORT_DIRNAME)
    export(module, variables, spec, out_dir, variants=variants,
           calibration_images=calibration_images, validation_images=validation_images,
           min_int8_agreement=min_int8_agreement, max_calibration_images=calibration,
           seed=int(config.get("seed", 0)))
    return out_dir
