"""Any model directory fer writes, loaded by one function: a run, an ensemble, an export.

Sits above fer.training and fer.export (it imports both; neither imports it):

    model = fer.loading.load("runs/ferplus")      # a training workdir ('best' checkpoint)
    model = fer.loading.load("runs/ensemble")     # fer.export.make_ensemble's directory
    model = fer.loading.load("runs/ferplus/export", variant="int8")  # LiteRT
    summary = fer.evaluation.evaluate.evaluate(config, "test", model.predictor(config))
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from fer import spec as spec_lib


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A loaded model: its spec and config, and a Flax module + variables or a classifier."""

    spec: spec_lib.ModelSpec
    config: Any = None          # The run's ConfigDict; None for a bare export.
    module: Any = None          # Flax module (runs and ensembles)...
    variables: Any = None
    classifier: Any = None      # ...or fer.export.runtime.LiteRTClassifier (exports).

    def predictor(self, config=None):
        """fer.evaluation.evaluate's predictor of this model."""
        from fer.evaluation import evaluate as evaluate_lib  # noqa: PLC0415

        if self.classifier is not None:
            from fer.export import runtime  # noqa: PLC0415
            return runtime.predictor(self.classifier)
        return evaluate_lib.model_predict(
            self.module, self.variables,
            batch_size=evaluate_lib.eval_batch_size(config or self.config))


def is_export(directory: str) -> bool:
    return os.path.isfile(directory) or os.path.exists(os.path.join(directory, "model.tflite"))


def load_model(directory: str, which: str | int = "best"):
    """(module, variables, spec, config) of a run's workdir or an ensemble directory.

    `which`: 'best' (best validation balanced accuracy; the latest if the run
    never recorded one), 'latest', or an epoch number. An ensemble directory
    rebuilds its members' checkpoints (fer.export.make_ensemble).
    """
    from fer.export import make_ensemble as ensemble_lib  # noqa: PLC0415
    from fer.training import checkpoint as checkpoint_lib  # noqa: PLC0415

    if os.path.exists(os.path.join(directory, ensemble_lib.ENSEMBLE_RECORD)):
        return ensemble_lib.load(directory)
    return checkpoint_lib.restore_model(directory, which)


def load(directory: str, which: str | int = "best", *, variant: str | None = None,
         num_threads: int = 1) -> Loaded:
    """A run, an ensemble or an export directory (model.tflite + model.json)."""
    if is_export(directory):
        from fer.export import runtime  # noqa: PLC0415
        from fer.training import checkpoint as checkpoint_lib  # noqa: PLC0415

        classifier = runtime.LiteRTClassifier(directory, num_threads=num_threads,
                                              variant=variant)
        export_dir = directory if os.path.isdir(directory) else os.path.dirname(directory)
        run = os.path.dirname(os.path.abspath(export_dir))  # run/export -> run
        config = (checkpoint_lib.load_config(run)
                  if os.path.exists(os.path.join(run, "config.json")) else None)
        return Loaded(spec=classifier.spec, config=config, classifier=classifier)
    module, variables, spec, config = load_model(directory, which)
    return Loaded(spec=spec, config=config, module=module, variables=variables)
