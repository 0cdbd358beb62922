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


def plot_training_curves(
    history: pd.DataFrame,
    path: str | Path,
    *,
    metric: str = "accuracy",
    learning_rates: Sequence[Sequence[float]] | None = None,
) -> Path:
    """Draw the losses, the accuracies (and the monitored metric) per epoch, and the learning rate per step.

    Epochs are whole numbers on every axis; accuracies and other scores share a 0 to 1
    scale (a flat line stays flat), and a dashed line marks the best epoch.

    Args:
        history: one row per epoch with ``epoch``, ``train_loss``, ``val_loss``,
            ``train_accuracy``, ``val_accuracy``, ``val_<metric>`` and ``learning_rate``
            columns (as in ``metrics.csv``; those missing are left out).
        path: the PNG file to write (atomically).
        metric: the validation metric that picks the best epoch.
        learning_rates: ``[position in epochs, learning rate]`` per optimiser step (the
            warm-up and the decay as they happened); without it, the rate at the end of
            each epoch.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(14, 4.2))
    FigureCanvasAgg(figure)
    loss, quality, rate = figure.subplots(1, 3)
    epochs = history["epoch"]
    best = _best_epoch(history, metric)
    for column, name in (("train_loss", "training"), ("val_loss", "validation")):
        if column in history:
            loss.plot(epochs, history[column], marker="o", markersize=3, label=name)
    loss.set(title="loss", xlabel="epoch")
    candidates = {"train_accuracy": "training accuracy", "val_accuracy": "validation accuracy"}
    if metric != "loss":
        candidates[f"val_{metric}"] = f"validation {metric}"
    scores = [(column, name) for column, name in candidates.items() if column in history]
    for column, name in scores:
        quality.plot(epochs, history[column], marker="o", markersize=3, label=name)
    quality.set(
        title=" and ".join(dict.fromkeys(n.split()[-1] for _, n in scores)) or "scores", xlabel="epoch"
    )
    quality.set_ylim(-0.02, 1.02)
    for axes in (loss, quality):
        if best is not None:
            axes.axvline(best, color="gray", linestyle="--", label="best epoch")
        if axes.has_data():
            axes.legend()
    if learning_rates:
        positions, values = zip(*learning_rates, strict=True)
        rate.plot(positions, values, color="tab:red")
        rate.set(title="learning rate (head) per step")
    elif "learning_rate" in history:
        rate.plot(epochs, history["learning_rate"], color="tab:red", marker="o", markersize=3)
        rate.set(title="learning rate (head), end of epoch")
    rate.set(xlabel="epoch")
    rate.set_ylim(bottom=0.0)
    rate.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))  # no offset label
    last = float(epochs.max())
    for axes in (loss, quality, rate):  # one scale of whole epochs: 0 (the start) to the last one
        axes.set_xlim(-0.04 * last, 1.04 * last)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    return Path(path)


def _best_epoch(history: pd.DataFrame, metric: str) -> int | None:
    column = f"val_{metric}"
    if column not in history or history[column].isna().all():
        return None
    best = history[column].idxmin() if metric == "loss" else history[column].idxmax()
    return int(history.loc[best, "epoch"])
