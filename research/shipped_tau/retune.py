"""Re-picks the prior correction of a shipped ensemble whose members are gone.

  python -m research.shipped_tau.retune --model fer/assets/model --data_dir DATA/ferplus \
      --out /tmp/retuned

An ensemble (fer.export.make_ensemble) subtracts tau x log(training prior) from its
log-probabilities: one constant vector of the TFLite graph. When the split that
chose tau changes (FER+'s validation faces became the reference reader's majority
set, not the plurality one) tau has to be chosen again, but the shipped model's
members are no longer at hand. Because a constant shift of the log-probabilities
is all tau changes, the model's outputs at the old tau give every other tau
exactly: this study sweeps tau on the split with the rule fer.export.make_ensemble
uses (best mean of accuracy and balanced accuracy, plus a cross-fitted estimate),
writes a copy of the model with that one constant rewritten (the file is
otherwise byte-identical) to --out, checks the copy's outputs against the
re-corrected old ones, and records the new numbers in the copy's shipped.json.
It never writes into the model it reads: shipping the copy is a separate,
deliberate step (fer.export.ship's output is the shipped model). With the members
at hand, run fer.export.make_ensemble again instead.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

from fer import spec as spec_lib
from fer.export import runtime

CHECK_ATOL = 2e-3  # Re-corrected old outputs vs the rewritten file's (float32 softmax).


def find_constant(data: bytes, values: Sequence[float]) -> int:
    """Byte offset of the one float32 constant equal to `values` in a TFLite file."""
    needle = np.asarray(values, np.float32).tobytes()
    first = data.find(needle)
    if first < 0:
        raise ValueError("the model holds no constant equal to its recorded prior shift "
                         f"{np.round(values, 5).tolist()}: not an ensemble of this tau and "
                         "these training counts")
    if data.find(needle, first + 1) >= 0:
        raise ValueError("the recorded prior shift occurs more than once in the model: "
                         "refusing to guess which constant is the correction")
    return first


def rewrite_shift(data: bytes, old_shift: Sequence[float], new_shift: Sequence[float]) -> bytes:
    offset = find_constant(data, old_shift)
    new = np.asarray(new_shift, np.float32).tobytes()
    return data[:offset] + new + data[offset + len(new):]


def split_log_probs(classifier: runtime.LiteRTClassifier, config, split: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities, labels) of the model over every example of the split."""
    probs, labels = runtime.split_probs(classifier, config, split)
    return np.log(np.clip(probs, 1e-12, 1.0)), labels


def check_out_dir(model_dir: str, out_dir: str) -> None:
    """Refuses an output that would overwrite the model read or the shipped one."""
    out = os.path.realpath(out_dir)
    for protected in (model_dir, spec_lib.SHIPPED_MODEL_DIR):
        protected = os.path.realpath(protected)
        if out == protected or out.startswith(protected + os.sep):
            raise ValueError(f"--out {out_dir} is inside {protected}: retune writes a copy "
                             "elsewhere, never over the model it reads or the shipped one")


def retune(model_dir: str, config, *, out_dir: str, tau: float | str = "auto",
           split: str = "validation", note: str = "") -> dict[str, Any]:
    """Chooses tau on `split`; writes the model with that correction to `out_dir`.

    Returns the copy's shipped.json. `out_dir` must lie outside `model_dir` and the
    shipped model; nothing is written there unless the rewritten file passes its check.
    """
    from fer.data import input_pipeline
    from fer.evaluation import metrics as metrics_lib
    from fer.evaluation import prior_correction as pc
    from fer.models import ensemble as ensemble_lib

    check_out_dir(model_dir, out_dir)
    record_path = os.path.join(model_dir, spec_lib.SHIPPED_RECORD)
    if not os.path.exists(record_path):
        raise FileNotFoundError(f"{record_path} is missing: retune works on a shipped "
                                "model (fer.export.ship); re-export a run with "
                                "fer.export.make_ensemble instead")
    with open(record_path) as f:
        record = json.load(f)
    ensemble = record.get("run", {}).get("ensemble")
    if not ensemble or "tau" not in ensemble:
        raise ValueError(f"{model_dir} is not a prior-corrected ensemble (no run.ensemble.tau "
                         "in shipped.json)")
    old_tau = float(ensemble["tau"])
    counts = input_pipeline.get_dataset_info(config).class_counts[config.train_split]
    if ensemble.get("train_counts") and list(ensemble["train_counts"]) != [int(c) for c in counts]:
        raise ValueError(f"the training counts of {config.dataset!r} ({list(counts)}) are not "
                         f"the ones the model was corrected with ({ensemble['train_counts']})")
    log_prior = ensemble_lib.log_prior(counts)
    old_shift = np.asarray(ensemble_lib.prior_shift(counts, old_tau))

    classifier = runtime.LiteRTClassifier(model_dir, num_threads=2)
    log_probs, labels = split_log_probs(classifier, config, split)
    uncorrected = log_probs + old_shift  # The ensemble at tau 0, up to a constant.
    rows = pc.sweep(uncorrected, labels, log_prior)
    new_tau = pc.choose(rows)["tau"] if tau == "auto" else float(tau)
    new_shift = np.asarray(ensemble_lib.prior_shift(counts, new_tau))

    source = runtime.resolve_model_path(model_dir)
    with open(source, "rb") as f:
        data = rewrite_shift(f.read(), old_shift, new_shift)
    target = os.path.join(out_dir, os.path.basename(source))
    with tempfile.TemporaryDirectory() as scratch:  # Checked before anything is written.
        candidate = os.path.join(scratch, os.path.basename(source))
        with open(candidate, "wb") as f:
            f.write(data)
        shutil.copyfile(os.path.join(model_dir, spec_lib.SPEC_FILENAME),
                        os.path.join(scratch, spec_lib.SPEC_FILENAME))
        retuned = runtime.LiteRTClassifier(candidate, num_threads=2)
        new_log_probs, _ = split_log_probs(retuned, config, split)
        expected = np.exp(uncorrected - new_shift)
        expected /= expected.sum(axis=1, keepdims=True)
        delta = float(np.abs(np.exp(new_log_probs) - expected).max())
        if delta > CHECK_ATOL:
            raise RuntimeError(f"the rewritten model's outputs differ from the re-corrected "
                               f"ones by up to {delta:.4f}; nothing was written to {out_dir}")
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)
        shutil.copyfile(candidate, target)

    k = len(classifier.labels)
    confusion = metrics_lib.confusion_matrix(labels, new_log_probs.argmax(-1), k)
    summary = metrics_lib.summarize(confusion, list(classifier.labels),
                                    float(-new_log_probs[np.arange(len(labels)), labels].mean()))
    previous = {key: record["run"].get(key) for key in
                ("accuracy", "balanced_accuracy", "num_examples")}
    record["run"].update({key: summary[key] for key in
                          ("accuracy", "balanced_accuracy", "macro_f1", "per_label")})
    record["run"].update(split=split, num_examples=int(len(labels)))
    ensemble.update(
        tau=new_tau, train_counts=[int(c) for c in counts],
        tau_rule=("auto: best mean of accuracy and balanced accuracy on the split"
                  if tau == "auto" else "given"),
        cross_fitted=pc.cross_fitted(uncorrected, labels, log_prior), sweep=rows)
    ensemble.setdefault("retuned", []).append({
        "date": datetime.date.today().isoformat(), "from_tau": old_tau, "tau": new_tau,
        "split": split, "before": previous, "max_abs_delta_p": delta, "note": note})
    with open(os.path.join(out_dir, spec_lib.SHIPPED_RECORD), "w") as f:
        json.dump(record, f, indent=2)
    return record


def _parse_tau(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        tau = float(text)
    except ValueError:
        tau = -1.0
    if not 0.0 <= tau <= 2.0:
        raise ValueError(f"--tau must be 'auto' or a number in [0, 2], got {text!r}")
    return tau


def main(argv: Sequence[str] | None = None) -> int:
    from configs import default

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=spec_lib.SHIPPED_MODEL_DIR,
                        help="a shipped model directory (model.tflite + shipped.json)")
    parser.add_argument("--data_dir", required=True, help="the dataset the tau is chosen on")
    parser.add_argument("--dataset", default="", help="default: the one the model was trained on")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--tau", default="auto", help="'auto' or a number in [0, 2]")
    parser.add_argument("--out", required=True,
                        help="where the re-tuned copy goes (never the model read)")
    parser.add_argument("--note", default="", help="why, for the record")
    args = parser.parse_args(argv)
    config = default.get_config()
    try:
        spec = spec_lib.ModelSpec.load(args.model)
        config.dataset = args.dataset or str(spec.extra.get("dataset") or spec.label_set)
        config.data_dir = args.data_dir
        tau = _parse_tau(args.tau)
        record = retune(args.model, config, out_dir=args.out, tau=tau, split=args.split,
                        note=args.note)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"retune: {e}", file=sys.stderr)
        return 2
    run, last = record["run"], record["run"]["ensemble"]["retuned"][-1]
    print(f"tau {last['from_tau']:g} -> {last['tau']:g} on {run['dataset']} / {args.split} "
          f"({run['num_examples']} faces): accuracy {100 * run['accuracy']:.2f}%, balanced "
          f"{100 * run['balanced_accuracy']:.2f}%; cross-fitted "
          f"{100 * run['ensemble']['cross_fitted']['accuracy']:.2f}% / "
          f"{100 * run['ensemble']['cross_fitted']['balanced_accuracy']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
