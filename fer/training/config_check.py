"""Settings checked before any data or model work: one line per bad field.

A bad number found late costs a build, an epoch or a silent divergence (a negative
learning rate trains "fine" to a loss of 1e13); found here it costs nothing. Every
numeric field of configs/default.py has a rule (tests/test_bad_inputs.py holds the
list to that); fields a config adds without a rule are left to the code that reads
them. Only the standard library: launch.py runs this before importing JAX.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

Rule = tuple[Callable[[Any], bool], str]  # (is it valid, what would be valid).


def _integer(low: int, high: int | None = None) -> Rule:
    def ok(v):
        return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                and v >= low and (high is None or v <= high))
    text = f"an integer >= {low}" if high is None else f"an integer {low}..{high}"
    return ok, text


def _real(low: float, high: float | None = None, *, low_open: bool = False,
          high_open: bool = False) -> Rule:
    def ok(v):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            return False
        above = v > low if low_open else v >= low
        below = high is None or (v < high if high_open else v <= high)
        return above and below
    left = f"{'>' if low_open else '>='} {low:g}"
    if high is None:
        return ok, f"a finite number {left}"
    return ok, (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                f"{')' if high_open else ']'}")


RULES: dict[str, Rule] = {
    "image_size": _integer(8),  # Smaller leaves the designs' pooling nothing to pool.
    "channels": (lambda v: v in (1, 3) and not isinstance(v, bool), "1 (gray) or 3 (RGB)"),
    "class_weight_power": _real(0.0),
    "num_workers": _integer(0),
    "seed": _integer(0, 2**32 - 1),
    "learning_rate": _real(0.0, low_open=True),
    "momentum": _real(0.0, 1.0, high_open=True),
    "warmup_epochs": _real(0.0),
    "weight_decay": _real(0.0),
    "grad_clip_norm": _real(0.0),
    "label_smoothing": _real(0.0, 1.0, high_open=True),
    "distill_weight": _real(0.0, 1.0),  # Of the teacher in each target.
    "mixup_alpha": _real(0.0, 4.0),
    "logit_adjustment": _real(0.0, 2.0),  # Prior correction's range (fer.models.ensemble).
    "logit_adjustment_prior": (lambda v: v in ("targets", "labels"), "'targets' or 'labels'"),
    "batch_size": _integer(0),  # 0: per_device_batch_size x devices.
    "per_device_batch_size": _integer(1),
    "eval_batch_size": _integer(0),  # 0: batch_size.
    "epochs": _integer(1),
    "steps_per_epoch": _integer(0),  # 0: the whole split.
    "log_every_steps": _integer(1),
    "checkpoint_every_epochs": _integer(1),
    "checkpoint_every_steps": _integer(0),  # 0: only at epoch ends.
    "keep_checkpoints": _integer(1),
    "augment_max_shift": _real(0.0, 0.5),  # Of the side: more moves the face out of view.
    "augment_max_rotation": _real(0.0, 180.0),  # Degrees.
    "augment_max_scale": _real(0.0, 1.0, high_open=True),  # 1 would zoom to nothing.
    "augment_noise_std": _real(0.0),
    "model_kwargs.dropout_rate": _real(0.0, 1.0, high_open=True),
    "model_kwargs.stem_stride": _integer(1),
}


class ConfigError(ValueError):
    """Bad settings; the message has one line per bad field."""


def _value(config: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = config
    for name in path.split("."):
        if not hasattr(node, "get") or name not in node:
            return False, None
        node = node[name]
    return True, node


def problems(config: Mapping[str, Any]) -> list[str]:
    """'config.<field>=<value>: expected <what is valid>' for each bad field."""
    lines = []
    for path, (ok, valid) in RULES.items():
        present, value = _value(config, path)
        if present and not ok(value):
            lines.append(f"config.{path}={value!r}: expected {valid}")
    present, warmup = _value(config, "warmup_epochs")
    _, epochs = _value(config, "epochs")
    if (present and RULES["warmup_epochs"][0](warmup) and RULES["epochs"][0](epochs)
            and warmup > epochs):
        lines.append(f"config.warmup_epochs={warmup!r}: expected at most "
                     f"config.epochs={epochs} (the warm-up would never end)")
    return lines


def check(config: Mapping[str, Any]) -> None:
    """ConfigError listing every bad field; nothing when all are valid."""
    found = problems(config)
    if found:
        raise ConfigError(f"{len(found)} bad setting{'s' if len(found) > 1 else ''}:\n  "
                          + "\n  ".join(found))
