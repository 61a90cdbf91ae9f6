"""python -m benchmarks.label_transfer RUN --helper MODEL [--data_dir D] [--out DIR]

What a model trained on other labels of the same faces adds to a run: the
shipped FER+ model (ten votes per FER2013 face) as a second opinion for a
FER2013 run, say. Scores RUN's exported model, the helper mapped onto RUN's
classes by name, and their product (fer.evaluation.label_transfer) for every
helper weight on RUN's evaluation split; picks the weight for accuracy and
cross-fits that choice. A helper shipped with prior correction is scored at
tau 0 (its shift is undone from shipped.json). Writes DIR/label_transfer.{md,json}
and DIR/label_transfer.png for the README.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib


def helper_shift(model_dir: str) -> np.ndarray | None:
    """The prior shift a shipped ensemble subtracts (None when it records none)."""
    from fer.models import ensemble as ensemble_lib

    path = os.path.join(model_dir, spec_lib.SHIPPED_RECORD)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        ensemble = json.load(f).get("run", {}).get("ensemble") or {}
    if "tau" not in ensemble or not ensemble.get("train_counts"):
        return None
    return np.asarray(ensemble_lib.prior_shift(ensemble["train_counts"], ensemble["tau"]))


def helper_probs(classifier, shift: np.ndarray | None, src, dst, config, split: str,
                 pipeline, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The helper's probabilities at tau 0, mapped onto `dst`'s classes."""
    from fer.export import runtime

    probs, labels = runtime.split_probs(classifier, config, split, pipeline, limit)
    if shift is not None:  # Undo the shipped correction: log p + shift, renormalised.
        log_probs = np.log(np.clip(probs, 1e-12, 1.0)) + shift
        probs = np.exp(log_probs - log_probs.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
    return labels_lib.remap_probs(probs, src, dst), labels


def measure(run_dir: str, helper_dir: str, *, data_dir: str | None = None,
            variant: str = "float32", marginal_faces: int | None = None,
            pipeline=None) -> dict[str, Any]:
    """Everything the table and plot show, as one JSON-able record."""
    from fer.evaluation import label_transfer as lt
    from fer.export import runtime
    from fer.training import checkpoint

    if pipeline is None:
        from fer.data import input_pipeline as pipeline
    config = checkpoint.load_config(run_dir)
    if data_dir:
        config.data_dir = data_dir
    split = config.get("eval_split", "validation")
    train_split = config.get("train_split", "train")
    main = runtime.LiteRTClassifier(os.path.join(run_dir, "export"), num_threads=2,
                                    variant=variant)
    helper = runtime.LiteRTClassifier(helper_dir, num_threads=2)
    if tuple(helper.spec.input_shape) != tuple(main.spec.input_shape):
        raise ValueError(f"{helper_dir} reads faces of shape {helper.spec.input_shape}, "
                         f"{run_dir} of {main.spec.input_shape}: both must see the same faces")
    src = labels_lib.get_label_set(helper.spec.label_set)
    dst = labels_lib.get_label_set(main.spec.label_set)
    shift = helper_shift(helper_dir)

    main_probs, labels = runtime.split_probs(main, config, split, pipeline)
    helped, helper_labels = helper_probs(helper, shift, src, dst, config, split, pipeline)
    if not np.array_equal(labels, helper_labels):
        raise RuntimeError("the split came back in another order for the helper")
    train_helped, _ = helper_probs(helper, shift, src, dst, config, train_split, pipeline,
                                   marginal_faces)
    marginal = lt.log_marginal(train_helped)  # From training faces: no validation label used.
    main_log = np.log(np.clip(main_probs, 1e-12, 1.0))
    helper_log = np.log(np.clip(helped, 1e-12, 1.0))
    rows = lt.sweep(main_log, helper_log, marginal, labels)
    best = lt.choose(rows)
    helper_alone = lt.sweep(helper_log, helper_log, marginal, labels, weights=(0.0,))[0]
    params = [runtime.recorded_params(os.path.join(run_dir, "export")),
              runtime.recorded_params(helper_dir)]
    return {
        "run": run_dir, "helper": helper_dir, "dataset": config.dataset, "split": split,
        "num_examples": int(len(labels)), "labels": list(dst.labels),
        "helper_label_set": src.name, "helper_tau_undone": shift is not None,
        "dropped": [name for name, i in zip(src.labels, labels_lib.mapping(src, dst)) if i < 0],
        "marginal_faces": int(len(train_helped)), "helper_log_marginal": marginal.tolist(),
        "params": params, "total_params": (None if None in params else int(sum(params))),
        "helper_alone": helper_alone, "sweep": rows, "weight": best["weight"],
        "cross_fitted": lt.cross_fitted(main_log, helper_log, marginal, labels),
    }


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown(record: Mapping[str, Any]) -> str:
    labels = record["labels"]
    rows: Sequence[Mapping[str, Any]] = record["sweep"]
    by_weight = {r["weight"]: r for r in rows}
    main, best = by_weight[0.0], by_weight[record["weight"]]

    def line(name: str, row: Mapping[str, Any]) -> str:
        recall = " | ".join("-" if r is None else _percent(r) for r in row["recall"])
        return (f"| {name} | {_percent(row['accuracy'])} | {_percent(row['balanced_accuracy'])}"
                f" | {recall} |")

    total = record["total_params"]
    cf = record["cross_fitted"]
    dropped = ", ".join(record["dropped"]) or "none"
    lines = [
        f"## A second opinion from other labels: {os.path.basename(record['run'])} with "
        f"{record['helper_label_set']}'s model on {record['dataset']} / {record['split']} "
        f"({record['num_examples']:,} faces)", "",
        "| model | accuracy % | balanced % | " + " | ".join(labels) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in labels) + " |",
        line(f"{os.path.basename(record['run'])} alone", main),
        line(f"helper alone ({record['helper_label_set']}, mapped by name)",
             record["helper_alone"]),
        line(f"both, helper weight {record['weight']:g} (chosen)", best), "",
        f"The helper's classes go to the run's by name (dropped: {dropped}); its "
        f"{'shipped prior correction is undone' if record['helper_tau_undone'] else 'outputs are used as they are'}"
        f" and its mean prediction over {record['marginal_faces']:,} training faces divided out. "
        f"Weight chosen for accuracy on this split; cross-fitted (chosen on one stratified "
        f"half, scored on the other, both ways; weights "
        f"{', '.join(f'{w:g}' for w in cf['weights_chosen'])}): accuracy "
        f"{_percent(cf['accuracy'])}%, balanced {_percent(cf['balanced_accuracy'])}%. "
        f"Parameters: {' + '.join(f'{p:,}' if p else '?' for p in record['params'])}"
        + (f" = {total:,}." if total else "."), "",
        "![helper weight](label_transfer.png)"]
    return "\n".join(lines) + "\n"


def main(argv=None, pipeline=None) -> int:
    from fer.evaluation import prior_correction as pc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run (training or fer.export.ensemble) with export/")
    parser.add_argument("--helper", default=spec_lib.SHIPPED_MODEL_DIR,
                        help="an exported model trained on another label set of the same faces")
    parser.add_argument("--data_dir", default=None, help="overrides the run's data_dir")
    parser.add_argument("--variant", default="float32", help="the run's export variant")
    parser.add_argument("--marginal_faces", type=int, default=None,
                        help="training faces for the helper's mean prediction (default: all)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "label_transfer"))
    args = parser.parse_args(argv)
    for path, what in ((os.path.join(args.run, "export"), "export/ folder"),
                       (os.path.join(args.run, "config.json"), "config.json")):
        if not os.path.exists(path):
            parser.error(f"{args.run} has no {what}: give a trained or ensemble run")
    if not os.path.exists(os.path.join(args.helper, spec_lib.SPEC_FILENAME)):
        parser.error(f"{args.helper} is not an exported model (no {spec_lib.SPEC_FILENAME})")
    record = measure(args.run, args.helper, data_dir=args.data_dir, variant=args.variant,
                     marginal_faces=args.marginal_faces, pipeline=pipeline)
    os.makedirs(args.out, exist_ok=True)
    text = markdown(record)
    with open(os.path.join(args.out, "label_transfer.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "label_transfer.json"), "w") as f:
        json.dump(record, f, indent=2)
    pc.plot(record["sweep"], record["labels"], os.path.join(args.out, "label_transfer.png"),
            chosen=record["weight"], key="weight",
            xlabel=f"weight of the {record['helper_label_set']} model's opinion",
            title="a second opinion from other labels of the same faces")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
