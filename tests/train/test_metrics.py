from __future__ import annotations

import math

import numpy as np
import pytest

from beats_train.metrics import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    format_classification_report,
    multilabel_metrics,
)


def _scores(predictions: list[int], num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[predictions]


def test_single_label_metrics_by_hand():
    targets = [0, 0, 0, 1, 1, 2]
    predictions = [0, 0, 1, 1, 2, 2]
    metrics = classification_metrics(np.array(targets), _scores(predictions, 3), ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    per = metrics["per_class"]
    assert (per["a"]["precision"], per["a"]["recall"]) == (1.0, pytest.approx(2 / 3))
    assert (per["b"]["precision"], per["b"]["recall"]) == (0.5, 0.5)
    assert (per["c"]["precision"], per["c"]["recall"]) == (0.5, 1.0)
    f1 = [2 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 / 1.5]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert metrics["weighted_f1"] == pytest.approx((3 * f1[0] + 2 * f1[1] + f1[2]) / 6)
    assert [per[k]["support"] for k in "abc"] == [3, 2, 1]
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert metrics["num_samples"] == 6


def test_classes_absent_from_targets_and_predictions_do_not_count_in_macro_averages():
    metrics = classification_metrics(np.array([0, 1]), _scores([0, 1], 3), ["a", "b", "never"])
    assert metrics["macro_f1"] == 1.0 and metrics["per_class"]["never"]["support"] == 0


def test_confusion_matrix_rows_are_true_classes():
    assert confusion_matrix(np.array([1, 1, 0]), np.array([0, 1, 0]), 2).tolist() == [[1, 0], [1, 1]]


def test_average_precision_matches_the_step_wise_definition():
    # scikit-learn's documented example: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.8333
    assert average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(
        0.8333333
    )
    # ties form one threshold: everything at 0.5 gives precision 2/4 at recall 1
    assert average_precision(np.array([1, 0, 1, 0]), np.full(4, 0.5)) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.zeros(3), np.arange(3.0)))
    rng = np.random.default_rng(0)
    targets, scores = rng.integers(0, 2, 50), rng.random(50)
    order = np.argsort(-scores)
    hits = np.cumsum(targets[order])
    expected = (
        np.sum((hits / np.arange(1, 51))[targets[order] == 1]) / targets.sum()
    )  # no ties: mean precision at hits
    assert average_precision(targets, scores) == pytest.approx(expected)


def test_multilabel_metrics():
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    scores = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.3], [0.7, 0.4, 0.2], [0.2, 0.1, 0.05]])
    metrics = multilabel_metrics(targets, scores, ["x", "y", "z"])
    aps = [average_precision(targets[:, k], scores[:, k]) for k in range(3)]
    assert metrics["map"] == pytest.approx(np.mean(aps))
    assert metrics["per_class"]["y"]["recall"] == 0.5 and metrics["per_class"]["y"]["precision"] == 1.0
    # predicted labels: {x, z}, {y}, {x}, {}: 4 true positives, 0 false positives, 1 false negative
    assert metrics["micro_f1"] == pytest.approx(2 * 4 / (4 + 5))
    assert metrics["accuracy"] == pytest.approx(3 / 4)


def test_report_lists_every_class_and_the_averages():
    metrics = classification_metrics(np.array([0, 1, 1]), _scores([0, 1, 0], 2), ["dog", "rooster"])
    report = format_classification_report(metrics)
    assert "dog" in report and "rooster" in report and "accuracy" in report and "0.6667" in report
    multi = format_classification_report(multilabel_metrics(np.eye(2), np.eye(2) * 0.9, ["a", "b"]))
    assert "map" in multi and "ap" in multi.splitlines()[0]


def test_report_shows_audioset_ids_by_their_names():
    metrics = classification_metrics(np.array([0, 1]), _scores([0, 1], 2), ["/m/09x0r", "owl"])
    report = format_classification_report(metrics)
    assert "Speech" in report and "/m/09x0r" not in report and "owl" in report
    assert list(metrics["per_class"]) == ["/m/09x0r", "owl"]  # the metrics keep the ids
