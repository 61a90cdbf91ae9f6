"""python -m fer.export.make_ensemble --members RUN [RUN ...] --out DIR [--tau T] [--shift_px S]

Combines trained runs into one inference model (fer.models.ensemble: mean of
the members' log-probabilities over the face and its mirror image, and with
--shift_px over both moved S pixels each way, minus tau * log training prior),
scores it, and writes DIR as a run that every other tool reads like a trained one:

  DIR/config.json      the first member's config (data, splits) + `ensemble`
  DIR/ensemble.json    members, mirror, shift_px, tau, prior counts, tau sweep
  DIR/model.json       the shared ModelSpec (labels, input shape, normalisation)
  DIR/report.{json,md} the combined model on the evaluation split, confusion.png
  DIR/prior_correction.png   accuracy, balanced accuracy, per-class recall vs tau
  DIR/export/          TFLite variants, checked against JAX (fer.export.tflite)

`--tau auto` picks tau on the evaluation split by the best mean of accuracy
and balanced accuracy; ensemble.json also records a cross-fitted estimate
(tau picked on one half, scored on the other) so the choice's optimism shows.
Then `python -m fer.export.ship --export DIR/export --variant float16` ships it.
What each ingredient adds is a study apart: `python -m research.ensemble_ablation DIR`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from fer import spec as spec_lib

ENSEMBLE_RECORD = "ensemble.json"


def _same_contract(specs: Sequence[spec_lib.ModelSpec], workdirs: Sequence[str]) -> None:
    first = specs[0]
    for spec, workdir in zip(specs[1:], workdirs[1:]):
        for field in ("label_set", "labels", "input_shape", "normalisation", "preprocessing"):
            if getattr(spec, field) != getattr(first, field):
                raise ValueError(f"{workdir}: {field} {getattr(spec, field)!r} differs from "
                                 f"{workdirs[0]}'s {getattr(first, field)!r}; an ensemble's "
                                 "members must read the same faces and emit the same labels")


def load_members(workdirs: Sequence[str], which: str = "best"):
    """[(module, variables)], the shared spec and the first member's config.

    The spec's design names every member's design ('a x2', or 'a + b' when they differ).
    """
    from fer.training import checkpoint as checkpoint_lib

    if not workdirs:
        raise ValueError("an ensemble needs at least one member run")
    loaded = [checkpoint_lib.restore_model(w, which) for w in workdirs]
    specs = [spec for _, _, spec, _ in loaded]
    _same_contract(specs, workdirs)
    designs = [s.design for s in specs]
    design = (designs[0] if len(designs) == 1 else f"{designs[0]} x{len(designs)}"
              if len(set(designs)) == 1 else " + ".join(designs))
    return ([(m, v) for m, v, _, _ in loaded], dataclasses.replace(specs[0], design=design),
            loaded[0][3])


def build(members, spec: spec_lib.ModelSpec, *, mirror: bool,
          shift: Sequence[float] | None, shift_px: int = 0):
    """(Ensemble module, its variables, its spec); spec.design already names the members."""
    from fer.models import ensemble as ensemble_lib

    module = ensemble_lib.Ensemble(members=tuple(m for m, _ in members), mirror=mirror,
                                   logit_shift=None if shift is None else tuple(shift),
                                   shift_px=shift_px)
    variables = ensemble_lib.combine_variables([v for _, v in members])
    design = spec.design
    if mirror:
        design += " mirrored"
    if shift_px:
        design += f" shifted {shift_px}px"
    combined = spec_lib.ModelSpec(
        design=design, label_set=spec.label_set, labels=spec.labels,
        input_shape=spec.input_shape, normalisation=spec.normalisation,
        preprocessing=spec.preprocessing, extra=dict(spec.extra))
    return module, variables, combined


def read_record(directory: str) -> tuple[dict[str, Any], list[str]]:
    """(ensemble.json of an ensemble directory, its members' workdirs)."""
    with open(os.path.join(directory, ENSEMBLE_RECORD)) as f:
        record = json.load(f)
    return record, [os.path.normpath(os.path.join(directory, w)) for w in record["members"]]


def combine_log_probs(log_probs: np.ndarray, mirror: bool, shifted: bool) -> np.ndarray:
    """member_log_probs' (2, S, M, N, K) -> the ensemble's (N, K), as Ensemble does.

    The mean over the views chosen (plain only or plain + mirrored; unshifted
    only or every shift) and over the members.
    """
    return log_probs[:2 if mirror else 1, :None if shifted else 1].mean(axis=(0, 1, 2))


def load(directory: str):
    """(module, variables, spec, config) of an ensemble directory, like a run's (fer.loading)."""
    from fer.models import ensemble as ensemble_lib
    from fer.training import checkpoint as checkpoint_lib

    record, workdirs = read_record(directory)
    members, spec, _ = load_members(workdirs, record.get("which", "best"))
    shift = ensemble_lib.prior_shift(record["train_counts"], record["tau"])
    module, variables, _ = build(members, spec, mirror=record["mirror"], shift=shift,
                                 shift_px=record.get("shift_px", 0))
    config = checkpoint_lib.load_config(directory)
    return module, variables, spec_lib.ModelSpec.load(directory), config


def member_log_probs(members, config, split: str, shift_px: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(labels (N,), log-probabilities (2, S, M, N, K)) of each member on each view.

    Axis 0: the face, its mirror image; axis 1: unshifted, then (shift_px > 0)
    moved shift_px pixels down, up, right, left (fer.models.ensemble's views).
    """
    import jax

    from fer.evaluation import evaluate as evaluate_lib
    from fer.models import ensemble as ensemble_lib

    fns = [jax.jit(lambda x, m=m, v=v: jax.nn.log_softmax(m.apply(v, x, train=False)))
           for m, v in members]

    def predict(batch):
        x = np.asarray(batch["image"], np.float32)
        views = np.concatenate(ensemble_lib.inference_views(x, mirror=True, shift_px=shift_px))
        # One call per member on all views at once (as Ensemble does), then (n, 2, S, M, K).
        out = np.stack([np.asarray(fn(views)) for fn in fns], axis=1)  # (V * n, M, K)
        return {"log_probs": out.reshape(2, -1, len(x), len(fns), out.shape[-1])
                .transpose(2, 0, 1, 3, 4)}

    rows = evaluate_lib.collect(predict, evaluate_lib.split_batches(
        config, split, batch_size=256, sharded=False))
    return rows["label"], rows["log_probs"].transpose(1, 2, 3, 0, 4)


def make(workdirs: Sequence[str], out_dir: str, *, tau: float | str = "auto",
         mirror: bool = True, shift_px: int = 0, variants: Sequence[str] = ("float32",),
         split: str | None = None, num_validation: int = 1000,
         which: str = "latest") -> dict[str, Any]:
    """Builds, scores and exports the ensemble of `workdirs` into `out_dir`.

    `which` checkpoint of each member: 'latest' (the end of its schedule, the
    default: no validation choice) or 'best' (best validation balanced accuracy).
    `shift_px` > 0 also averages over the views moved that many pixels each way.
    """
    from fer import models
    from fer.data import input_pipeline
    from fer.evaluation import evaluate as evaluate_lib
    from fer.evaluation import prior_correction as pc
    from fer.evaluation import report as report_lib
    from fer.export import tflite
    from fer.models import ensemble as ensemble_lib

    members, spec, config = load_members(workdirs, which)
    split = split or config.eval_split
    info = input_pipeline.get_dataset_info(config)
    counts = info.class_counts[config.train_split]
    log_prior = ensemble_lib.log_prior(counts)

    if shift_px < 0:
        raise ValueError(f"shift_px must be >= 0, got {shift_px}")
    labels, log_probs = member_log_probs(members, config, split, shift_px)
    combined = combine_log_probs(log_probs, mirror, shifted=shift_px > 0)
    rows = pc.sweep(combined, labels, log_prior)
    if tau == "auto":
        tau = choose = pc.choose(rows)["tau"]
    else:
        tau, choose = float(tau), None
    shift = ensemble_lib.prior_shift(counts, tau)
    module, variables, out_spec = build(members, spec, mirror=mirror, shift=shift,
                                        shift_px=shift_px)

    os.makedirs(out_dir, exist_ok=True)
    config = config.copy_and_resolve_references()
    config.ensemble = {"members": [os.path.relpath(w, out_dir) for w in workdirs],
                       "mirror": mirror, "shift_px": shift_px, "tau": tau}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))
    out_spec.save(out_dir)
    params = models.count_params(variables)["trainable"]
    summary = evaluate_lib.evaluate_model(config, module, variables, split)
    summary.update(design=out_spec.design, params=params,
                   note=f"{len(members)} member(s), mirror {'on' if mirror else 'off'}, "
                        f"shifts {f'{shift_px} px' if shift_px else 'off'}, "
                        f"prior correction tau {tau:g}")
    report_lib.write_report(out_dir, summary)
    pc.plot(rows, list(spec.labels), os.path.join(out_dir, "prior_correction.png"),
            chosen=tau, title=f"{out_spec.design} on {config.dataset} / {split}")
    record = {
        "members": [os.path.relpath(w, out_dir) for w in workdirs], "which": which,
        "mirror": mirror, "shift_px": shift_px, "tau": tau, "tau_rule": "auto: best mean of accuracy and balanced "
        "accuracy on the split" if choose is not None else "given",
        "train_counts": [int(c) for c in counts], "split": split, "params": params,
        "cross_fitted": pc.cross_fitted(combined, labels, log_prior), "sweep": rows}
    with open(os.path.join(out_dir, ENSEMBLE_RECORD), "w") as f:
        json.dump(record, f, indent=2)

    validation, validation_labels = tflite.split_faces(config, split, num_validation)
    calibration = (tflite.split_images(config, config.train_split,
                                       tflite.MAX_CALIBRATION_IMAGES)
                   if "int8" in variants else None)
    try:
        tflite.export(module, variables, out_spec, os.path.join(out_dir, tflite.EXPORT_DIRNAME),
                      variants=variants, calibration_images=calibration,
                      validation_images=validation, validation_labels=validation_labels)
    except tflite.QuantizationRefused as e:
        print(f"ensemble: {e}", file=sys.stderr)
    return {**record, "summary": summary}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", nargs="+", required=True, help="training workdirs")
    parser.add_argument("--out", required=True, help="the ensemble's directory")
    parser.add_argument("--tau", default="auto",
                        help="prior correction strength in [0, 2], or 'auto'")
    parser.add_argument("--no_mirror", action="store_true", help="no mirror-image averaging")
    parser.add_argument("--shift_px", type=int, default=0,
                        help="also average over the views moved this many pixels up, down, "
                             "left and right (0: off)")
    parser.add_argument("--variants", default="float32,float16",
                        help="TFLite variants to export (comma-separated)")
    parser.add_argument("--split", default=None, help="default: the runs' eval_split")
    parser.add_argument("--which", default="latest", choices=("latest", "best"),
                        help="each member's checkpoint: the last epoch, or the best on "
                             "validation balanced accuracy")
    args = parser.parse_args(argv)
    tau: float | str = args.tau
    if tau != "auto":
        try:
            tau = float(tau)
        except ValueError:
            parser.error(f"--tau must be a number or 'auto', got {args.tau!r}")
    try:
        record = make(args.members, args.out, tau=tau, mirror=not args.no_mirror,
                      shift_px=args.shift_px,
                      variants=[v for v in args.variants.split(",") if v], split=args.split,
                      which=args.which)
    except (OSError, ValueError) as e:
        print(f"ensemble: {e}", file=sys.stderr)
        return 2
    s, cf = record["summary"], record["cross_fitted"]
    print(f"{s['design']} on {s['dataset']} / {s['split']}: accuracy {s['accuracy']:.2%}, "
          f"balanced {s['balanced_accuracy']:.2%} (tau {record['tau']:g}); cross-fitted: "
          f"accuracy {cf['accuracy']:.2%}, balanced {cf['balanced_accuracy']:.2%}, "
          f"lowest class {cf['min_recall']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
