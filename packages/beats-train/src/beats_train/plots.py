"""Pictures of a run: the confusion matrix and the training curves, as PNG files (matplotlib).

Figures are drawn with matplotlib's object API on an Agg canvas, so nothing touches the
global pyplot state or needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from beats_core.atomic import atomic_path

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def plot_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Draw a confusion matrix, each row normalised to the share of its true class, with the counts.

    Args:
        matrix: (K, K) counts, row = true class, column = predicted class.
        labels: the K class names.
        path: the PNG file to write (atomically).
        title: a title above the matrix.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    size = len(labels)
    side = min(max(4.0, 0.45 * size + 2.5), 24.0)
    figure = Figure(figsize=(side + 1.0, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true class")
    axes.set_xticks(
        range(size), labels=labels, rotation=90 if size > 6 else 45, ha="center" if size > 6 else "right"
    )
    axes.set_yticks(range(size), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if size <= 30:
        for row in range(size):
            for column in range(size):
                if counts[row, column]:
                    color = "white" if shares[row, column] > 0.5 else "black"
                    axes.text(
                        column,
                        row,
                        f"{int(counts[row, column])}",
                        ha="center",
                        va="center",
                        color=color,
                        fontsize=8,
                    )
    accuracy = np.trace(counts) / max(counts.sum(), 1.0)
    axes.set_title(f"{title} (accuracy {accuracy:.1%})".strip())
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    return Path(path)


def plot_training_curves(history: pd.DataFrame, path: str | Path, *, metric: str = "accuracy") -> Path:
    """Draw the loss curves, the validation metric and the learning rate per epoch.

    Args:
        history: one row per epoch with ``epoch``, ``train_loss``, ``val_loss``,
            ``val_<metric>`` and ``learning_rate`` columns (as in ``metrics.csv``).
        path: the PNG file to write (atomically).
        metric: the validation metric shown in the second panel.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4))
    FigureCanvasAgg(figure)
    loss, quality, rate = figure.subplots(1, 3)
    epochs = history["epoch"]
    for column, name in (("train_loss", "training"), ("val_loss", "validation")):
        if column in history:
            loss.plot(epochs, history[column], marker="o", markersize=3, label=name)
    loss.set(title="loss", xlabel="epoch")
    loss.legend()
    column = f"val_{metric}"
    if column in history:
        quality.plot(epochs, history[column], marker="o", markersize=3, color="tab:green")
        best = history[column].idxmin() if metric == "loss" else history[column].idxmax()
        quality.axvline(history.loc[best, "epoch"], color="gray", linestyle="--", label="best epoch")
        quality.legend()
    quality.set(title=f"validation {metric}", xlabel="epoch")
    if "learning_rate" in history:
        rate.plot(epochs, history["learning_rate"], color="tab:red")
        rate.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    rate.set(title="learning rate (head, end of epoch)", xlabel="epoch")
    for axes in (loss, quality, rate):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    return Path(path)
