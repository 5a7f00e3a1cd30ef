import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from nova_assets.lib.features import split_feature
from nova_assets.lib.models import (
    MODEL_KINDS,
    TRUSTED_TYPES,
    MarkerFeatures,
    best_trial,
    example_input,
    explain,
    fit_pipeline,
    parameter_grid,
    predict_matrix,
    reasons,
    tag_weights,
    tune,
)
from nova_assets.lib.nova_rules import marker_group
from nova_assets.lib.split import validation_mask

FEATURES = [
    "additives:en:e322",
    "categories:en:sugars",
    "ingredients:en:sugar",
    "ingredients:en:water",
]


def training_data():
    rng = np.random.default_rng(0)
    rows, labels = [], []
    for _ in range(400):
        group = int(rng.choice([1, 2, 4]))
        row = {1: [0, 0, 0, 1], 2: [0, 1, 1, 0], 4: [1, 0, 1, 0]}[group]
        rows.append(row)
        labels.append(group)
    return sparse.csr_matrix(np.array(rows, dtype=np.float32)), np.array(labels, dtype=np.int8)


def test_pipeline_on_raw_tags_equals_the_matrix_path():
    X, y = training_data()
    pipeline = fit_pipeline("logistic_regression", X, y, FEATURES)
    raw = pd.DataFrame(
        {
            "ingredients_tags": [["en:water"], ["en:sugar"], ["en:sugar"]],
            "additives_tags": [[], [], ["en:e322"]],
            "categories_tags": [[], ["en:sugars"], []],
        }
    )
    groups, probability = predict_matrix(pipeline, pipeline.named_steps["tags"].transform(raw))
    assert list(pipeline.predict(raw)) == list(groups) == [1, 2, 4]
    assert np.all((probability > 0.5) & (probability <= 1))


def test_reference_model_sees_ingredients_only():
    X, y = training_data()
    reference = fit_pipeline("reference_bernoulli_nb", X, y, FEATURES)
    assert list(reference.named_steps["tags"].features) == [
        "ingredients:en:sugar",
        "ingredients:en:water",
    ]
    # Without additives or categories it cannot tell group 2 from group 4: both are "sugar".
    raw = pd.DataFrame(
        {
            "ingredients_tags": [["en:sugar"]],
            "additives_tags": [["en:e322"]],
            "categories_tags": [[]],
        }
    )
    assert reference.predict(raw)[0] in (2, 4)


def test_unknown_kind_is_refused():
    X, y = training_data()
    with pytest.raises(ValueError, match="unknown model kind 'forest'"):
        fit_pipeline("forest", X, y, FEATURES)


def test_example_input_has_every_column_filled():
    example = example_input()
    assert all(len(cell) > 0 for column in example for cell in example[column])


def marker_data(n: int = 600, seed: int = 0):
    """Products labelled by OFF's rule (the highest marker group present, else 1)."""
    rng = np.random.default_rng(seed)
    tags = [
        "ingredients:en:water",
        "ingredients:en:salt",
        "categories:en:sugars",
        "additives:en:e322",
        "ingredients:en:flavouring",
        "ingredients:en:carrot",
    ]
    groups = [marker_group(*split_feature(t)) or 1 for t in tags]
    X = (rng.random((n, len(tags))) < 0.25).astype(np.float32)
    y = np.array([max([g for g, x in zip(groups, row, strict=True) if x] or [1]) for row in X])
    return sparse.csr_matrix(X), y.astype(np.int8), tags


def test_marker_features_add_the_highest_marker_group():
    X, y, tags = marker_data(50)
    markers = MarkerFeatures(tags).fit()
    out = markers.transform(X).toarray()
    names = markers.feature_names()
    assert out.shape[1] == len(tags) + len(names)
    highest = out[:, len(tags) + names.index("markers:highest:group-1") :]
    assert (highest.sum(axis=1) == 1).all()
    assert list(highest.argmax(axis=1) + 1) == list(y)


def test_marker_model_learns_the_rule_exactly():
    X, y, tags = marker_data()
    pipeline = fit_pipeline("marker_logistic_regression", X, y, tags, C=10.0)
    predicted, _ = predict_matrix(pipeline, X)
    assert (predicted == y).all()


def test_tuning_scores_every_setting_on_held_out_rows_and_picks_the_best():
    X, y, tags = marker_data(800)
    validation = np.arange(len(y)) % 5 == 0
    seen = []
    trials = tune(
        ["reference_bernoulli_nb", "marker_logistic_regression"],
        {"alpha": [0.1, 1.0], "C": [0.01, 10.0], "max_depth": [3]},
        X,
        y,
        tags,
        validation,
        on_trial=seen.append,
    )
    assert [(t.kind, t.params) for t in trials] == [
        ("reference_bernoulli_nb", {"alpha": 0.1}),
        ("reference_bernoulli_nb", {"alpha": 1.0}),
        ("marker_logistic_regression", {"C": 0.01}),
        ("marker_logistic_regression", {"C": 10.0}),
    ]
    assert seen == trials
    assert all(t.validation_rows == validation.sum() for t in trials)
    assert all(t.train_rows == (~validation).sum() for t in trials)
    best = best_trial(trials)
    assert best.macro_f1 == max(t.macro_f1 for t in trials)
    assert best.kind == "marker_logistic_regression"
    assert best_trial(trials, "reference_bernoulli_nb").kind == "reference_bernoulli_nb"


def test_tuning_caps_the_rows_each_trial_fits_on():
    X, y, tags = marker_data(800)
    validation = np.arange(len(y)) % 5 == 0
    trials = tune(["logistic_regression"], {"C": [1.0]}, X, y, tags, validation, max_rows=100)
    assert trials[0].train_rows == 100


def test_ties_go_to_the_earlier_candidate():
    X, y, tags = marker_data(400)
    validation = np.arange(len(y)) % 4 == 0
    trials = tune(["marker_logistic_regression"], {"C": [5.0, 10.0]}, X, y, tags, validation)
    assert trials[0].macro_f1 == trials[1].macro_f1 == 1.0
    assert best_trial(trials) is trials[0]


def test_parameter_grid_keeps_what_each_kind_accepts():
    grids = {"C": [1, 2], "alpha": [0.5], "max_depth": [4, 8]}
    assert parameter_grid("reference_bernoulli_nb", grids) == [{"alpha": 0.5}]
    assert parameter_grid("marker_decision_tree", grids) == [{"max_depth": 4}, {"max_depth": 8}]
    with pytest.raises(ValueError, match="unknown model kind 'svm'"):
        parameter_grid("svm", grids)


@pytest.mark.parametrize("kind", ["logistic_regression", "reference_bernoulli_nb"])
def test_reasons_are_present_tags_that_favour_the_prediction(kind):
    X, y, tags = marker_data()
    pipeline = fit_pipeline(kind, X, y, tags)
    used = list(pipeline.named_steps["tags"].features)
    X_used = X[:, [tags.index(f) for f in used]]
    predicted, _ = predict_matrix(pipeline, X_used)
    offsets, cols = reasons(pipeline, X_used, predicted, k=2)
    assert len(offsets) == X.shape[0] + 1 and (np.diff(offsets) <= 2).all()
    classes, weights = tag_weights(pipeline)
    dense = X_used.toarray()
    for row in range(X.shape[0]):
        chosen = cols[offsets[row] : offsets[row + 1]]
        assert all(dense[row, c] == 1 for c in chosen)
        w = weights[list(classes).index(predicted[row])]
        assert all(w[c] > 0 for c in chosen)
        assert list(w[chosen]) == sorted(w[chosen], reverse=True)
        favouring = [c for c in np.flatnonzero(dense[row]) if w[c] > 0]
        assert len(chosen) == min(2, len(favouring))
        left_out = [w[c] for c in favouring if c not in chosen]
        assert not left_out or min(w[chosen]) >= max(left_out)


def test_reasons_of_rows_without_tags_and_of_no_rows_are_empty():
    X, y, tags = marker_data()
    pipeline = fit_pipeline("logistic_regression", X, y, tags)
    empty_row = sparse.csr_matrix((2, X.shape[1]), dtype=np.float32)
    mixed = sparse.vstack([empty_row[:1], X[:3], empty_row[1:]], format="csr")
    predicted, _ = predict_matrix(pipeline, mixed)
    offsets, cols = reasons(pipeline, mixed, predicted, k=3)
    counts = np.diff(offsets)
    assert counts[0] == 0 and counts[-1] == 0 and counts[1:4].sum() > 0
    offsets, cols = reasons(pipeline, mixed[:0], predicted[:0], k=3)
    assert offsets.tolist() == [0] and len(cols) == 0


def test_a_marker_models_first_reason_is_a_marker_of_the_predicted_group():
    X, y, tags = marker_data()
    pipeline = fit_pipeline("marker_logistic_regression", X, y, tags, C=10.0)
    predicted, _ = predict_matrix(pipeline, X)
    offsets, cols = reasons(pipeline, X, predicted, k=3)
    groups = [marker_group(*split_feature(t)) or 1 for t in tags]
    checked = 0
    for row in np.flatnonzero(predicted > 1):
        first = cols[offsets[row]]
        assert groups[first] == predicted[row], (row, tags[first])
        checked += 1
    assert checked > 100


def test_explain_gives_group_probability_and_reasons_for_raw_tags():
    X, y, tags = marker_data()
    pipeline = fit_pipeline("marker_logistic_regression", X, y, tags, C=10.0)
    raw = pd.DataFrame(
        {
            "ingredients_tags": [["en:water", "en:flavouring"], ["en:carrot"]],
            "additives_tags": [[], []],
            "categories_tags": [[], []],
        }
    )
    first, second = explain(pipeline, raw)
    assert first["nova_group"] == 4 and "ingredients:en:flavouring" in first["reasons"]
    assert second["nova_group"] == 1
    assert 0.5 < first["probability"] <= 1


def test_validation_mask_is_stable_and_about_the_asked_share():
    codes = [f"{i:013d}" for i in range(5000)]
    mask = validation_mask(codes, 20)
    assert (mask == validation_mask(list(reversed(codes)), 20)[::-1]).all()
    assert 0.17 < mask.mean() < 0.23
    assert not (mask & ~validation_mask(codes, 30)).any()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_candidate_survives_mlflow_logging_and_loading(kind, tmp_path):
    """Whichever candidate wins must log with skops (only trusted types) and load back."""
    X, y, tags = marker_data()
    pipeline = fit_pipeline(kind, X, y, tags)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    example = example_input()
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(pipeline, name="model", skops_trusted_types=TRUSTED_TYPES)
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert list(loaded.predict(example)) == list(pipeline.predict(example))
