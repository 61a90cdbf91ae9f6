"""What a result depends on beyond its config: data version, seed, hardware, versions."""

from __future__ import annotations

import hashlib
import os
import platform
from typing import Any

import jax
import ml_collections
import numpy as np


def data_version(dataset: str, info) -> str:
    """Fingerprint of a dataset: its name, label set and every split's per-class counts.

    Runs that report the same one trained and validated on the same splits,
    whatever folder held them.
    """
    label_set = getattr(info.label_set, "name", info.label_set)
    digest = hashlib.sha256(f"{dataset}|{label_set}".encode())
    for name in sorted(info.class_counts):
        digest.update(name.encode())
        digest.update(np.asarray(info.class_counts[name], np.int64).tobytes())
    return digest.hexdigest()[:16]


def provenance(config: ml_collections.ConfigDict, info) -> dict[str, Any]:
    """report.json's provenance fields for a run on `info` (the pipeline's dataset info)."""
    devices = jax.devices()
    return {
        "seed": int(config.seed),
        "data_version": data_version(config.dataset, info),
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
