"""The report's figures: confusion heatmap (seed Figure 27) and curves (Figure 26)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Files only; no display needed on servers.
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(confusion: np.ndarray, labels: Sequence[str], path: str,
                   title: str = "") -> str:
    """Row-normalised heatmap (recall on the diagonal) annotated with counts."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true label")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_curves(history: Sequence[Mapping[str, Any]], path: str, title: str = "") -> str:
    """Accuracy and loss per epoch, train and validation, side by side."""
    epochs = [row["epoch"] for row in history]

    def series(key):
        return [np.nan if row.get(key) is None else row[key] for row in history]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in ((left, "accuracy"), (right, "loss")):
        ax.plot(epochs, series(f"train_{metric}"), "o-", label="train")
        ax.plot(epochs, series(f"val_{metric}"), "s-", label="validation")
        if metric == "accuracy":
            ax.plot(epochs, series("val_balanced_accuracy"), "^--",
                    label="validation (balanced)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_reliability(counts: np.ndarray, path: str, title: str = "") -> str:
    """Reliability diagram: accuracy against mean top probability per confidence bin.

    `counts` is fer.evaluation.metrics.calibration_counts (faces, summed confidence,
    correct per bin); bars show each bin's accuracy, the diagonal perfect
    calibration, and the lower panel how many faces each bin holds.
    """
    counts = np.asarray(counts, np.float64)
    n = len(counts)
    edges = np.linspace(0.0, 1.0, n + 1)
    faces = counts[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(faces > 0, counts[:, 2] / faces, np.nan)
        confidence = np.where(faces > 0, counts[:, 1] / faces, np.nan)
    total = faces.sum()
    ece = float(np.abs(counts[:, 2] - counts[:, 1]).sum() / total) if total else np.nan
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.bar(edges[:-1], np.nan_to_num(accuracy), width=1.0 / n, align="edge",
            edgecolor="black", alpha=0.7, label="accuracy")
    top.plot(confidence, accuracy, "ro", ms=3, label="bin at its mean confidence")
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set_ylabel("accuracy in bin")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title + ': ' if title else ''}ECE {100 * ece:.2f}%")
    bottom.bar(edges[:-1], faces, width=1.0 / n, align="edge", edgecolor="black")
    bottom.set_xlabel("top probability")
    bottom.set_ylabel("faces")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
