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
- Every variant is run on real validation faces beside the JAX model;
  `export.json` records max |delta p| and top-1 agreement and, given the faces'
  labels, each variant's accuracy and balanced accuracy. A quantized variant
  (float16, dynamic_range, int8) is judged by what its users lose: refused
  (QuantizationRefused, not kept) when either accuracy falls more than
  `max_accuracy_drop` points below the float32 model's on the same faces, or
  when its top-1 agreement is under `min_agreement` (a floor below which an
  accuracy measured on ~1,000 faces could hide a broken model; docs/export.md).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np

from fer import spec as spec_lib
from fer.export import runtime

VARIANTS: tuple[str, ...] = ("float32", "float16", "dynamic_range", "int8")
EXPORT_DIRNAME = "export"
EXPORT_RECORD = "export.json"
QUANTIZED: tuple[str, ...] = ("float16", "dynamic_range", "int8")
# A quantized variant may lose at most this many points of validation accuracy
# and of balanced accuracy against the float32 model on the same faces.
MAX_ACCURACY_DROP = 1.0
# ...and must give the float32 model's top-1 answer on at least this share of
# them (each changed answer moves accuracy by 1/N; see docs/export.md).
MIN_AGREEMENT = 0.95
# int8 calibration is slow beyond a few hundred images and gains nothing.
MAX_CALIBRATION_IMAGES = 500


class QuantizationRefused(RuntimeError):
    """A quantized variant lost too much accuracy (or agreement) against float32."""

    def __init__(self, message: str, record: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.record = dict(record or {})


Int8AgreementError = QuantizationRefused  # The name callers caught before the accuracy rule.


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


def probability_fn(module, variables, *, rewrites: dict[str, int] | None = None,
                   affine_batch_norm: bool = True,
                   ensemble_logits: bool = True) -> Callable[[Any], Any]:
    """x (B,H,W,C) float32 in [0,1] -> softmax probabilities float32 (B, K).

    Without `rewrites`, Flax's own computation: the reference every exported variant
    is compared with. With `rewrites` (a dict, filled with counts when the function
    is traced), the export's form of the same function, equal to float rounding but
    a graph that quantizes far better (`_export_interceptor`):

    affine_batch_norm: every inference BatchNorm as the per-channel affine map it
      is, x * a + b with a = scale / sqrt(var + eps) and b = bias - mean * a, instead
      of Flax's (x - mean) * a + bias.
    ensemble_logits: an Ensemble (fer.models.ensemble) averages its members' logits
      instead of their log-probabilities. log_softmax(z) is z minus one number per
      face, so the mean over members and views moves by one number per face and the
      softmax does not change; the graph loses REDUCE_MAX/EXP/LOG, whose int8 scales
      TFLite ties to the logits' (the largest logit's range then clipped every
      negative logit to 0: 4.7 % agreement for a mirrored, prior-corrected
      resnet_fer_tiny, research/int8).
    """
    import jax

    def fn(x):
        if rewrites is None:
            logits = module.apply(variables, x, train=False)
        else:
            import flax.linen as nn  # noqa: PLC0415
            with nn.intercept_methods(_export_interceptor(
                    rewrites, affine_batch_norm=affine_batch_norm,
                    ensemble_logits=ensemble_logits)):
                logits = module.apply(variables, x, train=False)
        return jax.nn.softmax(logits.astype("float32"), axis=-1)
    return fn


def _export_interceptor(counts: dict[str, int], *, affine_batch_norm: bool,
                        ensemble_logits: bool):
    """A Flax method interceptor for the exported graph (probability_fn).

    BatchNorm: Flax computes (x - mean) * (scale / sqrt(var + eps)) + bias, three ops
    (SUB, MUL, ADD) once converted, each quantized per tensor in int8. Where a
    BatchNorm follows a ReLU (xcao, xcao2, baseline_bn) the converter cannot fold it
    into the convolution, and the middle tensor (x - mean) * a carries -mean * a, a
    large per-channel offset for a rarely active channel (tiny variance, a up to
    ~100): that one channel sets the int8 range of the whole tensor. Here a BatchNorm
    whose input is a Conv's or Dense's output becomes x * a + b (MUL, ADD), which the
    converter folds into that layer as before ("into_linear"); any other 4-D one a 1x1
    depthwise convolution with weights a and bias b ("as_depthwise"), one op whose
    weights int8 quantizes per channel. A BatchNorm in training mode, over another
    axis, synchronised across devices or masked is left to Flax ("unchanged").

    Ensemble: its call runs with jax.nn.log_softmax as the identity
    ("ensemble_logits"). Counts of each rewrite go to `counts`.
    """
    from unittest import mock  # noqa: PLC0415

    import flax.linen as nn  # noqa: PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    from fer.models import ensemble as ensemble_lib  # noqa: PLC0415

    linear_outputs: list[Any] = []  # Outputs of Conv/Dense layers seen while tracing.

    def count(what: str) -> None:
        counts[what] = counts.get(what, 0) + 1

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        if isinstance(module, (nn.Conv, nn.Dense)):
            out = next_fun(*args, **kwargs)
            linear_outputs.append(out)
            return out
        if ensemble_logits and isinstance(module, ensemble_lib.Ensemble):
            count("ensemble_logits")
            with mock.patch.object(jax.nn, "log_softmax", lambda z, *a, **k: z):
                return next_fun(*args, **kwargs)
        if not affine_batch_norm or not isinstance(module, nn.BatchNorm):
            return next_fun(*args, **kwargs)
        x = args[0]
        running = nn.merge_param("use_running_average", module.use_running_average,
                                 kwargs.get("use_running_average",
                                            args[1] if len(args) > 1 else None))
        if (not running or module.axis not in (-1, x.ndim - 1) or module.axis_name
                or kwargs.get("mask") is not None):
            count("unchanged")
            return next_fun(*args, **kwargs)
        variables = module.variables
        stats = variables["batch_stats"]
        a = jax.lax.rsqrt(stats["var"].astype(jnp.float32) + module.epsilon)
        if module.use_scale:
            a = a * variables["params"]["scale"].astype(jnp.float32)
        b = -stats["mean"].astype(jnp.float32) * a
        if module.use_bias:
            b = b + variables["params"]["bias"].astype(jnp.float32)
        dtype = module.dtype or jnp.result_type(x, jnp.float32)
        after_linear = any(x is out for out in linear_outputs)
        if x.ndim == 4 and not after_linear:
            channels = x.shape[-1]
            y = jax.lax.conv_general_dilated(
                x.astype(jnp.float32), a.reshape(1, 1, 1, channels), (1, 1), "VALID",
                dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)
            count("as_depthwise")
        else:
            y = x.astype(jnp.float32) * a
            count("into_linear" if after_linear else "as_multiply_add")
        return (y + b).astype(dtype)
    return interceptor


def jax_probs(module, variables, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import jax
    fn = jax.jit(probability_fn(module, variables))
    out = [np.asarray(fn(images[i:i + batch_size]))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def concrete_function(module, variables, spec: spec_lib.ModelSpec, *,
                      affine_batch_norm: bool = True, ensemble_logits: bool = True,
                      rewrites: dict[str, int] | None = None):
    """(tf.Module, concrete function) of the export's probability function at batch 1.

    affine_batch_norm, ensemble_logits: probability_fn's rewrites (both off: Flax's
    graph as it is); what was rewritten is counted into `rewrites` when given.
    """
    import tensorflow as tf
    from jax.experimental import jax2tf

    if rewrites is None:
        rewrites = {}
    fn = probability_fn(module, variables,
                        rewrites=rewrites if affine_batch_norm or ensemble_logits else None,
                        affine_batch_norm=affine_batch_norm, ensemble_logits=ensemble_logits)
    tf_fn = tf.function(jax2tf.convert(fn, with_gradient=False), autograph=False)
    holder = tf.Module()
    holder.probabilities = tf_fn  # Keeps the function alive for the converter.
    cf = tf_fn.get_concrete_function(
        tf.TensorSpec((1, *spec.input_shape), tf.float32, name="image"))
    return holder, cf


def representative_dataset(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """TFLite's calibration generator: one float32 face (1, H, W, C) per call."""
    def generate():
        for image in images:
            yield [image[None].astype(np.float32)]
    return generate


def converter(holder, cf, variant: str, calibration: np.ndarray | None = None, *,
              integer_io: bool = True):
    """A TFLiteConverter set up for `variant` (int8: full-integer, calibrated on
    `calibration`; `integer_io=False` keeps float input and output, as TFLite's
    quantization debugger wants)."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], holder)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic_range":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("int8 export needs calibration images (real training "
                             "images: pass calibration_images=...)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        conv.representative_dataset = representative_dataset(calibration)
    return conv


def convert(holder, cf, variant: str,
            calibration: np.ndarray | None = None) -> bytes:
    """One TFLite flatbuffer of `variant` from a jax2tf concrete function."""
    return converter(holder, cf, variant, calibration).convert()


def combination_nodes(flatbuffer: bytes) -> list[str]:
    """Output tensors of an ensemble's ops after its last member's (mean, shift, softmax)."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interpreter = Interpreter(model_content=flatbuffer)
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    names = [[interpreter._get_tensor_details(i, 0)["name"]  # pylint: disable=protected-access
              for i in op["outputs"]] for op in ops]
    members = [i for i, group in enumerate(names) if any("members_" in n for n in group)]
    if not members:
        raise ValueError("no ensemble member in the graph: its tensors name no members_<i>")
    return [name for group in names[members[-1] + 1:] for name in group]


def convert_int8_members(holder, cf, calibration: np.ndarray) -> bytes:
    """An ensemble in int8 with its combination in float: int8 input and output, every
    member full-integer, the mean over members and views, the prior shift and the
    softmax float (TFLite's quantization debugger, its ops denylisted).

    Full integer rounds the mean of the members' logits to the int8 steps of one
    tensor and the probabilities to steps of 1/256: on the shipped ensemble the top
    two classes then tie on about 1 % of faces and argmax takes the lower index, the
    frequent class, which cost 1.3-1.8 points of balanced accuracy (research/int8).
    """
    import tensorflow as tf  # noqa: PLC0415

    nodes = combination_nodes(convert(holder, cf, "int8", calibration))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter(holder, cf, "int8", calibration, integer_io=False),
        debug_dataset=representative_dataset(calibration[:1]))
    return with_float_nodes(debugger, nodes)


def with_float_nodes(debugger, nodes: Sequence[str]) -> bytes:
    """The debugger's int8 model with `nodes` (tensor names) left float; int8 input and
    output."""
    import tensorflow as tf  # noqa: PLC0415

    debugger.options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=list(nodes), fully_quantize=True)
    return debugger.get_nondebug_quantized_model()


def builtin_op_problems(op_names: Iterable[str]) -> list[str]:
    """Ops a stock LiteRT runtime lacks: Flex (TF) and custom ops."""
    return sorted({op for op in op_names
                   if op.startswith("Flex") or op.upper() == "CUSTOM"})


def float_ops(tflite_path: str) -> list[str]:
    """Ops of a graph that compute in float: those with a float output tensor
    (DEQUANTIZE, the conversion into float, aside). Empty for a full-integer model."""
    interpreter = runtime.make_interpreter(tflite_path)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # pylint: disable=protected-access
        if op["op_name"] in ("DELEGATE", "DEQUANTIZE"):
            continue
        if any(dtypes.get(int(i)) in (np.float32, np.float16) for i in op["outputs"]):
            found.append(op["op_name"])
    return found


def label_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and balanced accuracy of probabilities against integer labels."""
    from fer.evaluation import metrics

    cm = metrics.confusion_matrix(labels, probs.argmax(-1), probs.shape[-1])
    return {"accuracy": metrics.accuracy(cm),
            "balanced_accuracy": metrics.balanced_accuracy(cm)}


def compare(tflite_path: str, reference: np.ndarray, images: np.ndarray,
            labels: np.ndarray | None = None) -> dict[str, Any]:
    """A .tflite against reference probabilities: max |delta p|, top-1 agreement
    and, given labels, its accuracy and balanced accuracy."""
    classifier = runtime.LiteRTClassifier(tflite_path)
    probs = classifier.predict_normalised(images)
    delta = np.abs(probs - reference)
    out = {"num_validation": int(len(images)),
           "max_abs_delta_p": float(delta.max()) if delta.size else 0.0,
           "mean_abs_delta_p": float(delta.mean()) if delta.size else 0.0,
           "top1_agreement": float(np.mean(probs.argmax(-1) == reference.argmax(-1)))
           if len(images) else float("nan"),
           "ops": sorted(set(classifier.op_names()) - {"DELEGATE"})}
    if labels is not None:
        out.update(label_metrics(probs, labels))
    return out


def refusal_reasons(entry: Mapping[str, Any], reference: Mapping[str, float] | None, *,
                    max_accuracy_drop: float, min_agreement: float) -> list[str]:
    """Why a quantized variant's check fails the rules (empty: accepted)."""
    reasons = []
    for key, name in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy")):
        if reference is None or key not in entry:
            continue
        drop = round(100 * (reference[key] - entry[key]), 9)  # Exactly 1 point passes.
        if not drop <= max_accuracy_drop:
            reasons.append(f"{name} {entry[key]:.2%} vs {reference[key]:.2%} for float32 "
                           f"({drop:.2f} points lost, at most {max_accuracy_drop:g} allowed)")
    if not entry["top1_agreement"] >= min_agreement:
        reasons.append(f"top-1 agreement {entry['top1_agreement']:.2%} with float32, "
                       f"below the floor of {min_agreement:.2%}")
    return reasons


def _versions() -> dict[str, str]:
    import importlib.metadata as md
    out = {"python": platform.python_version()}
    for name in ("jax", "flax", "tensorflow", "ai-edge-litert"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _as_labels(labels: np.ndarray | None, count: int, num_classes: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"validation labels: expected {count} integers (one per "
                         f"validation image), got {labels.dtype} {labels.shape}")
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"validation labels: expected 0..{num_classes - 1} as in "
                         f"model.json, got {labels.min()}..{labels.max()}")
    return labels


def export(module, variables, spec: spec_lib.ModelSpec, out_dir: str,
           variants: Sequence[str] = ("float32",),
           calibration_images: np.ndarray | None = None,
           validation_images: np.ndarray | None = None,
           validation_labels: np.ndarray | None = None, *,
           max_accuracy_drop: float = MAX_ACCURACY_DROP,
           min_agreement: float = MIN_AGREEMENT,
           max_calibration_images: int = MAX_CALIBRATION_IMAGES,
           affine_batch_norm: bool = True, ensemble_logits: bool = True,
           int8_combination: str = "float", seed: int = 0) -> dict[str, Any]:
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
      validation_labels: their integer labels (spec.labels order). With them a
        quantized variant is refused when its accuracy or balanced accuracy is
        more than `max_accuracy_drop` points below the float32 (JAX) model's on
        the same faces; without them only the agreement floor is checked.
      min_agreement: refuse a quantized variant below this top-1 agreement.
      affine_batch_norm: convert every inference BatchNorm as one affine map
        per channel (probability_fn; recorded under `batch_norm`). False keeps
        Flax's (x - mean) * a + bias, which int8 quantizes badly after a ReLU.
      ensemble_logits: an Ensemble averages its members' logits, not their
        log-probabilities: the same probabilities, no REDUCE_MAX/EXP/LOG in the
        graph (probability_fn; recorded as `ensemble_combination`).
      int8_combination: 'float' (an ensemble's int8 file keeps the combination of its
        int8 members in float: convert_int8_members) or 'int8' (full integer).

    Returns:
      The export.json record. Raises QuantizationRefused (after writing every
      other variant and export.json) when a quantized variant is refused.
    """
    variants = tuple(dict.fromkeys(variants))
    if int8_combination not in ("float", "int8"):
        raise ValueError(f"int8_combination={int8_combination!r}; expected 'float' or 'int8'")
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
        if validation_labels is not None:
            raise ValueError("validation_labels were given without validation_images")
        logging.warning("No validation images: comparing on calibration images.")
        validation, source = calibration, "calibration"
    labels = _as_labels(validation_labels, len(validation), len(spec.labels))
    if calibration is not None and len(calibration) > max_calibration_images:
        pick = np.random.default_rng(seed).choice(
            len(calibration), max_calibration_images, replace=False)
        calibration = calibration[np.sort(pick)]

    os.makedirs(out_dir, exist_ok=True)
    spec.save(out_dir)
    reference = jax_probs(module, variables, validation)
    reference_metrics = None if labels is None else label_metrics(reference, labels)
    started = time.perf_counter()
    rewrites: dict[str, int] = {}
    holder, cf = concrete_function(module, variables, spec,
                                   affine_batch_norm=affine_batch_norm,
                                   ensemble_logits=ensemble_logits, rewrites=rewrites)
    ensembles = rewrites.pop("ensemble_logits", 0)
    trace_seconds = time.perf_counter() - started

    record: dict[str, Any] = {
        "spec": spec.to_dict(), "input_batch": 1, "output": "softmax probabilities",
        "validation_source": source, "num_validation": int(len(validation)),
        "num_calibration": int(len(calibration)) if calibration is not None else 0,
        "float32_reference": reference_metrics,
        "acceptance": {"quantized": list(QUANTIZED), "labelled": labels is not None,
                       "max_accuracy_drop_points": float(max_accuracy_drop),
                       "min_agreement": float(min_agreement)},
        "batch_norm": ({"affine": True, **rewrites} if affine_batch_norm
                       else {"affine": False}),
        "trace_seconds": round(trace_seconds, 3), "versions": _versions(),
        "variants": {}, "refused": {}}
    if ensembles or type(module).__name__ == "Ensemble":
        record["ensemble_combination"] = ("mean of logits" if ensembles
                                          else "mean of log-probabilities")
    refusals = []
    for variant in variants:
        started = time.perf_counter()
        if variant == "int8" and ensembles and int8_combination == "float":
            flatbuffer = convert_int8_members(holder, cf, calibration)
        else:
            flatbuffer = convert(holder, cf, variant, calibration)
        seconds = time.perf_counter() - started
        # Checked from a scratch file: a refused model never becomes the model.
        fd, scratch = tempfile.mkstemp(suffix=".tflite", dir=out_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(flatbuffer)
        try:
            check = compare(scratch, reference, validation, labels)
        except Exception:
            os.remove(scratch)
            raise
        entry = {"file": runtime.model_filename(variant), "bytes": len(flatbuffer),
                 "convert_seconds": round(seconds, 3), **check}
        if variant == "int8":  # Full integer is its promise: checked, not assumed.
            entry["float_ops"] = float_ops(scratch)
            if ensembles:
                entry["combination"] = int8_combination
        if reference_metrics is not None:
            entry.update({f"{k}_drop_points": 100 * (reference_metrics[k] - check[k])
                          for k in reference_metrics})
        problems = builtin_op_problems(check["ops"])
        if problems:
            os.remove(scratch)
            raise RuntimeError(f"{variant} model uses ops outside LiteRT's built-ins: "
                               f"{problems}")
        reasons = (refusal_reasons(check, reference_metrics, min_agreement=min_agreement,
                                   max_accuracy_drop=max_accuracy_drop)
                   if variant in QUANTIZED else [])
        if reasons:
            os.remove(scratch)
            stale = os.path.join(out_dir, entry["file"])
            if os.path.exists(stale):  # An earlier export's file must not survive.
                os.remove(stale)
            entry["file"] = None
            record["refused"][variant] = entry
            refusals.append(
                f"{variant} model refused on {len(validation)} {source} faces: "
                f"{'; '.join(reasons)} (top-1 agreement {check['top1_agreement']:.2%}, "
                f"max |delta p| {check['max_abs_delta_p']:.3f}).")
            logging.error(refusals[-1])
            continue
        os.chmod(scratch, 0o644)
        os.replace(scratch, os.path.join(out_dir, entry["file"]))
        record["variants"][variant] = entry
        logging.info("Exported %s: %d bytes, top-1 agreement %.4f, max |dp| %.2e%s",
                     variant, len(flatbuffer), check["top1_agreement"],
                     check["max_abs_delta_p"],
                     f", accuracy {check['accuracy']:.4f}" if "accuracy" in check else "")

    accepted = list(record["variants"])
    if accepted and "float32" not in accepted:
        first = record["variants"][accepted[0]]["file"]
        with open(os.path.join(out_dir, first), "rb") as src, open(
                os.path.join(out_dir, runtime.DEFAULT_FILENAME), "wb") as dst:
            dst.write(src.read())
    record["default"] = accepted[0] if accepted else None
    with open(os.path.join(out_dir, EXPORT_RECORD), "w") as f:
        json.dump(record, f, indent=2)
    if refusals:
        raise QuantizationRefused(
            " ".join(refusals) + " Ship another variant (float16, dynamic_range), or "
            "calibrate on other training faces (--calibration); docs/export.md and "
            "research/int8 say what else was measured.", record)
    return record


def load_record(export_dir: str) -> dict[str, Any]:
    path = os.path.join(export_dir, EXPORT_RECORD)
    with open(path) as f:
        return json.load(f)


def split_faces(config, split: str, limit: int, *,
                batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Up to `limit` (float images in [0, 1], integer labels) of one split, in the
    pipeline's eval order."""
    from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415

    try:
        rows = evaluate_lib.collect(
            lambda batch: {"image": np.asarray(batch["image"], np.float32)},
            evaluate_lib.split_batches(config, split, batch_size=batch_size, sharded=False),
            limit=limit)
    except ValueError:
        raise ValueError(f"split {split!r} of dataset {config.dataset!r} gave no "
                         "images to calibrate or validate the export with") from None
    return rows["image"], rows["label"].astype(np.int64)


def split_images(config, split: str, limit: int, *, batch_size: int = 256) -> np.ndarray:
    """Up to `limit` float images in [0, 1] of one split, in the pipeline's eval order."""
    return split_faces(config, split, limit, batch_size=batch_size)[0]


def export_trained(module, variables, spec: spec_lib.ModelSpec, config, out_dir: str,
                   variants: Sequence[str] = ("float32",), *,
                   calibration: int = MAX_CALIBRATION_IMAGES, num_validation: int = 1000,
                   max_accuracy_drop: float = MAX_ACCURACY_DROP,
                   min_agreement: float = MIN_AGREEMENT) -> str:
    """Exports a trained model held in memory to `out_dir`; returns that directory.

    Calibration images come from the config's training split and comparison
    faces (with their labels, which judge the quantized variants) from its
    validation split, read through the same input pipeline (and preprocessing)
    as training, so the int8 ranges match what the model saw. launch.py passes
    the best epoch's variables the training loop kept: nothing is reloaded.
    """
    calibration_images = None
    if "int8" in variants:
        calibration_images = split_images(config, config.train_split, calibration)
    validation_images, validation_labels = split_faces(config, config.eval_split,
                                                       num_validation)
    export(module, variables, spec, out_dir, variants=variants,
           calibration_images=calibration_images, validation_images=validation_images,
           validation_labels=validation_labels, max_accuracy_drop=max_accuracy_drop,
           min_agreement=min_agreement, max_calibration_images=calibration,
           seed=int(config.seed))
    return out_dir


def export_workdir(workdir: str, variants: Sequence[str] = ("float32",), *,
                   calibration: int = MAX_CALIBRATION_IMAGES,
                   num_validation: int = 1000, which: str | int = "best",
                   out_dir: str | None = None,
                   max_accuracy_drop: float = MAX_ACCURACY_DROP,
                   min_agreement: float = MIN_AGREEMENT) -> str:
    """Exports a training run's checkpoint to `workdir/export/`; returns that directory.

    Loads the checkpoint (`which`) and its config, then `export_trained`.
    """
    from fer.training import checkpoint as checkpoint_lib

    module, variables, spec, config = checkpoint_lib.restore_model(workdir, which)
    return export_trained(module, variables, spec, config,
                          out_dir or os.path.join(workdir, EXPORT_DIRNAME), variants,
                          calibration=calibration, num_validation=num_validation,
                          max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement)
