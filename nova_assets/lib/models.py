"""The NOVA classifiers: scikit-learn Pipelines that take raw tag lists and return a group.

Each Pipeline is `tags` (a TagVectorizer holding its vocabulary) then `classifier`. Training
fits the classifier on the CSR matrix `feature_matrix` already built set-wise, so the
vectorizer only runs for callers that hand in raw tags (MLflow serving, `predict`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.naive_bayes import BernoulliNB
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from nova_assets.lib.features import FAMILIES, split_feature
from nova_assets.lib.model_input import tag_lists
from nova_assets.lib.nova_rules import marker_group

# Types in our Pipelines that skops (MLflow's default serialisation) does not trust by itself.
TRUSTED_TYPES = [
    "nova_assets.lib.models.TagVectorizer",
    "nova_assets.lib.models.MarkerFeatures",
    "sklearn.tree._tree.Tree",
]


class TagVectorizer(TransformerMixin, BaseEstimator):
    """Raw tag columns (`ingredients_tags`, …) to the multi-hot matrix of a fixed vocabulary."""

    def __init__(self, features: Sequence[str] = ()):
        self.features = features

    def fit(self, X=None, y=None):
        self.index_ = {f: i for i, f in enumerate(self.features)}
        return self

    def transform(self, X: pd.DataFrame) -> sparse.csr_matrix:
        """Raises BadModelInput (HTTP 400 when served) on input that is not tags."""
        columns = tag_lists(X)
        index = getattr(self, "index_", None) or self.fit().index_
        rows, cols = [], []
        for family in FAMILIES:
            for row, tags in enumerate(columns[f"{family}_tags"]):
                for tag in tags:
                    col = index.get(f"{family}:{tag}")
                    if col is not None:
                        rows.append(row)
                        cols.append(col)
        X_out = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(X), len(self.features))
        )
        X_out.data[:] = 1.0
        return X_out


def family_columns(features: Sequence[str], families: Sequence[str]) -> np.ndarray:
    """Column indices of the features that belong to `families`."""
    return np.array(
        [i for i, f in enumerate(features) if split_feature(f)[0] in families], dtype=np.int64
    )


MARKER_GROUPS = (2, 3, 4)


class MarkerFeatures(TransformerMixin, BaseEstimator):
    """Appends OFF's own NOVA markers to the multi-hot matrix.

    OFF computes `nova_group` as the highest group among marker tags, so a column per
    (family, group) "has a marker" and a one-hot of the highest marker group let a linear model
    express that rule, which a sum of tag weights cannot do exactly.
    """

    def __init__(self, features: Sequence[str] = ()):
        self.features = features

    def fit(self, X=None, y=None):
        self.marker_groups_ = np.array(
            [marker_group(*split_feature(f)) or 0 for f in self.features], dtype=np.int8
        )
        families = [split_feature(f)[0] for f in self.features]
        indicator = np.zeros((len(self.features), len(FAMILIES) * len(MARKER_GROUPS)), np.float32)
        for col, (family, group) in enumerate(
            (family, group) for family in FAMILIES for group in MARKER_GROUPS
        ):
            indicator[:, col] = [
                fam == family and g == group
                for fam, g in zip(families, self.marker_groups_, strict=True)
            ]
        self.indicator_ = indicator
        return self

    def transform(self, X: sparse.csr_matrix) -> sparse.csr_matrix:
        present, highest = self._markers(X)
        one_hot = highest[:, None] == np.arange(1, 5)[None, :]
        extra = np.hstack([present, one_hot]).astype(np.float32)
        return sparse.hstack([X, sparse.csr_matrix(extra)], format="csr")

    def highest_group(self, X: sparse.csr_matrix) -> np.ndarray:
        """Per row, the highest group among its marker tags (1 when it has none)."""
        return self._markers(X)[1]

    def _markers(self, X: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "indicator_"):
            self.fit()
        present = np.asarray(X @ self.indicator_) > 0
        by_group = present.reshape(len(present), len(FAMILIES), len(MARKER_GROUPS)).any(axis=1)
        found = by_group[:, ::-1]
        highest = np.where(found.any(axis=1), MARKER_GROUPS[-1] - found.argmax(axis=1), 1)
        return present, highest

    def feature_names(self) -> list[str]:
        """Names of the appended columns, in order."""
        return [f"markers:{family}:group-{g}" for family in FAMILIES for g in MARKER_GROUPS] + [
            f"markers:highest:group-{g}" for g in range(1, 5)
        ]


@dataclass(frozen=True)
class CandidateSpec:
    """A model kind: which tag families it reads, and how its classifier is built."""

    families: tuple[str, ...]
    markers: bool
    build: Callable[..., BaseEstimator]
    doc: str


def _balanced_logistic_regression(C: float = 1.0, max_iter: int = 2000) -> LogisticRegression:
    """Multinomial logistic regression with classes weighed by their rarity (groups 1 and 2
    are rare)."""
    return LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter)


CANDIDATES: dict[str, CandidateSpec] = {
    "reference_bernoulli_nb": CandidateSpec(
        ("ingredients",),
        False,
        lambda alpha=1.0: BernoulliNB(alpha=alpha),
        "the classic reference: ingredients only, Bernoulli naive Bayes",
    ),
    "logistic_regression": CandidateSpec(
        FAMILIES,
        False,
        _balanced_logistic_regression,
        "all three tag families, classes weighed by their rarity",
    ),
    "marker_logistic_regression": CandidateSpec(
        FAMILIES,
        True,
        _balanced_logistic_regression,
        "all three tag families plus OFF's NOVA markers, classes weighed by their rarity",
    ),
    "marker_decision_tree": CandidateSpec(
        FAMILIES,
        True,
        lambda max_depth=None, min_samples_leaf=1: DecisionTreeClassifier(
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            class_weight="balanced",
            random_state=0,
        ),
        "a class-weighted decision tree over tags and markers: guards and exceptions as splits",
    ),
}
MODEL_KINDS = tuple(CANDIDATES)


def fit_pipeline(
    kind: str, X: sparse.csr_matrix, y: np.ndarray, features: Sequence[str], **params
) -> Pipeline:
    """Fit one of CANDIDATES on the CSR matrix and wrap it with its vectorizer.

    `params` go to the classifier (e.g. `C`, `alpha`, `max_depth`).
    """
    spec = CANDIDATES.get(kind)
    if spec is None:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    cols = family_columns(features, spec.families)
    used = [features[i] for i in cols]
    steps: list[tuple[str, BaseEstimator]] = [("tags", TagVectorizer(used).fit())]
    if spec.markers:
        steps.append(("markers", MarkerFeatures(used).fit()))
    steps.append(("classifier", spec.build(**params)))
    pipeline = Pipeline(steps)
    X_used = X if len(cols) == len(features) else X[:, cols]
    pipeline[1:].fit(X_used, y)
    return pipeline


@dataclass(frozen=True)
class Trial:
    """One candidate with one set of hyperparameters, scored on the validation rows."""

    kind: str
    params: dict[str, Any]
    accuracy: float
    macro_f1: float
    f1_per_class: dict[int, float]
    fit_seconds: float
    train_rows: int
    validation_rows: int


def parameter_grid(kind: str, grids: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the hyperparameters `kind`'s classifier accepts, from `grids`."""
    spec = CANDIDATES.get(kind)
    if spec is None:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    accepted = inspect.signature(spec.build).parameters
    names = [name for name in grids if name in accepted and grids[name]]
    return [dict(zip(names, values, strict=True)) for values in product(*(grids[n] for n in names))]


def tune(
    kinds: Sequence[str],
    grids: dict[str, Sequence[Any]],
    X: sparse.csr_matrix,
    y: np.ndarray,
    features: Sequence[str],
    validation: np.ndarray,
    *,
    max_rows: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> list[Trial]:
    """Fit every candidate and hyperparameter set on the training rows outside `validation`
    and score it on `validation` (macro-F1 over the four groups, so rare groups count).

    `max_rows` caps the rows each trial fits on (a fixed random subset), which bounds the
    cost of a grid at full scale; the chosen setting is then refitted on every row.
    """
    fit_rows = np.flatnonzero(~validation)
    if max_rows is not None and len(fit_rows) > max_rows:
        fit_rows = np.sort(np.random.default_rng(0).choice(fit_rows, max_rows, replace=False))
    val_rows = np.flatnonzero(validation)
    if len(val_rows) == 0 or len(np.unique(y[fit_rows])) < 2:
        raise ValueError(
            f"cannot choose a model: {len(fit_rows)} training and {len(val_rows)} validation "
            "rows, and at least two groups are needed"
        )
    X_fit, y_fit, X_val, y_val = X[fit_rows], y[fit_rows], X[val_rows], y[val_rows]
    trials = []
    for kind in kinds:
        for params in parameter_grid(kind, grids):
            start = time.perf_counter()
            pipeline = fit_pipeline(kind, X_fit, y_fit, features, **params)
            seconds = time.perf_counter() - start
            predicted, _ = predict_matrix(pipeline, columns_for(pipeline, X_val, features))
            # Macro over the groups present (in truth or prediction): a group the validation
            # rows lack and the model never predicts is no error, and must not count as F1 0.
            present = sorted(set(y_val.tolist()) | set(predicted.tolist()))
            f1 = f1_score(y_val, predicted, labels=present, average=None, zero_division=0)
            trial = Trial(
                kind=kind,
                params=params,
                accuracy=float(np.mean(predicted == y_val)),
                macro_f1=float(f1.mean()),
                f1_per_class={int(g): float(v) for g, v in zip(present, f1, strict=True)},
                fit_seconds=seconds,
                train_rows=len(fit_rows),
                validation_rows=len(val_rows),
            )
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
    return trials


def best_trial(trials: Sequence[Trial], kind: str | None = None) -> Trial:
    """The highest validation macro-F1 (then accuracy; then the earlier, cheaper candidate)."""
    pool = [t for t in trials if kind is None or t.kind == kind]
    if not pool:
        raise ValueError(f"no trial of {kind or 'any candidate'}")
    return max(enumerate(pool), key=lambda it: (it[1].macro_f1, it[1].accuracy, -it[0]))[1]


def columns_for(
    pipeline: Pipeline, X: sparse.csr_matrix, features: Sequence[str]
) -> sparse.csr_matrix:
    """X (columns `features`) restricted to the columns `pipeline` reads, in its order."""
    used = pipeline.named_steps["tags"].features
    if list(used) == list(features):
        return X
    index = {f: i for i, f in enumerate(features)}
    return X[:, [index[f] for f in used]]


def predict_matrix(pipeline: Pipeline, X: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Groups and their probabilities for rows already in the pipeline's vocabulary."""
    proba = pipeline[1:].predict_proba(X)
    best = proba.argmax(axis=1)
    classes = pipeline.named_steps["classifier"].classes_
    return classes[best].astype(np.int8), proba[np.arange(len(best)), best]


def _classifier_weights(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """(classes, weights[class, column]) over every column the classifier sees."""
    classifier = pipeline.named_steps["classifier"]
    classes = np.asarray(classifier.classes_)
    if hasattr(classifier, "coef_"):
        W = np.asarray(classifier.coef_, dtype=np.float64)
        if W.shape[0] == 1 and len(classes) == 2:
            W = np.vstack([-W[0], W[0]])
    elif hasattr(classifier, "feature_log_prob_"):
        W = classifier.feature_log_prob_ - classifier.feature_log_prob_.mean(axis=0)
    elif hasattr(classifier, "feature_importances_"):
        W = np.tile(classifier.feature_importances_, (len(classes), 1))
    else:
        raise TypeError(f"cannot weigh the features of {type(classifier).__name__}")
    return classes, W


def tag_weights(pipeline: Pipeline, *, highest: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """How much each vocabulary tag weighs for each class: (classes, weights[class, tag]).

    Linear models: their coefficients. Naive Bayes: how much more likely the tag is under the
    class than on average (log scale). Trees: the tag's importance, the same for every class.
    A marker column's weight is added to the tags that set it: "has a group-g marker" to every
    group-g marker of that family, and (with `highest`) "the highest marker is g" to every
    group-g marker, as if it were the product's highest.
    """
    classes, W = _classifier_weights(pipeline)
    n_tags = len(pipeline.named_steps["tags"].features)
    weights = W[:, :n_tags].copy()
    markers = pipeline.named_steps.get("markers")
    if markers is not None:
        n_family = markers.indicator_.shape[1]
        weights += W[:, n_tags : n_tags + n_family] @ markers.indicator_.T
        if highest:
            weights += _highest_weights(W, n_tags + n_family, markers.marker_groups_)
    return classes, weights


def _highest_weights(W: np.ndarray, first: int, marker_groups: np.ndarray) -> np.ndarray:
    """Each marker tag's share of the "highest marker group" columns: that of its own group."""
    highest = W[:, first : first + 4]
    return np.where(marker_groups > 0, highest[:, np.maximum(marker_groups, 1) - 1], 0.0)


def reasons(
    pipeline: Pipeline, X: sparse.csr_matrix, predicted: np.ndarray, k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The up to `k` tags of each row that pushed most towards its predicted group.

    A tag counts its own weight, its marker family column's, and the "highest marker group"
    column's only where it is of the row's highest group (it is what set that column).
    Returned as CSR-style arrays (offsets of length rows + 1, tag indices into the pipeline's
    vocabulary), so millions of rows never become Python lists.
    """
    classes, weights = tag_weights(pipeline, highest=False)
    class_index = np.searchsorted(classes, predicted)
    X = sparse.csr_matrix(X)
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int32), np.diff(X.indptr))
    cols = X.indices
    # One flat index per entry serves every (class, tag) lookup: gathers over tens of millions
    # of entries are the cost here, so each is done once, and the marker term only on markers.
    flat = class_index.astype(np.int32)[rows] * np.int32(weights.shape[1]) + cols
    contribution = weights.ravel()[flat]
    markers = pipeline.named_steps.get("markers")
    if markers is not None:
        _, W = _classifier_weights(pipeline)
        first = len(pipeline.named_steps["tags"].features) + markers.indicator_.shape[1]
        highest = _highest_weights(W, first, markers.marker_groups_)
        on_marker = np.flatnonzero(markers.marker_groups_[cols] > 0)
        sets_highest = on_marker[
            markers.marker_groups_[cols[on_marker]] == markers.highest_group(X)[rows[on_marker]]
        ]
        contribution[sets_highest] += highest.ravel()[flat[sets_highest]]
    favouring = np.flatnonzero(contribution > 0)
    return _top_per_row(rows[favouring], cols[favouring], contribution[favouring], X.shape[0], k)


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
    if not picked_rows:
        return offsets, np.zeros(0, dtype=np.int32)
    top_rows = np.concatenate(picked_rows)
    np.cumsum(np.bincount(top_rows, minlength=n_rows), out=offsets[1:])
    top_cols = np.empty(len(top_rows), dtype=np.int32)
    top_cols[offsets[top_rows] + np.concatenate(picked_ranks)] = np.concatenate(picked_cols)
    return offsets, top_cols


def explain(pipeline: Pipeline, tags: pd.DataFrame, k: int = 3) -> list[dict]:
    """Prediction, probability and reasons for products given as raw tag lists."""
    X = pipeline.named_steps["tags"].transform(tags)
    groups, probability = predict_matrix(pipeline, X)
    offsets, cols = reasons(pipeline, X, groups, k)
    features = pipeline.named_steps["tags"].features
    return [
        {
            "nova_group": int(groups[i]),
            "probability": float(probability[i]),
            "reasons": [features[c] for c in cols[offsets[i] : offsets[i + 1]]],
        }
        for i in range(len(groups))
    ]


def example_input() -> pd.DataFrame:
    """Two real-looking products as raw tags (parents included, as OFF writes them).

    Used as MLflow's signature and input example; every cell is non-empty so the signature
    types each column as an array of strings.
    """
    return pd.DataFrame(
        {
            "ingredients_tags": [
                [
                    "en:sugar",
                    "en:added-sugar",
                    "en:palm-oil",
                    "en:vegetable-oil-and-fat",
                    "en:hazelnut",
                    "en:cocoa",
                    "en:emulsifier",
                    "en:lecithins",
                    "en:soya-lecithin",
                    "en:e322",
                    "en:flavouring",
                ],
                ["en:water", "en:mineral-water"],
            ],
            "additives_tags": [["en:e322", "en:e322i"], ["en:e290"]],
            "categories_tags": [
                ["en:breakfasts", "en:spreads", "en:sweet-spreads", "en:hazelnut-spreads"],
                ["en:beverages", "en:waters", "en:mineral-waters"],
            ],
        }
    )
