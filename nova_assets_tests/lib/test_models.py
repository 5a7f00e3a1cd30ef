import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from nova_assets.lib.models import example_input, fit_pipeline, predict_matrix

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
