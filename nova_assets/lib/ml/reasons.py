"""Why a model answered what it did: the tags (and the product name) that pushed most towards
its answer, and which tags weigh most for each group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.pipeline import Pipeline

from nova_assets.lib.ml.classifiers import NUTRIENT_SCALE, NovaClassifier, predict
from nova_assets.lib.ml.evidence import STATES, evidence_labels, known_evidence, states
from nova_assets.lib.ml.feature_matrix import EVIDENCE, ProductMatrix
from nova_assets.lib.nutrients import CSV_COLUMNS, NUTRIENTS, describe

NAME_REASON = "product_name"
"""The reason given when the product's name, taken as a whole, pushed towards the answer."""
PROFILE_REASON = "nutrient_profile"
"""The reason given when the nutrient trees' answer, the nutrients taken together, pushed
towards the answer."""


def _classifier_weights(expert) -> tuple[np.ndarray, np.ndarray]:
    """(classes, weights[class, column]) over every column the expert sees."""
    classes = np.asarray(expert.classes_)
    if hasattr(expert, "coef_"):
        W = np.asarray(expert.coef_, dtype=np.float64)
        if W.shape[0] == 1 and len(classes) == 2:
            W = np.vstack([-W[0], W[0]])
    elif hasattr(expert, "feature_log_prob_"):
        W = expert.feature_log_prob_ - expert.feature_log_prob_.mean(axis=0)
    elif hasattr(expert, "feature_importances_"):
        W = np.tile(expert.feature_importances_, (len(classes), 1))
    else:
        raise TypeError(f"cannot weigh the features of {type(expert).__name__}")
    return classes, W


def _block(classifier: NovaClassifier, name: str) -> slice | None:
    start = 0
    for block, width in classifier.blocks():
        if block == name:
            return slice(start, start + width)
        start += width
    return None


def _highest_weights(W: np.ndarray, highest: slice, marker_groups: np.ndarray) -> np.ndarray:
    """Each marker tag's share of the "group OFF's markers give" columns: that of its own group."""
    columns = W[:, highest]
    return np.where(marker_groups > 0, columns[:, np.maximum(marker_groups, 1) - 1], 0.0)


def tag_weights(
    classifier: NovaClassifier, state: str = "complete", *, highest: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """How much each tag the classifier reads weighs for each group, in the expert of `state`:
    (classes, weights[class, used tag]).

    Linear models: their coefficients. Naive Bayes: how much more likely the tag is under the
    group than on average (log scale). Trees: the tag's importance, the same for every group.
    A marker column's weight is added to the tags that set it: "has a group-g marker" to every
    group-g marker of that family, and (with `highest`) "the markers give g" to every group-g
    marker, as if it were the product's highest.
    """
    expert = classifier.expert(state)
    if expert is None:
        return np.array(classifier.classes_), np.zeros((0, len(classifier.used_features_)))
    classes, W = _classifier_weights(expert)
    weights = W[:, _block(classifier, "tags")].copy()
    markers = classifier.markers_
    if markers is not None:
        weights += W[:, _block(classifier, "markers")] @ markers.indicator.T
        if highest:
            weights += _highest_weights(W, _block(classifier, "highest"), markers.groups)
    return classes, weights


def reasons(
    classifier: NovaClassifier, matrix: ProductMatrix, answers: np.ndarray, k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The up to `k` tags of each product (or its name) that pushed most towards its answer.

    A tag counts its own weight, its marker family column's, and the "group the markers give"
    column's only where it is of that group (it is what set that column); the name counts the
    sum of its character n-grams' weights. Returned as CSR-style arrays (offsets of length
    rows + 1, indices into `reason_names(classifier)`), so millions of rows never become
    Python lists.
    """
    X = matrix.X[:, classifier.columns_].tocsr()
    all_rows, all_cols, all_values = [], [], []
    state_index = states(matrix)
    names = matrix.name_vectors() if _block(classifier, "name") is not None else None
    n_used = len(classifier.columns_)
    for index, state in enumerate(STATES):
        members = np.flatnonzero(state_index == index)
        expert = classifier.expert(state)
        if len(members) == 0 or expert is None:
            continue
        classes, W = _classifier_weights(expert)
        known = np.isin(answers[members], classes)
        members = members[known]
        class_index = np.searchsorted(classes, answers[members]).astype(np.int32)
        rows, cols, values = _tag_contributions(classifier, W, X[members], class_index)
        all_rows.append(members[rows])
        all_cols.append(cols)
        all_values.append(values)
        if names is not None:
            pushed = np.asarray(names[members] @ W[:, _block(classifier, "name")].T)
            all_rows.append(members)
            all_cols.append(np.full(len(members), n_used, dtype=np.int32))
            all_values.append(pushed[np.arange(len(members)), class_index])
        if _block(classifier, "nutrients") is not None:
            carried = matrix.evidence[members, EVIDENCE.index("nutrients")]
            for cols, values in _nutrient_contributions(
                classifier, state, W, matrix.nutrients[members], carried, class_index
            ):
                all_rows.append(members)
                all_cols.append(np.full(len(members), n_used + 1 + cols, dtype=np.int32))
                all_values.append(values)
    if not all_rows:
        return np.zeros(len(matrix) + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    rows, cols, values = (np.concatenate(a) for a in (all_rows, all_cols, all_values))
    favouring = np.flatnonzero(values > 0)
    order = favouring[np.argsort(rows[favouring], kind="stable")]
    offsets, top = _top_per_row(rows[order], cols[order], values[order], len(matrix), k)
    return offsets, top


def reason_names(classifier: NovaClassifier) -> list[str]:
    """What the indices `reasons` returns stand for: the tags the classifier reads, the name,
    each nutrient (named as the CSV names it), and the nutrients taken together."""
    return [*classifier.used_features_, NAME_REASON, *CSV_COLUMNS, PROFILE_REASON]


def _nutrient_contributions(
    classifier: NovaClassifier,
    state: str,
    W: np.ndarray,
    nutrients: np.ndarray,
    carried: np.ndarray,
    class_index: np.ndarray,
):
    """(index among the nutrient reasons, push of each row towards its answer), for rows with
    these `nutrients`, `carried` where they count as evidence: each nutrient's
    threshold columns, then the nutrient trees' answer. A nutrient's push is its "known"
    weight plus the weights of the thresholds its value passes, read off cumulative sums: no
    rows x columns array."""
    block = W[:, _block(classifier, "nutrients")] * NUTRIENT_SCALE
    start = 0
    for k, nutrient in enumerate(NUTRIENTS):
        edges = np.asarray(nutrient.edges)
        weights = block[:, start : start + 1 + len(edges)]
        start += 1 + len(edges)
        cumulative = np.hstack([weights[:, :1], weights[:, :1] + np.cumsum(weights[:, 1:], axis=1)])
        values = nutrients[:, k]
        known = ~np.isnan(values)
        passed = np.searchsorted(edges, np.nan_to_num(values, nan=-np.inf), side="left")
        yield k, np.where(known, cumulative[class_index, passed], 0.0)
    trees = classifier.tree_columns(nutrients, carried, state)
    tree_weights = W[:, _block(classifier, "nutrient_trees")][class_index]
    yield len(CSV_COLUMNS), (trees * tree_weights).sum(axis=1)


def _tag_contributions(
    classifier: NovaClassifier, W: np.ndarray, X: sparse.csr_matrix, class_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, used tag, push towards the row's answer) for every tag of every row."""
    tags = _block(classifier, "tags")
    weights = W[:, tags].copy()
    markers = classifier.markers_
    if markers is not None:
        weights += W[:, _block(classifier, "markers")] @ markers.indicator.T
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(X.indptr))
    cols = X.indices.astype(np.int32)
    # One flat index per entry serves every (class, tag) lookup: gathers over tens of millions
    # of entries are the cost here, so each is done once, and the marker term only on markers.
    flat = class_index[rows] * np.int32(weights.shape[1]) + cols
    contribution = weights.ravel()[flat]
    if markers is not None:
        highest = _highest_weights(W, _block(classifier, "highest"), markers.groups)
        on_marker = np.flatnonzero(markers.groups[cols] > 0)
        sets_highest = on_marker[
            markers.groups[cols[on_marker]] == markers.highest(X)[rows[on_marker]]
        ]
        contribution[sets_highest] += highest.ravel()[flat[sets_highest]]
    return rows, cols, contribution


def _top_per_row(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The up to `k` largest entries of each row as CSR-style (offsets, cols), largest first,
    ties in entry order; `rows` is sorted and `values` is used up. Each round takes every row's
    maximum in one pass (`reduceat`): several times faster than sorting millions of entries to
    keep three per row."""
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    if len(rows) == 0:
        return offsets, np.zeros(0, dtype=np.int32)
    values = np.array(values, dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    lengths = np.diff(np.r_[starts, len(rows)])
    picked_rows, picked_ranks, picked_cols = [], [], []
    for rank in range(k):
        best = np.maximum.reduceat(values, starts)
        candidates = np.flatnonzero((values == np.repeat(best, lengths)) & (values > -np.inf))
        if len(candidates) == 0:
            break
        candidate_rows = rows[candidates]
        first = candidates[np.r_[True, candidate_rows[1:] != candidate_rows[:-1]]]
        picked_rows.append(rows[first])
        picked_ranks.append(np.full(len(first), rank, dtype=np.int32))
        picked_cols.append(cols[first])
        values[first] = -np.inf
    top_rows = np.concatenate(picked_rows)
    np.cumsum(np.bincount(top_rows, minlength=n_rows), out=offsets[1:])
    top_cols = np.empty(len(top_rows), dtype=np.int32)
    top_cols[offsets[top_rows] + np.concatenate(picked_ranks)] = np.concatenate(picked_cols)
    return offsets, top_cols


def explain(pipeline: Pipeline, products: pd.DataFrame, k: int = 3) -> list[dict]:
    """Answer, calibrated probability, whether it is confident, the evidence used, the reasons
    (a nutrient with its value: "sugars 48 g / 100 g"), whether the model knows any of the
    product's evidence and which of its tags it does not read (column -> tags), for products
    given raw (tag lists, optional name, partial flag and nutrients). A product the model knows
    nothing of is answered, never confidently, not refused as the served model refuses it."""
    matrix, unknown = pipeline.named_steps["products"].read(products)
    known = known_evidence(matrix)
    classifier: NovaClassifier = pipeline.named_steps["classifier"]
    answer = predict(pipeline, matrix)
    offsets, cols = reasons(classifier, matrix, answer.groups, k)
    names = reason_names(classifier)
    evidence = evidence_labels(matrix)

    def said(i: int, c: int) -> str:
        """A reason as a person reads it: a nutrient with the product's own value."""
        name = names[c]
        if name in CSV_COLUMNS:
            return describe(name, float(matrix.nutrients[i, CSV_COLUMNS.index(name)]))
        return name

    return [
        {
            "nova_group": int(answer.groups[i]),
            "probability": float(answer.probability[i]),
            "confident": bool(answer.confident[i]),
            "evidence": evidence[i],
            "partial_ingredients": bool(matrix.partial[i]),
            "reasons": [said(i, c) for c in cols[offsets[i] : offsets[i + 1]]],
            "known_evidence": bool(known[i]),
            "unknown_tags": unknown[i],
        }
        for i in range(len(matrix))
    ]
