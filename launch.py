"""Train, evaluate and export a fer model; or evaluate a trained one on any split.

  python launch.py                      # the embedded demo: train, evaluate, export
  python launch.py --config configs/resnet_fer.py:size=tiny,data=ferplus \
      --workdir runs/ferplus/resnet_fer_tiny --config.data_dir=/path/to/ferplus
  python launch.py --mode=evaluate --workdir runs/xcao2 \
      --config.data_dir=/path/with/a/test/split --config.split=test

Running the same training command again resumes from the run's last checkpoint.
See docs/training.md for every option.
"""

from __future__ import annotations

import os
import time

import numpy as np

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fer.data import errors as data_errors
from fer.training import config_check

_HERE = os.path.dirname(os.path.abspath(__file__))

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(_HERE, "configs", "demo.py"),
    "Config file and its arguments (configs/resnet_fer.py:size=tiny,data=ferplus); "
    "fields can be overridden with --config.<field>=value.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Run directory (checkpoints, logs, reports). Default: runs/demo "
    "for the demo set, runs/<model>_<dataset> otherwise.")
_MODE = flags.DEFINE_enum(
    "mode", "train", ["train", "evaluate"],
    "train: train (or resume), evaluate the best checkpoint, export. evaluate: score "
    "the workdir's checkpoint (--config.checkpoint=best|latest|<epoch>) or an exported "
    "model (--config.checkpoint=DIR or FILE.tflite; its report goes to --workdir when "
    "given) on --config.split.")

DEMO_NOTE = (
    "This run uses fer's embedded DEMO set: synthetic images, not real faces. Its "
    "accuracy says nothing about facial expressions. To train on real data, point fer "
    "at a dataset in its publisher's layout, e.g. FER+ (FER2013Train/, FER2013Valid/, "
    "FER2013Test/ each with label.csv):\n"
    "  python launch.py --config configs/seed_designs.py:model=xcao2 --workdir runs/xcao2 "
    "--config.dataset=ferplus --config.data_dir=/path/to/ferplus\n"
    "(also --config.dataset=fer2013 with the folder of fer2013.csv, affectnet, or "
    "image_folder with one subfolder per class; see docs/training.md).")


def default_workdir(config) -> str:
    if config.dataset == "demo":
        return os.path.join("runs", "demo")
    return os.path.join("runs", f"{config.model}_{config.dataset}")


def count_params(variables) -> int:
    import jax
    return int(sum(x.size for x in jax.tree.leaves(variables["params"])))


def _banner(text: str) -> None:
    line = "=" * 78
    print(f"\n{line}\n{text}\n{line}", flush=True)


def _export(workdir: str, variants) -> str | None:
    """fer.export when it is installed in this checkout; None (and why) otherwise."""
    # `--config.export_variants=float32,int8` arrives as one string: split it.
    variants = tuple(v.strip() for item in variants or () for v in str(item).split(",")
                     if v.strip())
    if not variants:
        print("Export skipped: config.export_variants is empty.", flush=True)
        return None
    try:
        from fer.export import tflite as export_tflite
    except ImportError as e:
        print(f"Export skipped: fer.export.tflite is not available ({e}).", flush=True)
        return None
    try:
        return export_tflite.export_workdir(workdir, variants=variants)
    except export_tflite.QuantizationRefused as refused:
        # The other variants and export.json are written before the refusal: a refused
        # quantized model must not cost the run its report row or its float models.
        print(f"Export: {refused}", flush=True)
        return os.path.join(workdir, export_tflite.EXPORT_DIRNAME)


def show_shipped_model() -> None:
    """What `fer predict` does out of the box: the shipped model on a real photo.

    The demo run above trains on synthetic faces; this shows the model fer ships
    (fer/assets/model, trained on FER+) on scikit-image's bundled astronaut
    portrait, offline, through the gallery's own detector and classifier.
    """
    try:
        from skimage import data as skdata

        from fer import labels as labels_lib
        from fer.gallery import analyze as analyze_lib
        from fer.gallery import photos as photos_lib
        from fer.gallery import scan as scan_lib
        model_dir = analyze_lib.default_model_dir()
        analyzer = scan_lib.make_analyzer(model_dir, "blazeface", thumbnail_side=None)
    except (ImportError, FileNotFoundError) as e:
        print(f"Shipped model demo skipped: {e}", flush=True)
        return
    image = skdata.astronaut()
    result = analyzer.analyze_photo(photos_lib.Photo(image, image.shape[1], image.shape[0],
                                                     "png"))
    _banner(f"The shipped model ({model_dir}) on a real photo (scikit-image astronaut):")
    for face in result.faces:
        print(f"  face at {tuple(round(v, 2) for v in face.box)}: "
              f"{labels_lib.EMOJI.get(face.label, '')} {face.label} "
              f"{face.confidence:.0%}", flush=True)
    print("Your own photos: fer predict PHOTO...   |   fer scan DIR && fer gallery --serve",
          flush=True)


def provenance(config) -> dict:
    """What a result depends on beyond its config: data version, seed, hardware.

    The data version fingerprints the dataset, its label set and every split's
    per-class counts, read through the training pipeline: runs that report the
    same one trained and validated on the same splits, whatever folder held them.
    """
    import hashlib
    import platform

    import jax

    from fer.training import train as train_lib

    info = train_lib.default_pipeline().get_dataset_info(config)
    digest = hashlib.sha256(f"{config.dataset}|{info.label_set.name}".encode())
    for name in sorted(info.class_counts):
        digest.update(name.encode())
        digest.update(np.asarray(info.class_counts[name], np.int64).tobytes())
    devices = jax.devices()
    return {
        "seed": int(config.seed),
        "data_version": digest.hexdigest()[:16],
        "split_sizes": {n: int(c) for n, c in info.num_examples.items()},
        # Bad images or rows the build skipped, {split: {reason: count}} (also when
        # this run reused an earlier build: they are stored with it).
        "skipped": getattr(info, "skipped", {}),
        "hardware": {"backend": jax.default_backend(), "devices": len(devices),
                     "device_kind": devices[0].device_kind, "hosts": jax.process_count(),
                     "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
    }


def train_main(config, workdir: str) -> dict:
    import jax

    from fer.evaluation import report as report_lib
    from fer.training import checkpoint as checkpoint_lib
    from fer.training import train as train_lib

    if config.dataset == "demo" and jax.process_index() == 0:
        _banner(DEMO_NOTE)
    started = time.time()
    history = train_lib.train_and_evaluate(config, workdir).history
    model, variables, spec, _ = checkpoint_lib.load_model(workdir, "best")
    summary = train_lib.evaluate(config, model, variables, config.eval_split)
    summary.update(design=config.model, params=count_params(variables),
                   checkpoint="best", workdir=os.path.abspath(workdir),
                   # Training time over every epoch (resumed runs included) and this
                   # command's own wall time.
                   train_seconds=round(sum(r.get("epoch_seconds", 0.0) for r in history), 1),
                   wall_seconds=round(time.time() - started, 1), **provenance(config))
    if config.dataset == "demo":
        summary["note"] = "Demo data (synthetic): the numbers are not FER results."
    if jax.process_index() == 0:
        paths = report_lib.write_report(workdir, summary, history)
        print(f"Report: {paths['markdown']}", flush=True)
        exported = _export(workdir, config.export_variants)
        if exported:
            print(f"Exported: {exported}", flush=True)
        print("\n" + report_lib.comparison_table([summary]), flush=True)
        if config.dataset == "demo":
            print("\n(demo data: see the note above for real data)", flush=True)
            show_shipped_model()
    return summary


def evaluation_config(workdir: str, flag_config, overrides: dict):
    """The run's own config.json with this command's --config.* overrides on top."""
    from fer.training import checkpoint as checkpoint_lib

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


def evaluate_main(config, workdir: str) -> dict:
    from fer.evaluation import report as report_lib
    from fer.training import checkpoint as checkpoint_lib
    from fer.training import train as train_lib

    split = config.split
    source = str(config.checkpoint)
    if _is_export(source):
        summary = _evaluate_export(config, source, split)
        name = os.path.splitext(os.path.basename(summary["checkpoint"]))[0]
        out_dir = os.path.join(workdir or _export_report_dir(source), f"eval_{split}_{name}")
    else:
        which = int(source) if source.isdigit() else source
        model, variables, spec, _ = checkpoint_lib.load_model(workdir, which)
        info = train_lib.default_pipeline().get_dataset_info(config)
        data_labels = getattr(info.label_set, "name", info.label_set)
        if data_labels != spec.label_set:
            raise data_errors.DataError(
                f"the model in {workdir} predicts {spec.label_set} labels but dataset "
                f"{config.dataset!r} has {data_labels} labels: export the run "
                "(python -m fer.export --workdir RUN) and evaluate the export "
                "(--config.checkpoint=RUN/export), which reads it through the shared "
                "classes by name")
        summary = train_lib.evaluate(config, model, variables, split)
        summary["skipped"] = getattr(info, "skipped", {})
        summary.update(design=spec.design, params=count_params(variables),
                       checkpoint=source)
        out_dir = os.path.join(workdir, f"eval_{split}")
    import jax
    if jax.process_index() == 0:  # Every process evaluates; one writes.
        paths = report_lib.write_report(out_dir, summary)
        print(f"Report: {paths['markdown']}")
        print("\n" + report_lib.comparison_table([summary]), flush=True)
    return summary


def _export_report_dir(source: str) -> str:
    """Beside an exported model; runs/shipped_model for the one in the package."""
    from fer import spec as spec_lib

    directory = source if os.path.isdir(source) else os.path.dirname(source) or "."
    if os.path.realpath(directory) == os.path.realpath(spec_lib.SHIPPED_MODEL_DIR):
        return os.path.join("runs", "shipped_model")
    return directory


def _is_export(source: str) -> bool:
    """An exported model: a directory (model.tflite + model.json) or a .tflite file."""
    return os.path.isdir(source) or source.endswith(".tflite")


def _evaluate_export(config, source: str, split: str) -> dict:
    try:
        from fer.export import runtime
    except ImportError as e:
        raise SystemExit(f"Evaluating an exported model needs fer.export.runtime: {e}")
    return runtime.evaluate_export(source, config, split)


def _quiet_library_logs() -> None:
    """Keeps orbax's and jax's per-save INFO chatter out of the run's own log."""
    import logging as py_logging

    class _Filter(py_logging.Filter):
        def filter(self, record):
            noisy = any(part in record.pathname for part in ("/orbax/", "/jax/"))
            return record.levelno >= py_logging.WARNING or not noisy

    logging.get_absl_handler().addFilter(_Filter())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config_check.check(_CONFIG.value)  # Before any data or model work.
    _quiet_library_logs()
    from fer.training import train as train_lib

    train_lib.maybe_initialize_distributed()
    config = _CONFIG.value
    if _MODE.value == "train":
        workdir = _WORKDIR.value or default_workdir(config)
        train_main(config, workdir)
    else:
        if not _WORKDIR.value and not _is_export(str(config.checkpoint)):
            raise app.UsageError("--mode=evaluate needs --workdir (a trained run) or "
                                 "--config.checkpoint=<exported model directory>")
        overrides = config_flags.get_override_values(flags.FLAGS["config"])
        config = evaluation_config(_WORKDIR.value or "", config, overrides)
        config_check.check(config)
        evaluate_main(config, _WORKDIR.value or "")


def reporting_user_errors(main_fn):
    """`main_fn` with bad settings or bad data ending in one clear line (exit status 1),
    not a traceback: the message names the field, or the file and row."""
    def run(argv):
        try:
            return main_fn(argv)
        except (config_check.ConfigError, *data_errors.USER_ERRORS) as e:
            raise SystemExit(f"error: {e}") from None
    return run


if __name__ == "__main__":
    app.run(reporting_user_errors(main))
