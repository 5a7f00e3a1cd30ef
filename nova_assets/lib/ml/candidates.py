"""The model kinds `nova_model` can compare, and the hyperparameters each accepts."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import BernoulliNB
from sklearn.tree import DecisionTreeClassifier

from nova_assets.lib.ml.feature_matrix import FAMILIES


@dataclass(frozen=True)
class CandidateSpec:
    """A model kind: what it reads, whether it masks evidence, how its classifier is built."""

    families: tuple[str, ...]
    markers: bool
    names: bool
    masking: bool
    build: Callable[..., BaseEstimator]
    doc: str
    nutrients: bool = False
    """Whether it reads the nutrients per 100 g."""


def _balanced_logistic_regression(
    C: float = 1.0, max_iter: int = 2000, tol: float = 1e-3
) -> LogisticRegression:
    """Multinomial logistic regression with groups weighed by their rarity (1 and 2 are rare);
    calibration takes the weighting back out of the probabilities. The tolerance stops the
    solver once the fit no longer changes the answers (a tenth of its default's iterations on
    hundreds of thousands of products)."""
    return LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter, tol=tol)


CANDIDATES: dict[str, CandidateSpec] = {
    "reference_bernoulli_nb": CandidateSpec(
        ("ingredients",),
        False,
        False,
        False,
        lambda alpha=1.0: BernoulliNB(alpha=alpha),
        "the classic reference: ingredients only, Bernoulli naive Bayes",
    ),
    "logistic_regression": CandidateSpec(
        FAMILIES,
        False,
        False,
        False,
        _balanced_logistic_regression,
        "all three tag families, groups weighed by their rarity",
    ),
    "marker_logistic_regression": CandidateSpec(
        FAMILIES,
        True,
        False,
        False,
        _balanced_logistic_regression,
        "all three tag families plus OFF's NOVA markers, trained on complete products",
    ),
    "marker_decision_tree": CandidateSpec(
        FAMILIES,
        True,
        False,
        False,
        lambda max_depth=None, min_samples_leaf=1: DecisionTreeClassifier(
            max_depth=max_depth,
            min_samples_leaf=min_samples_leaf,
            class_weight="balanced",
            random_state=0,
        ),
        "a class-weighted decision tree over tags and markers, trained on complete products",
    ),
    "evidence_logistic_regression": CandidateSpec(
        FAMILIES,
        True,
        True,
        True,
        _balanced_logistic_regression,
        "one logistic regression per evidence state, each trained on every product with its "
        "evidence hidden that way; tags, markers, which evidence is present, the name as "
        "character n-grams, and the nutrients",
        nutrients=True,
    ),
}
MODEL_KINDS = tuple(CANDIDATES)


def candidate(kind: str) -> CandidateSpec:
    spec = CANDIDATES.get(kind)
    if spec is None:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    return spec


def parameter_grid(kind: str, grids: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the hyperparameters `kind`'s classifier accepts, from `grids`."""
    accepted = inspect.signature(candidate(kind).build).parameters
    names = [name for name in grids if name in accepted and grids[name]]
    return [dict(zip(names, values, strict=True)) for values in product(*(grids[n] for n in names))]
