"""Where a run's numbers go: metrics.jsonl, TensorBoard events, a progress bar."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

import tqdm

METRICS_FILENAME = "metrics.jsonl"


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


class MetricWriter:
    """Appends one JSON object per epoch to metrics.jsonl and mirrors it to TensorBoard.

    A resumed run first drops rows of epochs after its checkpoint (written by the
    interrupted run but lost with it), so the file reads like one clean run.
    A disabled writer (processes other than 0) neither writes nor reads the file,
    which process 0 may be rewriting: its history holds no earlier epochs.
    """

    def __init__(self, workdir: str, resume_after_epoch: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, METRICS_FILENAME)
        self._rows = []
        self._tb = None
        if not enabled:
            return
        self._rows = [r for r in read_metrics(workdir)
                      if r.get("epoch", 0) <= resume_after_epoch]
        os.makedirs(workdir, exist_ok=True)
        with open(self.path, "w") as f:
            for row in self._rows:
                f.write(json.dumps(row) + "\n")
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
            self._tb = EventFileWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:  # TensorBoard is optional for a run.
            self._tb = None

    def history(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows]

    def write(self, row: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        row = {k: _jsonable(v) for k, v in row.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            from tensorboard.compat.proto import event_pb2, summary_pb2
            values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                      for k, v in row.items()
                      if k not in ("epoch", "step") and isinstance(v, (int, float))]
            self._tb.add_event(event_pb2.Event(
                wall_time=time.time(), step=int(row.get("epoch", 0)),
                summary=summary_pb2.Summary(value=values)))
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def progress_bar(total: int, initial: int = 0, enabled: bool = True) -> tqdm.tqdm:
    """One bar for the whole run in images: rate is images/s, ETA to the last epoch."""
    return tqdm.tqdm(total=total, initial=initial, unit="img", unit_scale=True,
                     dynamic_ncols=True, disable=not enabled, desc="train",
                     smoothing=0.1)
