import numpy as np
import pytest

from nova_assets.lib.ml import metrics


def test_metrics_by_hand():
    y_true = np.array([1, 1, 2, 3, 4, 4, 4, 4])
    y_pred = np.array([1, 4, 2, 3, 4, 4, 4, 3])
    m = metrics.classification_metrics(y_true, y_pred)
    assert m["accuracy"] == 6 / 8
    assert m["per_class"]["1"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert m["per_class"]["3"]["precision"] == 0.5
    assert m["confusion_matrix"][0] == [1, 0, 0, 1]
    f1_4 = 2 * 0.75 * 0.75 / 1.5
    assert abs(m["macro_f1"] - (2 / 3 + 1 + 2 / 3 + f1_4) / 4) < 1e-12
    # Group 2 neither true nor answered: counted as 0 here, left out for model selection.
    y, p = np.array([1, 3, 4]), np.array([1, 3, 4])
    assert metrics.classification_metrics(y, p)["macro_f1"] == 0.75
    assert metrics.present_macro_f1(y, p) == 1.0


def test_majority_baseline():
    assert metrics.majority_class(np.array([4, 4, 3, 1, 4])) == 4
    assert metrics.majority_baseline(np.array([4, 4, 3, 1, 4])) == (4, 0.6)


def test_calibration_error_by_hand():
    # Bin 0.9-1.0: probabilities 0.95 and 0.95, one right; bin 0.6-0.7: 0.65, right.
    probability = np.array([0.95, 0.95, 0.65])
    correct = np.array([True, False, True])
    assert metrics.expected_calibration_error(probability, correct) == pytest.approx(
        2 / 3 * abs(0.5 - 0.95) + 1 / 3 * abs(1 - 0.65)
    )
    bins = metrics.reliability(probability, correct)
    assert [(b.low, b.rows, b.accuracy) for b in bins] == [(0.6, 1, 1.0), (0.9, 2, 0.5)]
    assert metrics.expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0
    assert metrics.expected_calibration_error(np.array([]), np.array([], bool)) is None


def test_coverage_and_precision_at_thresholds():
    y = np.array([4, 4, 3, 1, 1])
    answers = np.array([4, 3, 3, 1, 4])
    confident = np.array([True, True, False, True, False])
    at = metrics.at_thresholds(y, answers, confident)
    assert at["coverage"] == 0.6 and at["precision"] == pytest.approx(2 / 3)
    assert at["per_class"]["4"] == {"answered": 2, "accepted": 1, "coverage": 0.5, "precision": 1.0}
    assert at["per_class"]["3"] == {"answered": 2, "accepted": 1, "coverage": 0.5, "precision": 0.0}
    assert at["per_class"]["2"] == {
        "answered": 0,
        "accepted": 0,
        "coverage": None,
        "precision": None,
    }
    nothing = metrics.at_thresholds(y, answers, np.zeros(5, bool))
    assert nothing["coverage"] == 0.0 and nothing["precision"] is None
