"""The NOVA classifiers: scikit-learn Pipelines that take raw tag lists and return a group.

Each Pipeline is `tags` (a TagVectorizer holding its vocabulary) then `classifier`. Training
fits the classifier on the CSR matrix `feature_matrix` already built set-wise, so the
vectorizer only runs for callers that hand in raw tags (MLflow serving, `predict`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB
from sklearn.pipeline import Pipeline

from nova_assets.lib.features import FAMILIES, split_feature

INPUT_COLUMNS = tuple(f"{family}_tags" for family in FAMILIES)
MODEL_KINDS = ("logistic_regression", "reference_bernoulli_nb")
# Our own types in a Pipeline, declared safe for MLflow's default skops serialisation.
TRUSTED_TYPES = ["nova_assets.lib.models.TagVectorizer"]


def _as_tags(value) -> list[str]:
    """A cell of tags as a list: accepts a list/array or OFF's comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [t for t in value.split(",") if t]
    if isinstance(value, float) and np.isnan(value):
        return []
    return [str(t) for t in value]


class TagVectorizer(TransformerMixin, BaseEstimator):
    """Raw tag columns (`ingredients_tags`, …) to the multi-hot matrix of a fixed vocabulary."""

    def __init__(self, features: Sequence[str] = ()):
        self.features = features

    def fit(self, X=None, y=None):
        self.index_ = {f: i for i, f in enumerate(self.features)}
        return self

    def transform(self, X: pd.DataFrame) -> sparse.csr_matrix:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                "TagVectorizer takes a DataFrame with columns " + ", ".join(INPUT_COLUMNS)
            )
        missing = [c for c in INPUT_COLUMNS if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks column(s) {', '.join(missing)}")
        index = getattr(self, "index_", None) or self.fit().index_
        rows, cols = [], []
        for family in FAMILIES:
            for row, cell in enumerate(X[f"{family}_tags"].tolist()):
                for tag in _as_tags(cell):
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


def fit_pipeline(
    kind: str,
    X: sparse.csr_matrix,
    y: np.ndarray,
    features: Sequence[str],
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> Pipeline:
    """Fit one of MODEL_KINDS on the CSR matrix and wrap it with its vectorizer.

    `reference_bernoulli_nb` is the classic baseline: ingredients only, Bernoulli naive Bayes.
    `logistic_regression` sees all three tag families and weighs classes by their rarity,
    because NOVA 2 is a few percent of products and would otherwise be ignored.
    """
    if kind == "reference_bernoulli_nb":
        cols = family_columns(features, ["ingredients"])
        classifier = BernoulliNB(alpha=1.0).fit(X[:, cols], y)
        used = [features[i] for i in cols]
    elif kind == "logistic_regression":
        classifier = LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter)
        classifier.fit(X, y)
        used = list(features)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return Pipeline([("tags", TagVectorizer(used).fit()), ("classifier", classifier)])


def predict_matrix(pipeline: Pipeline, X: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Groups and their probabilities for rows already in the pipeline's vocabulary."""
    classifier = pipeline.named_steps["classifier"]
    proba = classifier.predict_proba(X)
    best = proba.argmax(axis=1)
    return classifier.classes_[best].astype(np.int8), proba[np.arange(len(best)), best]


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
