import numpy as np
import pytest

from nova_assets.lib.evaluation import intervals
from nova_assets.lib.ml import metrics


def hand_made(copies: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 rows: truth, a good model (6 mistakes) and a worse one (12), repeated `copies` times."""
    y = np.array([1] * 6 + [2] * 2 + [3] * 8 + [4] * 24)
    good = y.copy()
    good[[0, 6, 8, 9, 20, 30]] = [4, 3, 4, 2, 3, 1]
    worse = good.copy()
    worse[[1, 2, 10, 11, 21, 31]] = [4, 4, 4, 4, 3, 3]
    return np.tile(y, copies), np.tile(good, copies), np.tile(worse, copies)


def width(interval: list[float]) -> float:
    return interval[1] - interval[0]


def test_bootstrap_intervals_hold_the_point_estimates():
    y, good, worse = hand_made()
    b = intervals.bootstrap_intervals(y, {"model": good, "reference": worse})
    assert (b["resamples"], b["seed"], b["level"], b["rows"]) == (intervals.RESAMPLES, 0, 0.95, 40)
    for name, predicted in (("model", good), ("reference", worse)):
        point = metrics.classification_metrics(y, predicted)
        ci = b["models"][name]
        for metric in ("accuracy", "macro_f1"):
            low, high = ci[metric]
            assert 0 <= low <= point[metric] <= high <= 1, (name, metric)
            assert low < high
        for g in metrics.GROUPS:
            for metric in ("precision", "recall", "f1"):
                low, high = ci["per_class"][str(g)][metric]
                assert low <= point["per_class"][str(g)][metric] <= high, (name, g, metric)
    diff = b["differences"]["reference"]
    assert diff["accuracy"]["value"] == pytest.approx(6 / 40)
    # Paired resamples: the worse model errs wherever the good one does, and on 6 rows more, so
    # it never wins; the two tie only in a resample that drew none of those 6 rows.
    assert diff["accuracy"]["interval"][0] > 0
    assert 0.99 < diff["better_share"] < 1
    assert set(b["differences"]) == {"reference"}


def test_bootstrap_is_deterministic_with_its_seed_and_narrows_with_more_rows():
    y, good, worse = hand_made()
    predictions = {"model": good, "reference": worse}
    first = intervals.bootstrap_intervals(y, predictions)
    assert intervals.bootstrap_intervals(y, predictions) == first
    assert intervals.bootstrap_intervals(y, predictions, seed=1) != first
    y10, good10, worse10 = hand_made(copies=10)
    wider = first["models"]["model"]
    narrower = intervals.bootstrap_intervals(y10, {"model": good10, "reference": worse10})[
        "models"
    ]["model"]
    assert width(narrower["accuracy"]) < width(wider["accuracy"]) / 2
    assert width(narrower["macro_f1"]) < width(wider["macro_f1"]) / 2
    assert width(narrower["per_class"]["4"]["f1"]) < width(wider["per_class"]["4"]["f1"])
    level_80 = intervals.bootstrap_intervals(y, predictions, level=0.8)["models"]["model"]
    assert width(level_80["accuracy"]) < width(wider["accuracy"])


def test_multinomial_bootstrap_matches_resampling_rows():
    """Drawing cell counts is the same experiment as drawing row indices."""
    y, good, _ = hand_made(copies=5)
    rows = np.random.default_rng(7).integers(0, len(y), size=(4000, len(y)))
    by_rows = np.percentile((y[rows] == good[rows]).mean(axis=1), [2.5, 97.5])
    by_cells = intervals.bootstrap_intervals(y, {"model": good}, resamples=4000)["models"]["model"]
    assert np.allclose(by_cells["accuracy"], by_rows, atol=0.011)


def test_scores_from_confusion_agree_with_scikit_learn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.choice([1, 3, 4], size=30)  # group 2 never true
        predicted = rng.choice([1, 2, 3, 4], size=30)
        m = metrics.classification_metrics(y, predicted)
        s = intervals.scores_from_confusion(np.array(m["confusion_matrix"]))
        assert np.isclose(s["accuracy"], m["accuracy"]) and np.isclose(s["macro_f1"], m["macro_f1"])
        for i, g in enumerate(metrics.GROUPS):
            for metric in ("precision", "recall", "f1"):
                assert np.isclose(s[metric][i], m["per_class"][str(g)][metric])


def test_bootstrap_on_tiny_test_sets():
    assert (
        intervals.bootstrap_intervals(np.array([], dtype=int), {"model": np.array([], dtype=int)})
        is None
    )
    one = intervals.bootstrap_intervals(np.array([4]), {"model": np.array([4])})
    assert one["models"]["model"]["accuracy"] == [1.0, 1.0]
    y, predicted = np.array([4, 4, 3]), np.array([4, 3, 3])
    b = intervals.bootstrap_intervals(y, {"model": predicted, "majority": np.full(3, 4)})
    per_class = b["models"]["model"]["per_class"]
    assert per_class["1"] is None and per_class["2"] is None  # absent from the test rows
    assert per_class["3"]["recall"] == [1.0, 1.0]
    low, high = b["models"]["model"]["accuracy"]
    assert low <= 2 / 3 <= high


def test_five_models_at_once_are_paired():
    y, good, worse = hand_made()
    five = {
        "model": good,
        "rules": worse,
        "reference": worse,
        "champion": good,
        "majority": np.full(40, 4),
    }
    b = intervals.bootstrap_intervals(y, five)
    assert set(b["models"]) == set(five)
    assert b["differences"]["champion"]["macro_f1"]["interval"] == [0.0, 0.0]
    assert b["differences"]["rules"]["accuracy"]["interval"][0] > 0
    with pytest.raises(ValueError, match="one to 5 models"):
        intervals.bootstrap_intervals(y, {**five, "sixth": good})
