"""Where a model is right and where not: accuracy by country and by number of tags, the tags
that weigh most for each group beside OFF's markers, and mistakes worth reading."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from nova_assets.lib.ml.classifiers import NovaClassifier
from nova_assets.lib.ml.feature_matrix import split_feature
from nova_assets.lib.ml.metrics import GROUPS
from nova_assets.lib.ml.reasons import tag_weights
from nova_assets.lib.warehouse.nova_rules import marker_group

TOP_COUNTRIES = 10
TAG_COUNT_EDGES = (0, 5, 10, 20, 40)
TOP_FEATURES = 10
MISCLASSIFIED = 8


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """`(0, 5, 10)` → `0–4`, `5–9`, `10+`."""
    labels = [f"{lo}–{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in pairwise(edges)]
    return [*labels, f"{edges[-1]}+"]


def _accuracies(
    rows: np.ndarray, index: np.ndarray, correct: Mapping[str, np.ndarray], size: int
) -> tuple[np.ndarray, dict[str, list[float | None]]]:
    """Rows and accuracy per bucket, for rows `rows` falling in buckets `index`."""
    counts = np.bincount(index, minlength=size)
    accuracy = {}
    for name, ok in correct.items():
        hits = np.bincount(index, weights=np.asarray(ok, dtype=np.float64)[rows], minlength=size)
        accuracy[name] = [float(h / c) if c else None for h, c in zip(hits, counts, strict=True)]
    return counts, accuracy


def accuracy_by_bucket(
    values: np.ndarray,
    correct: Mapping[str, np.ndarray],
    edges: Sequence[int] = TAG_COUNT_EDGES,
) -> list[dict[str, Any]]:
    """Rows and each model's accuracy per bucket of `values` (bucket i: edges[i] ≤ v < edges[i+1]).

    Every bucket is listed, an empty one with accuracy None, so the table keeps its shape.
    """
    values = np.asarray(values)
    index = np.searchsorted(np.asarray(edges), values, side="right") - 1
    if index.size and index.min() < 0:
        raise ValueError(f"a value is below the first edge {edges[0]}")
    counts, accuracy = _accuracies(np.arange(len(values)), index, correct, len(edges))
    return [
        {
            "bucket": label,
            "rows": int(counts[i]),
            "accuracy": {name: acc[i] for name, acc in accuracy.items()},
        }
        for i, label in enumerate(bucket_labels(edges))
    ]


def accuracy_by_country(
    rows: np.ndarray,
    countries: np.ndarray,
    correct: Mapping[str, np.ndarray],
    top: int = TOP_COUNTRIES,
) -> list[dict[str, Any]]:
    """Rows and each model's accuracy for the `top` countries with most test products, then
    "other" (products in some other country) and "none" (products without a country).

    Countries come as (row, country) pairs, as DuckDB unnests them; a product in several
    countries counts in each, a pair listed twice once.
    """
    n = len(next(iter(correct.values())))
    rows = np.asarray(rows, dtype=np.int64)
    countries = np.asarray(countries, dtype=str) if len(countries) else np.array([], dtype=str)
    keep = countries != ""
    rows, countries = rows[keep], countries[keep]
    names, country_index = np.unique(countries, return_inverse=True)
    pair = np.unique(country_index.astype(np.int64) * n + rows)
    country_index, rows = pair // n, pair % n
    per_country = np.bincount(country_index, minlength=len(names))
    order = np.lexsort((names, -per_country))[:top]  # most products first, then by name
    chosen = np.full(len(names), -1)
    chosen[order] = np.arange(len(order))
    in_top = chosen[country_index] >= 0
    counts, accuracy = _accuracies(rows[in_top], chosen[country_index[in_top]], correct, len(order))
    result = [
        {
            "country": str(names[c]),
            "rows": int(counts[i]),
            "accuracy": {name: acc[i] for name, acc in accuracy.items()},
        }
        for i, c in enumerate(order)
    ]
    other = np.unique(rows[~in_top])
    none = np.setdiff1d(np.arange(n), rows)
    for label, members in (("other", other), ("none", none)):
        counts, accuracy = _accuracies(members, np.zeros(len(members), np.int64), correct, 1)
        result.append(
            {
                "country": label,
                "rows": int(counts[0]),
                "accuracy": {name: acc[0] for name, acc in accuracy.items()},
            }
        )
    return result


def _weight_kind(classifier: NovaClassifier, state: str) -> str:
    expert = classifier.expert(state)
    if hasattr(expert, "coef_"):
        return "coefficient"
    if hasattr(expert, "feature_log_prob_"):
        return "log-likelihood ratio against the mean of the groups"
    return "importance (a tree's is the same for every group)"


def top_features(
    classifier: NovaClassifier, state: str = "complete", k: int = TOP_FEATURES
) -> dict[str, Any]:
    """Per group, the `k` tags with the largest positive weight towards it in the expert of
    `state`, each beside OFF's marker group for that tag, and how many of them are OFF markers of
    that very group.

    The weights are `tag_weights`', so a marker column the model appends is already folded
    into the tags that set it. Ties go to the earlier vocabulary column, for a stable report.
    """
    classes, weights = tag_weights(classifier, state)
    features = classifier.used_features_
    groups: dict[str, Any] = {}
    for g in GROUPS:
        hits = np.flatnonzero(classes == g)
        if len(hits) == 0:
            groups[str(g)] = {"predicted": False, "features": [], "markers": 0, "other_markers": 0}
            continue
        w = weights[hits[0]]
        order = np.lexsort((np.arange(len(w)), -w))
        order = order[w[order] > 0][:k]
        entries = []
        for col in order:
            family, tag = split_feature(features[col])
            entries.append(
                {
                    "family": family,
                    "tag": tag,
                    "weight": float(w[col]),
                    "marker_group": marker_group(family, tag),
                }
            )
        groups[str(g)] = {
            "predicted": True,
            "features": entries,
            "markers": sum(e["marker_group"] == g for e in entries),
            "other_markers": sum(e["marker_group"] not in (None, g) for e in entries),
        }
    return {"k": k, "state": state, "weight": _weight_kind(classifier, state), "groups": groups}


def pick_misclassified(
    y_true: np.ndarray, y_pred: np.ndarray, probability: np.ndarray, k: int = MISCLASSIFIED
) -> np.ndarray:
    """Row indices of up to `k` mistakes, taken in turn from each true group (so every group
    with a mistake shows), the most confident mistake of a group first, ties by row order."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    queues = []
    for g in GROUPS:
        rows = wrong[y_true[wrong] == g]
        queues.append(rows[np.lexsort((rows, -np.asarray(probability)[rows]))].tolist())
    picked: list[int] = []
    for turn in range(k):
        for queue in queues:
            if turn < len(queue) and len(picked) < k:
                picked.append(queue[turn])
    return np.array(picked, dtype=np.int64)


def shorten_tags(tags: Sequence[str] | None, limit: int = 8) -> str:
    """A tag list for a report line: the first `limit`, then how many more."""
    tags = [t for t in (tags or []) if t]
    if not tags:
        return "—"
    shown = ", ".join(tags[:limit])
    return shown + (f", … (+{len(tags) - limit})" if len(tags) > limit else "")
