"""What a training run logs: a line per epoch, a line of metrics, and its settings for experiment trackers."""

from __future__ import annotations

from typing import Any

from beats_train.config import TrainingConfig

__all__ = ["epoch_line", "flat_hyperparameters", "metrics_line", "metrics_summary"]


def metrics_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The headline metrics of an evaluation (loss, accuracy, macro-F1, mAP, micro-F1: those it has)."""
    keys = ("loss", "accuracy", "macro_f1", "map", "micro_f1")
    return {key: float(metrics[key]) for key in keys if key in metrics}


def epoch_line(row: dict[str, Any], max_epochs: int, monitor: str, best: bool) -> str:
    """The log line of a finished epoch: its training and validation metrics, learning rate and time.

    Args:
        row: the epoch's row of ``metrics.csv``.
        max_epochs: the run's most epochs.
        monitor: the metric that picks the best epoch.
        best: whether this epoch is the best so far.

    Returns:
        One line.
    """
    parts = [f"epoch {row['epoch']}/{max_epochs}"]
    parts += [f"{key} {value:.4f}" for key, value in row.items() if key.startswith(("train_", "val_"))]
    parts.append(f"lr {row['learning_rate']:.2e}")
    parts.append(f"{row['seconds']:.1f}s")
    if best:
        parts.append(f"best {monitor}")
    return "  ".join(parts)


def metrics_line(metrics: dict[str, Any]) -> str:
    """The headline metrics of an evaluation on one line."""
    return "  ".join(f"{key} {value:.4f}" for key, value in metrics_summary(metrics).items())


def flat_hyperparameters(config: TrainingConfig) -> dict[str, Any]:
    """The training configuration as flat ``name: value`` pairs, as experiment trackers take them."""
    flat: dict[str, Any] = {}
    for key, value in config.to_dict().items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            flat[key] = str(value)
        else:
            flat[key] = value
    return {key: ("none" if value is None else value) for key, value in flat.items()}
