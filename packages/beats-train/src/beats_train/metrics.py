"""Classification metrics in plain numpy: accuracy, F1, per-class precision and recall, mAP.

Single-label: targets are class indices (N,) and scores (N, K). Multi-label: targets are
multi-hot (N, K). Conventions follow scikit-learn: a class with no prediction has
precision 0, a class with no example has recall 0, and the macro averages cover the
classes that occur in the targets or the predictions. Average precision is computed over
distinct score thresholds (ties counted together), as ``average_precision_score`` does;
mAP averages it over the classes that have at least one positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from beats_core.audioset import display_name

__all__ = [
    "average_precision",
    "classification_metrics",
    "confusion_matrix",
    "format_classification_report",
    "multilabel_metrics",
]


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        targets: int (N,) true classes.
        predictions: int (N,) predicted classes.
        num_classes: K.

    Returns:
        int64 (K, K); row = true class, column = predicted class.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def classification_metrics(targets: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of a single-label classifier.

    Args:
        targets: int (N,) true class indices.
        scores: float (N, K) class scores (probabilities or logits); the prediction is the argmax.
        labels: the K class names.

    Returns:
        A dict: ``accuracy``, ``macro_f1``, ``macro_precision``, ``macro_recall``,
        ``weighted_f1``, ``num_samples``, ``per_class`` (label -> ``precision``, ``recall``,
        ``f1``, ``support``) and ``confusion_matrix`` (K x K list of counts).
    """
    targets = np.asarray(targets, dtype=np.int64)
    predictions = np.asarray(scores).argmax(axis=1) if len(targets) else np.zeros(0, dtype=np.int64)
    matrix = confusion_matrix(targets, predictions, len(labels))
    true_positives = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    support = matrix.sum(axis=1).astype(float)
    precision = np.divide(true_positives, predicted, out=np.zeros_like(true_positives), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros_like(true_positives), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    present = (support > 0) | (predicted > 0)
    total = support.sum()
    return {
        "accuracy": float(true_positives.sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "num_samples": int(total),
        "per_class": {
            label: {
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
    }


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one class: the area under its precision-recall curve, step-wise.

    Args:
        targets: (N,) 0/1 labels.
        scores: (N,) scores; higher means more likely positive.

    Returns:
        AP in [0, 1]; NaN when there is no positive.
    """
    targets = np.asarray(targets, dtype=float)
    if targets.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    sorted_scores, sorted_targets = np.asarray(scores, dtype=float)[order], targets[order]
    last_of_threshold = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_targets) - 1]
    true_positives = np.cumsum(sorted_targets)[last_of_threshold]
    precision = true_positives / (last_of_threshold + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(
    targets: np.ndarray, scores: np.ndarray, labels: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics of a multi-label classifier.

    Args:
        targets: (N, K) multi-hot true labels.
        scores: (N, K) probabilities (sigmoid outputs).
        labels: the K class names.
        threshold: a label is predicted when its probability reaches this.

    Returns:
        A dict: ``map`` (mean average precision over classes with a positive),
        ``micro_f1``, ``macro_f1``, ``accuracy`` (exact match of the label sets),
        ``num_samples``, and ``per_class`` (label -> ``ap``, ``precision``, ``recall``,
        ``f1``, ``support``).
    """
    targets = np.asarray(targets, dtype=float)
    scores = np.asarray(scores, dtype=float)
    predicted = scores >= threshold
    positive = targets > 0.5
    true_positives = (predicted & positive).sum(axis=0).astype(float)
    predicted_count = predicted.sum(axis=0).astype(float)
    support = positive.sum(axis=0).astype(float)
    precision = np.divide(
        true_positives, predicted_count, out=np.zeros_like(support), where=predicted_count > 0
    )
    recall = np.divide(true_positives, support, out=np.zeros_like(support), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    aps = np.array([average_precision(targets[:, k], scores[:, k]) for k in range(len(labels))])
    present = (support > 0) | (predicted_count > 0)
    micro_denominator = predicted_count.sum() + support.sum()
    return {
        "map": float(np.nanmean(aps)) if np.isfinite(aps).any() else 0.0,
        "micro_f1": float(2 * true_positives.sum() / micro_denominator) if micro_denominator else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "accuracy": float((predicted == positive).all(axis=1).mean()) if len(targets) else 0.0,
        "num_samples": len(targets),
        "per_class": {
            label: {
                "ap": float(aps[k]),
                "precision": float(precision[k]),
                "recall": float(recall[k]),
                "f1": float(f1[k]),
                "support": int(support[k]),
            }
            for k, label in enumerate(labels)
        },
    }


def format_classification_report(metrics: dict[str, Any]) -> str:
    """A text table of per-class precision, recall, F1 and support, with the averages.

    Classes whose labels are AudioSet ids (``/m/09x0r``) are shown by their names (``Speech``).

    Args:
        metrics: the output of :func:`classification_metrics` or :func:`multilabel_metrics`.

    Returns:
        The report, one line per class (plus AP for multi-label), then the summary lines.
    """
    per_class = {display_name(str(label)): values for label, values in metrics["per_class"].items()}
    multi = "map" in metrics
    width = max([len(label) for label in per_class] + [12])
    columns = ["precision", "recall", "f1", "support"] + (["ap"] if multi else [])
    lines = [f"{'':<{width}}  " + "  ".join(f"{c:>9}" for c in columns)]
    for label, values in per_class.items():
        cells = [f"{values[c]:>9.4f}" if c != "support" else f"{values[c]:>9d}" for c in columns]
        lines.append(f"{label:<{width}}  " + "  ".join(cells))
    lines.append("")
    summary = (
        ["map", "micro_f1", "macro_f1", "accuracy"] if multi else ["accuracy", "macro_f1", "weighted_f1"]
    )
    for key in summary:
        lines.append(f"{key:<{width}}  {metrics[key]:>9.4f}")
    lines.append(f"{'samples':<{width}}  {metrics['num_samples']:>9d}")
    return "\n".join(lines) + "\n"
