"""Reasons are the product's own tags (or its name) that pushed towards the answer, strongest
first; a marker model's first reason for a group is a marker of that group."""

import re

import numpy as np
import pandas as pd
import pytest

from nova_assets.lib.ml.classifiers import fit_pipeline, predict
from nova_assets.lib.ml.evidence import STATES, hide, states
from nova_assets.lib.ml.feature_matrix import split_feature
from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.ml.reasons import (
    NAME_REASON,
    PROFILE_REASON,
    explain,
    reason_names,
    reasons,
    tag_weights,
)
from nova_assets.lib.nutrients import CSV_COLUMNS
from nova_assets.lib.warehouse.nova_rules import marker_group
from nova_assets_tests.lib import synthetic


@pytest.fixture(scope="module")
def trained():
    train = synthetic.matrix(2000, seed=0)
    frame, labels = synthetic.products(300, seed=5)
    test = ProductVectorizer(train.features).fit().transform(frame)
    test.labels = labels
    return train, test


@pytest.mark.parametrize("kind", ["marker_logistic_regression", "reference_bernoulli_nb"])
def test_reasons_are_present_tags_that_favour_the_answer(trained, kind):
    train, test = trained
    pipeline = fit_pipeline(kind, train, train.labels)
    classifier = pipeline.named_steps["classifier"]
    answers = predict(pipeline, test).groups
    offsets, cols = reasons(classifier, test, answers, k=2)
    assert len(offsets) == len(test) + 1 and (np.diff(offsets) <= 2).all()
    classes, weights = tag_weights(classifier, "complete", highest=False)
    X = test.X[:, classifier.columns_].toarray()
    checked = 0
    for row in range(len(test)):
        chosen = cols[offsets[row] : offsets[row + 1]]
        w = weights[list(classes).index(answers[row])]
        assert all(X[row, c] == 1 for c in chosen)
        favouring = [c for c in np.flatnonzero(X[row]) if w[c] > 0]
        if classifier.markers_ is None:  # marker terms add to the tags' own weights
            assert list(w[chosen]) == sorted(w[chosen], reverse=True)
            left_out = [w[c] for c in favouring if c not in chosen]
            assert not left_out or min(w[chosen]) >= max(left_out)
            assert len(chosen) == min(2, len(favouring))
        checked += len(chosen)
    assert checked > len(test)


def test_a_marker_models_first_reason_is_a_marker_of_its_answer(trained):
    train, test = trained
    pipeline = fit_pipeline("marker_logistic_regression", train, train.labels, C=10.0)
    classifier = pipeline.named_steps["classifier"]
    answers = predict(pipeline, test).groups
    offsets, cols = reasons(classifier, test, answers, k=3)
    names = reason_names(classifier)
    checked = 0
    for row in np.flatnonzero(answers > 2):
        first = names[cols[offsets[row]]]
        assert marker_group(*split_feature(first)) == answers[row], first
        checked += 1
    assert checked > 100


def test_the_name_is_a_reason_where_it_is_the_evidence(trained):
    train, test = trained
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    classifier = pipeline.named_steps["classifier"]
    names_only = hide(test, "name_only")
    assert (states(names_only) == STATES.index("name_only")).all()
    answers = predict(pipeline, names_only).groups
    offsets, cols = reasons(classifier, names_only, answers, k=3)
    names = reason_names(classifier)
    given = [names[c] for c in cols]
    assert given and set(given) == {NAME_REASON}
    assert (np.diff(offsets) <= 1).all()


def test_reasons_of_no_products_are_empty(trained):
    train, test = trained
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    empty = test.take(np.array([], dtype=int))
    offsets, cols = reasons(pipeline.named_steps["classifier"], empty, np.array([], np.int8))
    assert offsets.tolist() == [0] and len(cols) == 0


def test_explain_answers_raw_products(trained):
    train, _ = trained
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    raw = pd.DataFrame(
        {
            "ingredients_tags": [["en:wheat-flour", "en:flavouring"], [], []],
            "additives_tags": [[], [], []],
            "categories_tags": [["en:snacks"], ["en:plant-based-foods"], []],
            "product_name": ["chocolate cookies", "pommes fraîches", "Schokoriegel"],
        }
    )
    first, second, third = explain(pipeline, raw)
    assert first["nova_group"] == 4 and "ingredients:en:flavouring" in first["reasons"]
    assert first["evidence"] == ["ingredients", "categories", "name"]
    assert second["evidence"] == ["categories", "name"] and second["nova_group"] == 1
    assert third["evidence"] == ["name"] and third["nova_group"] == 4
    assert third["reasons"] == [NAME_REASON]
    for answer in (first, second, third):
        assert 0 < answer["probability"] <= 1 and isinstance(answer["confident"], bool)
        assert answer["partial_ingredients"] is False


def test_nutrients_are_reasons_named_with_their_values(trained):
    train, test = trained
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    classifier = pipeline.named_steps["classifier"]
    known = hide(test, "name_nutrients")
    answers = predict(pipeline, known).groups
    offsets, cols = reasons(classifier, known, answers, k=3)
    names = reason_names(classifier)
    given = {names[c] for c in cols}
    assert given & set(CSV_COLUMNS), given  # nutrients push where they are the evidence
    assert given <= {NAME_REASON, PROFILE_REASON, *CSV_COLUMNS}
    raw = pd.DataFrame(
        {
            "ingredients_tags": [[]],
            "additives_tags": [[]],
            "categories_tags": [[]],
            "product_name": [""],
            **dict(
                zip(CSV_COLUMNS, [[v] for v in (480, 22, 10, 60, 35, 1.5, 5, 0.8)], strict=True)
            ),
        }
    )
    (answer,) = explain(pipeline, raw)
    assert answer["evidence"] == ["nutrients"] and answer["nova_group"] == 4
    spelled = [r for r in answer["reasons"] if "/ 100 g" in r]
    assert spelled and all(re.fullmatch(r"[a-z ]+ [\d.]+ (g|kcal) / 100 g", r) for r in spelled)


def test_a_nutrients_push_is_the_weight_of_its_columns(trained):
    """The cumulative-sum shortcut gives each nutrient the sum of its design columns' weights."""
    from nova_assets.lib.ml.classifiers import NUTRIENT_SCALE
    from nova_assets.lib.ml.reasons import _block, _classifier_weights, _nutrient_contributions
    from nova_assets.lib.nutrients import NUTRIENTS, nutrient_design

    train, test = trained
    classifier = fit_pipeline("evidence_logistic_regression", train, train.labels).named_steps[
        "classifier"
    ]
    _, W = _classifier_weights(classifier.expert("complete"))
    nutrients = test.nutrients.copy()
    nutrients[::3, 2] = np.nan  # some values unknown
    classes = np.arange(len(test)) % 4
    pushed = dict(
        _nutrient_contributions(
            classifier, "complete", W, nutrients, np.ones(len(test), bool), classes
        )
    )
    dense = nutrient_design(nutrients, NUTRIENT_SCALE).toarray()
    weighed = dense * W[:, _block(classifier, "nutrients")][classes]
    owner = np.repeat(np.arange(len(NUTRIENTS)), [1 + len(n.edges) for n in NUTRIENTS])
    for k in range(len(CSV_COLUMNS)):
        assert np.allclose(pushed[k], weighed[:, owner == k].sum(axis=1)), CSV_COLUMNS[k]
