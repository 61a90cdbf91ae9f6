"""Where a run's numbers go: metrics.jsonl, TensorBoard (clu's metric_writers), a bar.

Two records, each with its reader:
- `metrics.jsonl`: one JSON object per epoch, read back by `read_metrics` (reports,
  benchmarks, a resumed run's history).
- TensorBoard events under `workdir/tensorboard`, written by clu's default writer as
  flax's examples do: `train/loss`, `train/accuracy`, `train/learning_rate` every
  `config.log_every_steps` steps, `val/...` each epoch (at the same global step), and
  the flattened config as hparams once.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import tqdm

METRICS_FILENAME = "metrics.jsonl"
TENSORBOARD_DIRNAME = "tensorboard"
# Per-epoch row fields mirrored to TensorBoard, by tag.
_EPOCH_TAGS = {"val_loss": "val/loss", "val_accuracy": "val/accuracy",
               "val_balanced_accuracy": "val/balanced_accuracy",
               "val_macro_f1": "val/macro_f1",
               "images_per_second": "train/images_per_second"}


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """Every row of a run's metrics.jsonl (one JSON object per line)."""
    path = os.path.join(workdir, METRICS_FILENAME)
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{number} is not JSON: {e}") from None
    return rows


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def flat_hparams(config) -> dict[str, bool | int | float | str]:
    """A ConfigDict as TensorBoard hparams: 'a.b' keys, scalars kept, the rest as JSON."""
    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                yield from walk(value, name + ".")
            elif isinstance(value, (bool, int, float, str)):
                yield name, value
            else:
                yield name, json.dumps(value)
    return dict(walk(json.loads(config.to_json_best_effort()), ""))


class MetricWriter:
    """metrics.jsonl (per epoch) and clu's TensorBoard writer (per log step and epoch).

    A resumed run first drops rows of epochs after its checkpoint (written by the
    interrupted run but lost with it), so the file reads like one clean run.
    A disabled writer (processes other than 0) neither writes nor reads the file,
    which process 0 may be rewriting: its history holds no earlier epochs, and clu
    only logs its scalars (flax's `just_logging=jax.process_index() > 0`).
    """

    def __init__(self, workdir: str, resume_after_epoch: int = 0, enabled: bool = True):
        from clu import metric_writers  # Imported here: it loads TensorFlow.

        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS_FILENAME)
        self._rows = []
        self.summary = metric_writers.create_default_writer(
            os.path.join(workdir, TENSORBOARD_DIRNAME), just_logging=not enabled)
        if not enabled:
            return
        self._rows = [r for r in read_metrics(workdir)
                      if r.get("epoch", 0) <= resume_after_epoch]
        os.makedirs(workdir, exist_ok=True)
        with open(self.path, "w") as f:
            for row in self._rows:
                f.write(json.dumps(row) + "\n")

    def history(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def write_hparams(self, config) -> None:
        self.summary.write_hparams(flat_hparams(config))

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Tagged scalars (e.g. 'train/loss') at a global step."""
        self.summary.write_scalars(int(step), {k: float(v) for k, v in scalars.items()})

    def write(self, row: Mapping[str, Any]) -> None:
        """One epoch's row: to metrics.jsonl, and its val/ scalars at the row's step."""
        row = {k: _jsonable(v) for k, v in row.items()}
        self.write_scalars(row["step"], {tag: row[k] for k, tag in _EPOCH_TAGS.items()
                                         if isinstance(row.get(k), (int, float))})
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self.summary.flush()
        self.summary.close()


def progress_bar(total: int, initial: int = 0, enabled: bool = True) -> tqdm.tqdm:
    """One bar for the whole run in images: rate is images/s, ETA to the last epoch."""
    return tqdm.tqdm(total=total, initial=initial, unit="img", unit_scale=True,
                     dynamic_ncols=True, disable=not enabled, desc="train",
                     smoothing=0.1)
