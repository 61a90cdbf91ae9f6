"""Train, evaluate and export a fer model; or evaluate a trained one on any split.

  python launch.py                      # the embedded demo: train, evaluate, export
  python launch.py --config configs/resnet_fer.py:size=tiny,data=ferplus \
      --workdir runs/ferplus/resnet_fer_tiny --config.data_dir=/path/to/ferplus
  python launch.py --mode=evaluate --workdir runs/xcao2 \
      --config.data_dir=/path/with/a/test/split --config.split=test

Running the same training command again resumes from the run's last checkpoint.
See docs/training.md for every option; the modes live in fer/launch_modes.py.
"""

import logging as py_logging
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fer.data import errors as data_errors
from fer.training import config_check

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "demo.py"),
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


class _QuietLibraries(py_logging.Filter):
    """Keeps orbax's and jax's per-save INFO chatter out of the run's own log."""

    def filter(self, record):
        noisy = any(part in record.pathname for part in ("/orbax/", "/jax/"))
        return record.levelno >= py_logging.WARNING or not noisy


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    config_check.check(config)  # Before any data or model work (and before JAX loads).
    logging.get_absl_handler().addFilter(_QuietLibraries())
    from fer import launch_modes
    from fer.training import train

    train.maybe_initialize_distributed()
    if _MODE.value == "train":
        launch_modes.train(config, _WORKDIR.value or launch_modes.default_workdir(config))
        return
    workdir = _WORKDIR.value or ""
    if not workdir and not launch_modes.is_export(str(config.checkpoint)):
        raise app.UsageError("--mode=evaluate needs --workdir (a trained run) or "
                             "--config.checkpoint=<exported model directory>")
    overrides = config_flags.get_override_values(flags.FLAGS["config"])
    config = launch_modes.evaluation_config(workdir, config, overrides)
    config_check.check(config)
    launch_modes.evaluate(config, workdir)


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
