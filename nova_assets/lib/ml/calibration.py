"""Probabilities you can act on: calibrated on validation rows, and the per-group thresholds
above which a prediction reaches a precision target."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

GROUPS = (1, 2, 3, 4)
PRECISION_TARGET = 0.95
"""An answer is `confident` when answers like it were right this often on validation rows."""
ASSURANCE = 0.95
"""How sure the validation rows must make it that confident answers reach the target."""
GROUP_1_PRECISION = 0.0
"""Group 1 ("unprocessed") is only answered where such answers were right this often (0: the
experts' answer stands). On real products of shops the model never saw, a floor of 0.9 cost
group 1 more recall than it won precision: macro-F1 0.708 against 0.741 without it
(benchmarks/bench_model_real.py)."""
MIN_CALIBRATION_ROWS = 30
MIN_THRESHOLD_ROWS = 20
EPSILON = 1e-9


def fit_calibrator(proba: np.ndarray, y: np.ndarray) -> LogisticRegression | None:
    """Matrix scaling: a multinomial logistic regression from a model's log-probabilities to
    the group, fitted on rows the model never trained on. It corrects both over-confidence and
    the class weights a model was trained with (its probabilities lean to rare groups).

    None (probabilities left as they are) with too few rows or a single group to learn from.
    """
    from sklearn.linear_model import LogisticRegression

    if len(y) < MIN_CALIBRATION_ROWS or len(np.unique(y)) < 2:
        return None
    return LogisticRegression(C=1.0, max_iter=1000).fit(np.log(proba + EPSILON), y)


def apply_calibrator(calibrator: LogisticRegression | None, proba: np.ndarray) -> np.ndarray:
    """Calibrated probabilities over GROUPS, from a model's probabilities over GROUPS.

    A group the calibrator never saw (no validation product of it: the model learnt it from
    other products) keeps the model's own probability, and the calibrated groups share the
    rest: an answer of that group is never given probability 0."""
    if calibrator is None or len(proba) == 0:
        return proba
    columns = np.searchsorted(GROUPS, calibrator.classes_)
    unseen = np.setdiff1d(np.arange(len(GROUPS)), columns)
    out = np.zeros_like(proba)
    out[:, unseen] = proba[:, unseen]
    rest = 1.0 - proba[:, unseen].sum(axis=1, keepdims=True)
    out[:, columns] = rest * calibrator.predict_proba(np.log(proba + EPSILON))
    return out


def choose_threshold(
    probability: np.ndarray,
    correct: np.ndarray,
    target: float,
    *,
    unmeasured: float,
    min_rows: int = MIN_THRESHOLD_ROWS,
    assurance: float | None = None,
) -> float:
    """The lowest probability at which the predictions accepted (probability at or above it)
    reach `target` precision on these rows: 0 when all of them together do, infinity when no
    threshold does (nothing is accepted).

    With `assurance` (e.g. 0.95), reaching it means that the one-sided Clopper-Pearson lower
    bound of their precision at that level does: 19 right of 20 is not yet 95 % sure to be
    95 % right, 290 of 300 is. Validation rows come from the shops the model trained on; this
    margin keeps `confident` honest on the products of others.

    With fewer than `min_rows` predictions there is too little to measure, and the answer is
    `unmeasured`.
    """
    if len(probability) < min_rows:
        return float(unmeasured)
    probability, correct = np.asarray(probability), np.asarray(correct)
    order = np.argsort(-probability, kind="stable")
    p, hits = probability[order], np.cumsum(correct[order])
    accepted = np.arange(1, len(p) + 1)
    # Only cut between distinct probabilities: rows tied at the threshold are all accepted.
    boundary = np.r_[p[1:] < p[:-1], True]
    if assurance is None:
        reached = hits >= target * accepted
    else:
        from scipy.stats import beta

        lower = np.nan_to_num(beta.ppf(1 - assurance, hits, accepted - hits + 1))
        reached = lower >= target
    ok = np.flatnonzero(boundary & reached)
    if len(ok) == 0:
        return float("inf")
    return 0.0 if ok[-1] == len(p) - 1 else float(p[ok[-1]])
