"""python -m fer.training.teacher --model DIR --config SPEC --out FILE.npz

Runs a teacher (any exported model directory: model.tflite + model.json, e.g. the
shipped ensemble fer/assets/model) over every face of a training split, unaugmented
and in the split's record order, and saves its class probabilities for
distillation (fer.data.soft_targets; train with `--config.distill_targets=FILE.npz`
and `distill=W` in configs/resnet_fer.py, or `--config.distill_weight=W`).

The teacher's *uncorrected* probabilities are saved: a shipped ensemble has its
prior correction (tau * log training prior, subtracted in the graph) baked in, and
its shipped.json (or ensemble.json) records tau and the training counts, so the
correction is taken off again here (exactly: it is a constant shift of the
log-probabilities). Why: the student should learn what the teacher believes,
calibrated like a network trained by the same recipe, and then have its own tau
chosen on validation by the shipping rule (fer.export.make_ensemble). Targets at
the teacher's tau would bake one validation-chosen tau into training and then
have another applied on top. `--keep_tau` saves the corrected outputs instead.

    python -m fer.training.teacher --model fer/assets/model \\
        --config configs/resnet_fer.py:size=tiny,data=ferplus \\
        --data_dir ../shared/data/ferplus --out runs/teacher/ferplus_train.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import numpy as np
import tqdm

from fer import spec as spec_lib
from fer.data import soft_targets

_RECORDS = (spec_lib.SHIPPED_RECORD, "ensemble.json")


def recorded_correction(model_dir: str) -> tuple[float, list[float] | None]:
    """(tau, training counts) of the prior correction in an export's graph; (0, None) if none.

    Read from shipped.json (run.ensemble) beside a shipped model, or from the
    ensemble.json of the ensemble directory an export folder sits in.
    """
    model_dir = model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir)
    candidates = [os.path.join(model_dir, spec_lib.SHIPPED_RECORD),
                  os.path.join(os.path.dirname(os.path.abspath(model_dir)), "ensemble.json")]
    for path in candidates:
        if not os.path.exists(path):
            continue
        with open(path) as f:
            record = json.load(f)
        entry = record.get("run", {}).get("ensemble") if path.endswith(_RECORDS[0]) else record
        if entry and "tau" in entry and entry.get("train_counts"):
            return float(entry["tau"]), list(entry["train_counts"])
    return 0.0, None


def uncorrect(probs: np.ndarray, tau: float, counts: Sequence[float] | None) -> np.ndarray:
    """Probabilities at tau 0 from ones at `tau` (the shift undone, rows renormalised)."""
    from fer.models import ensemble as ensemble_lib  # noqa: PLC0415

    probs = np.asarray(probs, np.float64)
    if not tau or counts is None:
        return probs / probs.sum(axis=1, keepdims=True)
    logits = np.log(np.clip(probs, 1e-30, 1.0)) + np.asarray(
        ensemble_lib.prior_shift(counts, tau))
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def teacher_probs(model_dir: str, config, split: str, *, num_threads: int = 2,
                  batch_size: int = 256, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, K) as the export emits them, labels (N,)) over `split` in order."""
    from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415
    from fer.export import runtime  # noqa: PLC0415

    classifier = runtime.LiteRTClassifier(model_dir, num_threads=num_threads)
    info_labels = _split_labels(config, split)
    if tuple(classifier.spec.input_shape) != (int(config.image_size),) * 2 + (
            int(config.channels),):
        raise ValueError(f"the teacher takes {tuple(classifier.spec.input_shape)} inputs; the "
                         f"config feeds {config.image_size}x{config.image_size}x"
                         f"{config.channels}")
    if classifier.spec.preprocessing != str(config.preprocessing):
        raise ValueError(f"the teacher expects preprocessing {classifier.spec.preprocessing!r}"
                         f"; the config applies {config.preprocessing!r}")
    predict = runtime.predictor(classifier)
    bar = tqdm.tqdm(total=len(info_labels), unit="face", desc="teacher", disable=not progress,
                    dynamic_ncols=True)
    probs, labels = [], []
    for rows in evaluate_lib.examples(predict, evaluate_lib.split_batches(
            config, split, batch_size=batch_size, sharded=False)):
        probs.append(rows["probs"])
        labels.append(rows["label"])
        bar.update(len(rows["label"]))
    bar.close()
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    if not np.array_equal(labels, info_labels):
        raise ValueError("the split's labels came back in another order than its records")
    return probs, labels


def _split_labels(config, split: str) -> np.ndarray:
    from fer.data import input_pipeline  # noqa: PLC0415

    return np.asarray(input_pipeline.load_dataset(config).split(split).labels)


def make(model_dir: str, config, out: str, *, split: str | None = None,
         keep_tau: bool = False, num_threads: int = 2, progress: bool = True
         ) -> dict[str, Any]:
    """Writes `out` (fer.data.soft_targets) and returns a summary of the targets."""
    from fer.data import input_pipeline  # noqa: PLC0415

    split = split or str(config.train_split)
    dataset = input_pipeline.load_dataset(config)
    names = dataset.label_set.labels
    probs, labels = teacher_probs(model_dir, config, split, num_threads=num_threads,
                                  progress=progress)
    tau, counts = recorded_correction(model_dir)
    removed = 0.0 if keep_tau else tau
    targets = uncorrect(probs, removed, counts).astype(np.float32)
    soft_targets.save(out, targets, labels, label_names=names, dataset=str(config.dataset),
                      split=split, teacher=os.path.normpath(model_dir), tau_removed=removed)
    k = len(names)
    return {"out": out, "faces": int(len(labels)), "tau_removed": removed,
            "teacher_accuracy_on_split": float((targets.argmax(1) == labels).mean()),
            "mean_target": dict(zip(names, np.round(targets.mean(0), 4).tolist())),
            "label_share": dict(zip(names, np.round(
                np.bincount(labels, minlength=k) / len(labels), 4).tolist()))}


def main(argv: Sequence[str] | None = None) -> int:
    import configs  # noqa: PLC0415 (the checkout's configs/, beside launch.py)

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec_lib.SHIPPED_MODEL_DIR,
                        help="the teacher: an export directory (model.tflite + model.json)")
    parser.add_argument("--config", required=True,
                        help="the student's config spec, e.g. "
                             "configs/resnet_fer.py:size=tiny,data=ferplus")
    parser.add_argument("--data_dir", default="", help="'' = $FER_DATA/<dataset>")
    parser.add_argument("--split", default=None, help="default: the config's train_split")
    parser.add_argument("--out", required=True, help="the .npz to write")
    parser.add_argument("--keep_tau", action="store_true",
                        help="save the outputs at the teacher's own prior correction")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads")
    args = parser.parse_args(argv)
    try:
        config = configs.load(args.config)
        if args.data_dir:
            config.data_dir = args.data_dir
        summary = make(args.model, config, args.out, split=args.split,
                       keep_tau=args.keep_tau, num_threads=args.threads)
    except (OSError, ValueError) as e:
        print(f"teacher: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
