"""launch.py's two modes: train (train, report, export) and evaluate (score a model).

`train` keeps everything in memory from training to export: the loop returns
the best epoch's variables and its validation summary (already computed while
training), the report is that summary, and the export converts those variables.
No checkpoint is read back and no eval step is compiled a second time.
`evaluate` scores a run's checkpoint or an exported model on any split.
Sits above fer.training and fer.export (it imports both; neither imports it).
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import jax
import ml_collections

from fer import loading
from fer import models
from fer import spec as spec_lib
from fer.data import errors as data_errors
from fer.data import input_pipeline
from fer.evaluation import evaluate as evaluate_lib
from fer.evaluation import report as report_lib
from fer.training import checkpoint as checkpoint_lib
from fer.training import provenance as provenance_lib
from fer.training import train as train_lib

DEMO_NOTE = (
    "This run uses fer's embedded DEMO set: synthetic images, not real faces. Its "
    "accuracy says nothing about facial expressions. To train on real data, point fer "
    "at a dataset in its publisher's layout, e.g. FER+ (FER2013Train/, FER2013Valid/, "
    "FER2013Test/ each with label.csv):\n"
    "  python launch.py --config configs/seed_designs.py:model=xcao2 --workdir runs/xcao2 "
    "--config.dataset=ferplus --config.data_dir=/path/to/ferplus\n"
    "(also --config.dataset=fer2013 with the folder of fer2013.csv, affectnet, or "
    "image_folder with one subfolder per class; see docs/training.md).")


def default_workdir(config: ml_collections.ConfigDict) -> str:
    if config.dataset == "demo":
        return os.path.join("runs", "demo")
    return os.path.join("runs", f"{config.model}_{config.dataset}")


def banner(text: str) -> None:
    line = "=" * 78
    print(f"\n{line}\n{text}\n{line}", flush=True)


def _params(variables) -> int:
    return models.count_params(variables)["trainable"]


# ----------------------------------------------------------------------------
# --mode=train

def export_variables(run: train_lib.TrainResult, config: ml_collections.ConfigDict,
                     workdir: str, variants: Sequence[str]) -> str | None:
    """The best epoch's variables exported to workdir/export; None (and why) if skipped.

    A refused quantized variant does not cost the run its report or the other
    variants: they and export.json are written before the refusal.
    """
    # `--config.export_variants=float32,int8` arrives as one string: split it.
    variants = tuple(v.strip() for item in variants or () for v in str(item).split(",")
                     if v.strip())
    if not variants:
        print("Export skipped: config.export_variants is empty.", flush=True)
        return None
    try:
        from fer.export import tflite as export_tflite  # TensorFlow: loaded to export.
    except ImportError as e:
        print(f"Export skipped: fer.export.tflite is not available ({e}).", flush=True)
        return None
    out_dir = os.path.join(workdir, export_tflite.EXPORT_DIRNAME)
    try:
        return export_tflite.export_trained(run.model, run.best_variables, run.spec,
                                            config, out_dir, variants)
    except export_tflite.QuantizationRefused as refused:
        print(f"Export: {refused}", flush=True)
        return out_dir


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains (or resumes), reports the best epoch's validation scores, exports it."""
    if config.dataset == "demo" and jax.process_index() == 0:
        banner(DEMO_NOTE)
    started = time.time()
    run = train_lib.train_and_evaluate(config, workdir)
    summary = dict(
        run.best_summary, design=config.model, params=_params(run.best_variables),
        checkpoint="best", workdir=os.path.abspath(workdir),
        # Training time over every epoch (resumed runs included) and this command's.
        train_seconds=round(sum(r.get("epoch_seconds", 0.0) for r in run.history), 1),
        wall_seconds=round(time.time() - started, 1),
        **provenance_lib.provenance(config, run.info))
    if config.dataset == "demo":
        summary["note"] = "Demo data (synthetic): the numbers are not FER results."
    if jax.process_index() == 0:
        paths = report_lib.write_report(workdir, summary, run.history)
        print(f"Report: {paths['markdown']}", flush=True)
        exported = export_variables(run, config, workdir, config.export_variants)
        if exported:
            print(f"Exported: {exported}", flush=True)
        print("\n" + report_lib.comparison_table([summary]), flush=True)
        if config.dataset == "demo":
            from fer.gallery import shipped_demo as demo  # noqa: PLC0415 (on demand)

            print("\n(demo data: see the note above for real data)", flush=True)
            demo.show_shipped_model()
    return summary


# ----------------------------------------------------------------------------
# --mode=evaluate

def evaluation_config(workdir: str, flag_config: ml_collections.ConfigDict,
                      overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """The run's own config.json with this command's --config.* overrides on top."""
    try:
        config = checkpoint_lib.load_config(workdir)
    except FileNotFoundError:
        config = flag_config.copy_and_resolve_references()
    config.unlock()
    for path, value in overrides.items():
        node = config
        *parents, leaf = path.split(".")
        for name in parents:
            node = node[name]
        node[leaf] = value
    return config


def is_export(source: str) -> bool:
    """An exported model: a directory (model.tflite + model.json) or a .tflite file."""
    return os.path.isdir(source) or source.endswith(".tflite")


def _export_report_dir(source: str) -> str:
    """Beside an exported model; runs/shipped_model for the one in the package."""
    directory = source if os.path.isdir(source) else os.path.dirname(source) or "."
    if os.path.realpath(directory) == os.path.realpath(spec_lib.SHIPPED_MODEL_DIR):
        return os.path.join("runs", "shipped_model")
    return directory


def _evaluate_export(config: ml_collections.ConfigDict, source: str,
                     split: str) -> dict[str, Any]:
    try:
        from fer.export import runtime
    except ImportError as e:
        raise SystemExit(f"Evaluating an exported model needs fer.export.runtime: {e}")
    return runtime.evaluate_export(source, config, split)


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Scores `config.checkpoint` (of `workdir`, or an export) on `config.split`."""
    split = config.split
    source = str(config.checkpoint)
    if is_export(source):
        summary = _evaluate_export(config, source, split)
        name = os.path.splitext(os.path.basename(summary["checkpoint"]))[0]
        out_dir = os.path.join(workdir or _export_report_dir(source), f"eval_{split}_{name}")
    else:
        which = int(source) if source.isdigit() else source
        model, variables, spec, _ = loading.load_model(workdir, which)
        info = input_pipeline.get_dataset_info(config)
        data_labels = getattr(info.label_set, "name", info.label_set)
        if data_labels != spec.label_set:
            raise data_errors.DataError(
                f"the model in {workdir} predicts {spec.label_set} labels but dataset "
                f"{config.dataset!r} has {data_labels} labels: export the run "
                "(python -m fer.export --workdir RUN) and evaluate the export "
                "(--config.checkpoint=RUN/export), which reads it through the shared "
                "classes by name")
        summary = evaluate_lib.evaluate_model(config, model, variables, split)
        summary["skipped"] = getattr(info, "skipped", {})
        summary.update(design=spec.design, params=_params(variables), checkpoint=source)
        out_dir = os.path.join(workdir, f"eval_{split}")
    if jax.process_index() == 0:  # Every process evaluates; one writes.
        paths = report_lib.write_report(out_dir, summary)
        print(f"Report: {paths['markdown']}")
        print("\n" + report_lib.comparison_table([summary]), flush=True)
    return summary
