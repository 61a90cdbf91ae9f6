"""python -m research.label_transfer RUN --out DIR [--helper MODEL] [--data_dir D]

What a model trained on other labels of the same faces adds to a run: the
shipped FER+ model (ten votes per FER2013 face) as a second opinion for a
FER2013 run, say. Scores RUN's exported model, the helper, and their product
(research.label_transfer.second_opinion) for every helper weight on RUN's evaluation
split, the helper read two ways: mapped onto RUN's classes by name, and through
a linear map fitted on RUN's training faces. Picks the weight for accuracy and
cross-fits that choice. A helper shipped with prior correction is read at tau 0
(its shift is undone from shipped.json). Writes DIR/label_transfer.{md,json}
and DIR/label_transfer.png for docs/results.md (tools.readme_tables).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping

import numpy as np

from fer import labels as labels_lib
from fer import spec as spec_lib


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probs, 1e-12, 1.0))


def helper_probs(classifier, correction: tuple[float, list[float] | None], config,
                 split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The helper's probabilities over its own classes at tau 0, and the split's labels."""
    from fer.export import runtime
    from fer.training import teacher

    probs, labels = runtime.split_probs(classifier, config, split, limit)
    return teacher.uncorrect(probs, *correction), labels


def opinion(name: str, main_log: np.ndarray, helper_log: np.ndarray,
            train_helper_log: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """One way of reading the helper: alone, every weight, the chosen one, cross-fitted."""
    from research.label_transfer import second_opinion as lt
    from fer.evaluation import metrics as metrics_lib
    from fer.evaluation import prior_correction as pc

    marginal = lt.log_marginal(np.exp(train_helper_log))  # Training faces only.
    rows = lt.sweep(main_log, helper_log, marginal, labels)
    alone = metrics_lib.confusion_matrix(labels, helper_log.argmax(-1), helper_log.shape[-1])
    return {"name": name, "helper_log_marginal": marginal.tolist(),
            "helper_alone": pc.score(alone),
            "sweep": rows, "weight": lt.choose(rows)["weight"],
            "cross_fitted": lt.cross_fitted(main_log, helper_log, marginal, labels)}


def measure(run_dir: str, helper_dir: str, *, data_dir: str | None = None,
            variant: str = "float32", marginal_faces: int | None = None) -> dict[str, Any]:
    """Everything the table and plot show, as one JSON-able record.

    Two readings of the helper: its classes mapped by name, and an adapter fitted
    on the training faces (`marginal_faces` of them); `best` is the one whose
    cross-fitted accuracy is higher, and its scores are the record's own.
    """
    from research.label_transfer import second_opinion as lt
    from fer.export import runtime
    from fer.training import checkpoint

    config = checkpoint.load_config(run_dir)
    if data_dir:
        config.data_dir = data_dir
    split, train_split = config.eval_split, config.train_split
    main = runtime.LiteRTClassifier(os.path.join(run_dir, "export"), num_threads=2,
                                    variant=variant)
    helper = runtime.LiteRTClassifier(helper_dir, num_threads=2)
    if tuple(helper.spec.input_shape) != tuple(main.spec.input_shape):
        raise ValueError(f"{helper_dir} reads faces of shape {helper.spec.input_shape}, "
                         f"{run_dir} of {main.spec.input_shape}: both must see the same faces")
    src = labels_lib.get_label_set(helper.spec.label_set)
    dst = labels_lib.get_label_set(main.spec.label_set)
    from fer.training import teacher

    correction = teacher.recorded_correction(helper_dir)  # Undone: read at tau 0.

    main_probs, labels = runtime.split_probs(main, config, split)
    helped, helper_labels = helper_probs(helper, correction, config, split)
    if not np.array_equal(labels, helper_labels):
        raise RuntimeError("the split came back in another order for the helper")
    train_helped, train_labels = helper_probs(helper, correction, config, train_split,
                                              marginal_faces)
    main_log = _log(main_probs)
    by_name = opinion("mapped by name", main_log,
                      _log(labels_lib.remap_probs(helped, src, dst)),
                      _log(labels_lib.remap_probs(train_helped, src, dst)), labels)
    adapter = lt.fit_adapter(_log(train_helped), train_labels, dst.num_classes)
    train_adapted = adapter(_log(train_helped))
    fitted = opinion("through a linear map fitted on the training faces", main_log,
                     adapter(_log(helped)), train_adapted, labels)
    fitted["adapter_train_accuracy"] = float((train_adapted.argmax(-1) == train_labels).mean())
    best = max((by_name, fitted), key=lambda o: o["cross_fitted"]["accuracy"])
    params = [runtime.recorded_params(os.path.join(run_dir, "export")),
              runtime.recorded_params(helper_dir)]
    return {
        "run": run_dir, "helper": helper_dir, "dataset": config.dataset, "split": split,
        "num_examples": int(len(labels)), "labels": list(dst.labels),
        "helper_label_set": src.name, "helper_tau_undone": correction[1] is not None,
        "dropped": [name for name, i in zip(src.labels, labels_lib.mapping(src, dst)) if i < 0],
        "marginal_faces": int(len(train_helped)),
        "params": params, "total_params": (None if None in params else int(sum(params))),
        "opinions": [by_name, fitted], "best": best["name"],
        **{key: best[key] for key in ("helper_alone", "sweep", "weight", "cross_fitted")},
    }


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown(record: Mapping[str, Any]) -> str:
    labels = record["labels"]
    run = os.path.basename(record["run"])

    def line(name: str, row: Mapping[str, Any]) -> str:
        recall = " | ".join("-" if r is None else _percent(r) for r in row["recall"])
        return (f"| {name} | {_percent(row['accuracy'])} | {_percent(row['balanced_accuracy'])}"
                f" | {recall} |")

    by_name, fitted = record["opinions"]
    lines = [
        f"## A second opinion from other labels: {run} with {record['helper_label_set']}'s "
        f"model on {record['dataset']} / {record['split']} ({record['num_examples']:,} faces)",
        "",
        "| model | accuracy % | balanced % | " + " | ".join(labels) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in labels) + " |",
        line(f"{run} alone", next(r for r in by_name["sweep"] if r["weight"] == 0.0))]
    lines += [line(f"helper alone, {o['name']}", o["helper_alone"]) for o in (by_name, fitted)]
    for o in (by_name, fitted):
        chosen = next(r for r in o["sweep"] if r["weight"] == o["weight"])
        cf = o["cross_fitted"]
        lines.append(line(f"both, helper {o['name']}, weight {o['weight']:g}", chosen))
        lines.append(line(f"both, helper {o['name']}, cross-fitted (weights "
                          f"{', '.join(f'{w:g}' for w in cf['weights_chosen'])})", cf))
    total = record["total_params"]
    dropped = ", ".join(record["dropped"]) or "none"
    undone = ("its shipped prior correction undone" if record["helper_tau_undone"]
              else "its outputs as they are")
    lines += [
        "", f"The helper read at tau 0 ({undone}); mapped by name, {dropped} dropped; its "
        f"mean prediction over {record['marginal_faces']:,} training faces divided out; the "
        f"linear map scores {_percent(fitted['adapter_train_accuracy'])}% on the training "
        "faces it was fitted on. Weights are chosen for accuracy on this "
        "split; cross-fitted: chosen on one stratified half, scored on the other, both ways. "
        f"Parameters: {' + '.join(f'{p:,}' if p else '?' for p in record['params'])}"
        + (f" = {total:,}" if total else "") + f". Plot: the helper {record['best']}.", "",
        "![helper weight](label_transfer.png)"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from fer.evaluation import prior_correction as pc

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run (training or fer.export.make_ensemble) with export/")
    parser.add_argument("--helper", default=spec_lib.SHIPPED_MODEL_DIR,
                        help="an exported model trained on another label set of the same faces")
    parser.add_argument("--data_dir", default=None, help="overrides the run's data_dir")
    parser.add_argument("--variant", default="float32", help="the run's export variant")
    parser.add_argument("--marginal_faces", type=int, default=None,
                        help="training faces for the helper's mean prediction (default: all)")
    parser.add_argument("--out", required=True,
                        help="where the table goes (research/label_transfer/results/NAME)")
    args = parser.parse_args(argv)
    for path, what in ((os.path.join(args.run, "export"), "export/ folder"),
                       (os.path.join(args.run, "config.json"), "config.json")):
        if not os.path.exists(path):
            parser.error(f"{args.run} has no {what}: give a trained or ensemble run")
    if not os.path.exists(os.path.join(args.helper, spec_lib.SPEC_FILENAME)):
        parser.error(f"{args.helper} is not an exported model (no {spec_lib.SPEC_FILENAME})")
    record = measure(args.run, args.helper, data_dir=args.data_dir, variant=args.variant,
                     marginal_faces=args.marginal_faces)
    os.makedirs(args.out, exist_ok=True)
    text = markdown(record)
    with open(os.path.join(args.out, "label_transfer.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "label_transfer.json"), "w") as f:
        json.dump(record, f, indent=2)
    pc.plot(record["sweep"], record["labels"], os.path.join(args.out, "label_transfer.png"),
            chosen=record["weight"], key="weight",
            xlabel=f"weight of the {record['helper_label_set']} model's opinion "
                   f"({record['best']})",
            title="a second opinion from other labels of the same faces")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
