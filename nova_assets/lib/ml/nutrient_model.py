"""Gradient boosting on the nutrients alone, stacked under the evidence experts: trees read
what thresholds cannot (much sugar *and* little fibre), and each expert weighs their answer
beside tags and names.

Its answer enters an expert's design as four log-probability columns, zero for a product
without nutrients (or with them hidden). The training rows get out-of-fold answers, so an
expert learns how far the trees can be trusted on products they never saw.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from nova_assets.lib.ml.calibration import GROUPS

FOLDS = 3
MAX_ROWS = 40_000
"""At most this many products with nutrients fit the trees (a fixed random subset): the
answers change little past tens of thousands, the seconds add up."""
EPSILON = 1e-4
_last_fit: dict[str, tuple[HistGradientBoostingClassifier | None, np.ndarray]] = {}
"""The last fit, by the digest of its inputs: every trial of one training fits the same trees on
the same rows, whatever the experts' own settings."""


def _trees() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, class_weight="balanced", random_state=0
    )


def fit_nutrient_model(
    nutrients: np.ndarray, known: np.ndarray, y: np.ndarray
) -> tuple[HistGradientBoostingClassifier | None, np.ndarray]:
    """Trees fitted on the products that carry nutrients (`known`), and the out-of-fold scores
    (`nutrient_scores`' columns) of every row: none, and zero scores, with too few such products.

    Each fit uses one thread: on two cores already busy (trials fitted side by side, or any
    other work) OpenMP's threads wait on each other, and a fit of two thousand products took
    39 s on two threads against 2 s on one."""
    key = _digest(nutrients, known, y)
    if key not in _last_fit:
        with threadpool_limits(1, user_api="openmp"):
            fitted = _fit(nutrients, known, y)
        _last_fit.clear()
        _last_fit[key] = fitted
    model, out = _last_fit[key]
    return model, out.copy()


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _fit(
    nutrients: np.ndarray, known: np.ndarray, y: np.ndarray
) -> tuple[HistGradientBoostingClassifier | None, np.ndarray]:
    out = np.zeros((len(y), len(GROUPS)), dtype=np.float32)
    rows = np.flatnonzero(known)
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, MAX_ROWS, replace=False))
    groups, counts = np.unique(y[rows], return_counts=True)
    if len(groups) < 2 or counts.min() < FOLDS:
        return None, out
    for fit, held in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(rows, y[rows]):
        model = _trees().fit(nutrients[rows[fit]], y[rows[fit]])
        out[rows[held]] = _log_scores(model, nutrients[rows[held]])
    others = np.setdiff1d(np.flatnonzero(known), rows)
    model = _trees().fit(nutrients[rows], y[rows])
    if len(others):
        out[others] = _log_scores(model, nutrients[others])
    return model, out


def nutrient_scores(
    model: HistGradientBoostingClassifier | None, nutrients: np.ndarray, known: np.ndarray
) -> np.ndarray:
    """Per product, the trees' centred log-probabilities over GROUPS; zero where not `known`."""
    out = np.zeros((len(nutrients), len(GROUPS)), dtype=np.float32)
    rows = np.flatnonzero(known)
    if model is not None and len(rows):
        out[rows] = _log_scores(model, nutrients[rows])
    return out


def _log_scores(model: HistGradientBoostingClassifier, nutrients: np.ndarray) -> np.ndarray:
    proba = np.full((len(nutrients), len(GROUPS)), EPSILON)
    proba[:, np.searchsorted(GROUPS, model.classes_)] = model.predict_proba(nutrients)
    logs = np.log(proba + EPSILON)
    return (logs - logs.mean(axis=1, keepdims=True)).astype(np.float32)


def trees_are_sound(model: HistGradientBoostingClassifier | None) -> bool:
    """Whether every node of the fitted trees points inside its tree and at one of the
    nutrients: scikit-learn follows these indices unchecked, so a tampered model file could
    make it read outside its arrays. No categorical splits (the trees never make any)."""
    if model is None:
        return True
    predictors = getattr(model, "_predictors", None)
    if not isinstance(predictors, list):
        return False
    features = getattr(model, "n_features_in_", 0)
    for iteration in predictors:
        for predictor in iteration:
            nodes = getattr(predictor, "nodes", None)
            if nodes is None or len(nodes) == 0:
                return False
            inner = nodes[nodes["is_leaf"] == 0]
            if (
                (inner["left"] >= len(nodes)).any()
                or (inner["right"] >= len(nodes)).any()
                or (inner["feature_idx"] < 0).any()
                or (inner["feature_idx"] >= features).any()
                or (nodes["is_categorical"] != 0).any()
            ):
                return False
    return True
