"""Percentile bootstrap intervals for every model's metrics on the same test rows, and for the
differences between the first model and each other one (paired: the same resamples)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nova_assets.lib.ml.metrics import GROUPS

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
MAX_MODELS = 5


def _group_index(y: np.ndarray) -> np.ndarray:
    """Groups 1..4 as indices 0..3 (anything else is a bug upstream, so say so)."""
    y = np.asarray(y, dtype=np.int64)
    if y.size and (y.min() < GROUPS[0] or y.max() > GROUPS[-1]):
        raise ValueError(f"NOVA groups must be 1..4, got {sorted(set(y.tolist()) - set(GROUPS))}")
    return y - GROUPS[0]


def scores_from_confusion(counts: np.ndarray, undefined: float = 0.0) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and per-class precision/recall/F1 from confusion counts.

    `counts[..., true, predicted]` may carry any leading axes (one per bootstrap resample), so
    a thousand resamples cost a few array operations. A per-class ratio with a zero denominator
    is `undefined`; macro-F1 counts it as 0 and averages the four groups, as
    `classification_metrics` (scikit-learn's `zero_division=0`) does, so both give the same
    figure on the same rows.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    true = counts.sum(axis=-1)
    predicted = counts.sum(axis=-2)
    rows = true.sum(axis=-1)

    def ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        return np.where(den > 0, num / np.maximum(den, 1), empty)

    f1 = ratio(2 * tp, true + predicted, 0.0)
    return {
        "accuracy": ratio(tp.sum(axis=-1), rows, 0.0),
        "macro_f1": f1.mean(axis=-1),
        "precision": ratio(tp, predicted, undefined),
        "recall": ratio(tp, true, undefined),
        "f1": ratio(2 * tp, true + predicted, undefined),
    }


def _marginal(counts: np.ndarray, j: int) -> np.ndarray:
    """From joint counts [resample, true, model 0, model 1, …], model j's confusion matrices."""
    others = tuple(2 + k for k in range(counts.ndim - 2) if k != j)
    return counts.sum(axis=others) if others else counts


def bootstrap_intervals(
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Any] | None:
    """Percentile bootstrap intervals for every model's metrics, and for the differences
    between the first model and each other one, from the same resamples (paired).

    Resampling n rows with replacement only matters through how many of them land in each
    (true, predicted by each model) cell, and those counts are exactly Multinomial(n, cell
    shares). So one multinomial draw per resample replaces n index draws: the same intervals,
    in milliseconds whatever the number of test rows. None when there is no row to resample.
    """
    y_true = _group_index(y_true)
    n = len(y_true)
    if n == 0:
        return None
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples}, {level}")
    names = list(predictions)
    if not 1 <= len(names) <= MAX_MODELS:
        raise ValueError(f"bootstrap_intervals compares one to {MAX_MODELS} models")
    cells = y_true.copy()
    for name in names:
        predicted = _group_index(predictions[name])
        if len(predicted) != n:
            raise ValueError(f"{name}: {len(predicted)} predictions for {n} rows")
        cells = cells * len(GROUPS) + predicted
    shape = (len(GROUPS),) * (len(names) + 1)
    observed = np.bincount(cells, minlength=len(GROUPS) ** len(shape)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, observed / n, size=resamples).reshape(resamples, *shape)
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(values: np.ndarray) -> list[float] | None:
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return None
        low, high = np.percentile(values, tails)
        return [float(low), float(high)]

    support = np.bincount(y_true, minlength=len(GROUPS))
    scores: dict[str, dict[str, np.ndarray]] = {}
    models: dict[str, Any] = {}
    for j, name in enumerate(names):
        # Per class, only the resamples where the ratio is defined (the class was drawn, or
        # predicted) say something about it.
        s = scores_from_confusion(_marginal(draws, j), undefined=np.nan)
        scores[name] = s
        models[name] = {
            "accuracy": interval(s["accuracy"]),
            "macro_f1": interval(s["macro_f1"]),
            "per_class": {
                str(g): None
                if support[i] == 0
                else {m: interval(s[m][:, i]) for m in ("precision", "recall", "f1")}
                for i, g in enumerate(GROUPS)
            },
        }
    first = names[0]
    point = {
        name: scores_from_confusion(_marginal(observed.reshape(1, *shape), j))
        for j, name in enumerate(names)
    }
    differences = {}
    for name in names[1:]:
        differences[name] = {
            metric: {
                "value": float((point[first][metric] - point[name][metric])[0]),
                "interval": interval(scores[first][metric] - scores[name][metric]),
            }
            for metric in ("accuracy", "macro_f1")
        }
        differences[name]["better_share"] = float(
            np.mean(scores[first]["macro_f1"] > scores[name]["macro_f1"])
        )
    return {
        "method": "percentile bootstrap over test rows (multinomial cell counts)",
        "resamples": resamples,
        "seed": seed,
        "level": level,
        "rows": n,
        "models": models,
        "differences": differences,
    }
