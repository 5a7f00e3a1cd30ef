"""The classifiers: raw products and matrices agree, each kind reads what it should, the
evidence model does not read missing evidence as "unprocessed", calibration and thresholds
hold on the rows they were fitted on, and every kind survives MLflow."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from nova_assets.lib.ml.candidates import MODEL_KINDS, parameter_grid
from nova_assets.lib.ml.classifiers import (
    TRUSTED_TYPES,
    fit_on_used_columns,
    fit_pipeline,
    predict,
    rules_gate,
)
from nova_assets.lib.ml.evidence import STATE_SLICE, STATES, has_evidence, hide, states
from nova_assets.lib.ml.markers import rules_prediction
from nova_assets.lib.ml.model_input import NUTRIENT_INPUTS, ProductVectorizer, example_input
from nova_assets.lib.ml.reasons import explain
from nova_assets.lib.ml.registry import load_pipeline
from nova_assets_tests.lib import synthetic


@pytest.fixture(scope="module")
def data():
    """Train, validation and test products; validation and test in the train vocabulary."""
    train = synthetic.matrix(3000, seed=0)
    vectorizer = ProductVectorizer(train.features).fit()

    def more(n: int, seed: int):
        frame, labels = synthetic.products(n, seed)
        m = vectorizer.transform(frame)
        m.labels = labels
        return frame, m

    return train, more(800, 1), more(800, 2)


@pytest.fixture(scope="module")
def evidence_model(data):
    train, (_, validation), _ = data
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    pipeline.named_steps["classifier"].calibrate(validation, validation.labels, 0.95)
    return pipeline


def test_raw_products_and_the_matrix_give_the_same_answers(data, evidence_model):
    _, _, (frame, test) = data
    assert list(evidence_model.predict(frame)) == list(predict(evidence_model, test).groups)
    assert (evidence_model.predict(frame) == test.labels).mean() > 0.95


def test_the_reference_reads_ingredients_only(data):
    train, _, _ = data
    reference = fit_pipeline("reference_bernoulli_nb", train, train.labels)
    used = reference.named_steps["classifier"].used_features_
    assert used and all(f.startswith("ingredients:") for f in used)


def test_an_unknown_kind_is_refused(data):
    train, _, _ = data
    with pytest.raises(ValueError, match="unknown model kind 'forest'"):
        fit_pipeline("forest", train, train.labels)


def test_the_evidence_model_keeps_an_expert_per_evidence_state(evidence_model):
    assert set(evidence_model.named_steps["classifier"].experts_) == set(STATES)


def test_missing_ingredients_do_not_read_as_unprocessed(data, evidence_model):
    """The old failure: trained on complete products only, a model reads "no marker" as group 1
    when the ingredients are simply missing. The evidence model reads the name and categories."""
    train, _, (_, test) = data
    hidden = hide(test, "no_ingredients")
    ultra = hidden.labels == 4
    complete_only = fit_pipeline("marker_logistic_regression", train, train.labels)
    assert (predict(complete_only, hidden).groups[ultra] == 1).mean() > 0.8
    assert (predict(evidence_model, hidden).groups[ultra] == 4).mean() > 0.9


def test_an_e_number_among_the_ingredients_stands_for_a_hidden_additive(data, evidence_model):
    """OFF's rules read additives from `additives_tags` only; with those missing, the model
    still sees the additive among the ingredient tags."""
    _, _, (_, test) = data
    additive_only = test.take(np.flatnonzero(test.evidence[:, 1] & (test.labels == 4)))
    hidden = hide(additive_only, "no_additives")
    assert len(hidden) > 50
    assert (rules_prediction(hidden.features, hidden.X) == 1).all()
    assert (predict(evidence_model, hidden).groups == 4).mean() > 0.95
    # Products without additives are no less sure of themselves for it.
    plain = test.take(np.flatnonzero(test.labels == 1))
    assert (predict(evidence_model, hide(plain, "no_additives")).groups == 1).mean() > 0.95


def test_a_group_4_marker_is_final(data, evidence_model):
    """OFF lets nothing override a group-4 marker: neither may the name or the categories."""
    _, _, (frame, _) = data
    apples = frame.head(1).assign(
        ingredients_tags=[["en:apple", "en:fruit"]],
        additives_tags=[["en:e950"]],
        categories_tags=[["en:plant-based-foods"]],
        product_name=["pommes fraîches"],
    )
    for hidden in ({}, {"ingredients_tags": [[]], "partial_ingredients": [True]}):
        answer = explain(evidence_model, apples.assign(**hidden))[0]
        assert answer["nova_group"] == 4 and answer["probability"] > 0.95, hidden


def test_partly_unknown_ingredients_go_to_their_own_expert(data, evidence_model):
    _, _, (frame, _) = data
    flagged = frame.head(5).assign(partial_ingredients=True)
    matrix = evidence_model.named_steps["products"].transform(flagged)
    assert (states(matrix) == STATES.index("partial")).all()
    plain = evidence_model.named_steps["products"].transform(frame.head(5))
    assert (states(plain) == STATES.index("complete")).all()


def test_calibrated_probabilities_and_thresholds_hold_where_they_were_fitted(data, evidence_model):
    _, (_, validation), _ = data
    classifier = evidence_model.named_steps["classifier"]
    proba = classifier.predict_proba(validation)
    assert proba.shape == (len(validation), 4)
    assert np.allclose(proba.sum(axis=1), 1) and (proba >= 0).all()
    thresholds = classifier.thresholds_
    assert thresholds.shape == (len(STATES), 4)
    assert ((thresholds >= 0) & ((thresholds <= 1) | np.isinf(thresholds))).all()
    for index, state in enumerate(STATES):
        slice_name = STATE_SLICE[state]
        rows = hide(validation, slice_name)
        rows = rows.take(np.flatnonzero((states(rows) == index) & has_evidence(rows)))
        answer = predict(evidence_model, rows)
        if answer.confident.any():
            right = answer.groups[answer.confident] == rows.labels[answer.confident]
            assert right.mean() >= 0.95, state


def test_group_1_is_said_only_above_its_floor(data, evidence_model):
    _, _, (_, test) = data
    classifier = evidence_model.named_steps["classifier"]
    saved = classifier.group_1_floor_.copy()
    try:
        classifier.group_1_floor_[:] = 0.0
        free = predict(evidence_model, test)
        classifier.group_1_floor_[:] = 1.1
        never = predict(evidence_model, test)
    finally:
        classifier.group_1_floor_[:] = saved
    assert (free.groups == 1).sum() > 50 and (never.groups == 1).sum() == 0
    changed = free.groups != never.groups
    assert (free.groups[changed] == 1).all()


def test_example_input_has_every_column_filled():
    example = example_input()
    assert all(len(cell) > 0 for column in example.columns[:4] for cell in example[column])
    assert set(example.columns) == {
        "ingredients_tags",
        "additives_tags",
        "categories_tags",
        "product_name",
        "partial_ingredients",
        *NUTRIENT_INPUTS,
    }


def test_parameter_grid_keeps_what_each_kind_accepts():
    grids = {"C": [1, 2], "alpha": [0.5], "max_depth": [4, 8]}
    assert parameter_grid("reference_bernoulli_nb", grids) == [{"alpha": 0.5}]
    assert parameter_grid("marker_decision_tree", grids) == [{"max_depth": 4}, {"max_depth": 8}]
    assert parameter_grid("evidence_logistic_regression", grids) == [{"C": 1}, {"C": 2}]
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        parameter_grid("svm", grids)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_candidate_survives_mlflow_logging_and_loading(kind, data, tmp_path):
    """Whichever candidate wins must log with skops (only trusted types) and load back."""
    train, (_, validation), _ = data
    pipeline = fit_pipeline(kind, train, train.labels)
    pipeline.named_steps["classifier"].calibrate(validation, validation.labels)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    example = pd.concat([example_input(), example_input().drop(columns="product_name")])
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(pipeline, name="model", skops_trusted_types=TRUSTED_TYPES)
    loaded = load_pipeline(uri, info.model_uri)
    assert list(loaded.predict(example)) == list(pipeline.predict(example))
    assert np.array_equal(
        loaded.named_steps["classifier"].thresholds_, pipeline.named_steps["classifier"].thresholds_
    )


def test_a_fit_started_from_a_smaller_fit_gives_the_same_answers_in_fewer_steps(data):
    train, (_, validation), _ = data
    few = train.take(np.arange(1000))
    first = fit_pipeline("evidence_logistic_regression", few, few.labels)
    cold = fit_pipeline("evidence_logistic_regression", train, train.labels)
    warm = fit_pipeline("evidence_logistic_regression", train, train.labels, start=first)
    cold_experts = cold.named_steps["classifier"].experts_
    warm_experts = warm.named_steps["classifier"].experts_
    assert set(warm_experts) == set(cold_experts)
    steps = {
        name: sum(int(e.n_iter_[0]) for e in experts.values())
        for name, experts in (("cold", cold_experts), ("warm", warm_experts))
    }
    assert steps["warm"] < steps["cold"], steps
    agree = np.mean(predict(cold, validation).groups == predict(warm, validation).groups)
    assert agree >= 0.98


def test_unused_columns_get_zero_coefficients_and_a_start_over_other_groups_is_ignored():
    rng = np.random.default_rng(0)
    used = sparse.random(600, 30, density=0.2, format="csr", random_state=1)
    X = sparse.hstack([used, sparse.csr_matrix((600, 10))], format="csr")  # 10 columns unused
    y = rng.integers(1, 5, 600)
    cold = fit_on_used_columns(LogisticRegression(max_iter=500), X, y)
    assert cold.coef_.shape == (4, 40) and cold.n_features_in_ == 40
    assert not cold.coef_[:, 30:].any() and cold.coef_[:, :30].any()
    assert (cold.predict(X) == LogisticRegression(max_iter=500).fit(X, y).predict(X)).mean() > 0.97
    two_groups = LogisticRegression().fit(X, np.where(y > 2, 4, 1))
    started = fit_on_used_columns(LogisticRegression(max_iter=500), X, y, start=two_groups)
    np.testing.assert_allclose(started.coef_, cold.coef_)


def test_a_plain_water_without_ingredients_is_group_1_as_off_says():
    import pandas as pd

    from nova_assets.lib.ml.feature_matrix import WATER_FEATURES
    from nova_assets.lib.ml.model_input import ProductVectorizer

    frame, labels = synthetic.products(1500)
    features = sorted({*synthetic.vocabulary(frame), *WATER_FEATURES})
    train = ProductVectorizer(features).fit().transform(frame)
    pipeline = fit_pipeline("evidence_logistic_regression", train, labels)
    water = ["en:beverages", "en:waters", "en:mineral-waters"]
    raw = pd.DataFrame(
        {
            "ingredients_tags": [[], ["en:water", "en:flavouring"], []],
            "additives_tags": [[], [], []],
            "categories_tags": [water, water, ["en:beverages", "en:waters", "en:flavoured-waters"]],
            "product_name": ["", "", ""],
        }
    )
    groups = pipeline.predict(raw)
    assert groups[0] == 1  # OFF keeps a plain water in group 1 without ingredients
    assert groups[1] == 4  # a group-4 marker is final, water or not
    classifier = pipeline.named_steps["classifier"]
    matrix = pipeline.named_steps["products"].transform(raw)
    assert classifier.markers_.plain_water(classifier._tags(matrix)).tolist() == [
        True,
        True,
        False,
    ]


def test_the_experts_take_a_group_from_the_rules_only_where_they_are_better_everywhere():
    # Where OFF's rules say 1, the experts say 2 and are right on 40 corpus rows; the rules are
    # right on the dump's own 3 rows there (groups: columns in GROUPS; y: NOVA groups).
    rules = np.array([1] * 43 + [4] * 40)
    y = np.array([2] * 40 + [1] * 3 + [4] * 40)
    experts = np.array([1] * 43 + [3] * 40)  # 2 everywhere the rules say 1, then 4
    corpus_only = np.array([False] * 83)
    corpus_only[:40] = True
    assert not rules_gate(experts, rules, y)[0]  # measured better: the experts answer
    assert rules_gate(experts, rules, y, ~corpus_only)[0]  # but worse on the dump's own rows
    own_agree = ~corpus_only
    own_agree[40:43] = False  # no own row where the rules say 1: the corpus decides
    assert not rules_gate(experts, rules, y, own_agree)[0]
    assert rules_gate(experts[:10], rules[:10], y[:10])[0]  # too few rows to measure
    assert rules_gate(experts, rules, y)[1:3].all()  # no row where the rules say 2 or 3
    y_own_either = y.copy()
    y_own_either[40:43] = 3  # on the dump's own rows, experts and rules as wrong: rules answer
    assert rules_gate(experts, rules, y_own_either, ~corpus_only)[0]
