import duckdb
import numpy as np
import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

from nova_assets.lib.ml.model_input import (
    BadModelInput,
    ProductVectorizer,
    as_tags,
    normalise_tag,
    read_products,
)

GOOD = {
    "ingredients_tags": [["en:sugar"], "en:water, en:salt", None],
    "additives_tags": [np.array(["en:e322"]), [], float("nan")],
    "categories_tags": [[], [], ["en:waters"]],
}


def test_lists_arrays_strings_and_nothing_are_tags():
    products = read_products(pd.DataFrame(GOOD))
    assert products.tags["ingredients_tags"] == [["en:sugar"], ["en:water", "en:salt"], []]
    assert products.tags["additives_tags"] == [["en:e322"], [], []]
    assert products.names == ["", "", ""] and products.partial == [False] * 3
    assert as_tags("a,,b,") == ["en:a", "en:b"]


def test_names_and_the_partial_flag_are_optional_columns():
    frame = pd.DataFrame(
        {
            **{k: [[], ["en:salt"]] for k in GOOD},
            "product_name": ["  Chocolat noir ", None],
            "partial_ingredients": [None, True],
        }
    )
    products = read_products(frame)
    assert products.names == ["Chocolat noir", ""]
    assert products.partial == [False, True]


def test_a_frame_straight_from_duckdb_with_null_lists_is_products():
    frame = duckdb.sql(
        "SELECT ['en:sugar'] AS ingredients_tags, NULL::VARCHAR[] AS additives_tags, "
        "[]::VARCHAR[] AS categories_tags, NULL::VARCHAR AS product_name"
    ).df()
    assert frame["additives_tags"][0] is pd.NA
    products = read_products(frame)
    assert products.tags == {
        "ingredients_tags": [["en:sugar"]],
        "additives_tags": [[]],
        "categories_tags": [[]],
    }
    assert products.names == [""]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"ingredients_tags": [["en:sugar"]]}),
            "missing column(s) additives_tags, categories_tags",
        ),
        (pd.DataFrame({k: [] for k in GOOD}), "the request has no product"),
        (
            pd.DataFrame({**{k: [["x"]] for k in GOOD}, "additives_tags": [[1]]}),
            "row 0, column additives_tags: tags must be strings",
        ),
        (
            pd.DataFrame({**{k: [["x"], ["y"]] for k in GOOD}, "ingredients_tags": [["x"], 7]}),
            "row 1, column ingredients_tags: expected a list of tags, got int",
        ),
        (
            pd.DataFrame({k: [["x"], [], ["y"], []] for k in GOOD}),
            "product(s) at row 1, 3 have no tags, no name and no nutrient at all",
        ),
        (
            pd.DataFrame({**{k: [["x"]] for k in GOOD}, "product_name": [3]}),
            "row 0, column product_name: expected text, got int",
        ),
        (
            pd.DataFrame({**{k: [["x"]] for k in GOOD}, "partial_ingredients": ["yes"]}),
            "row 0, column partial_ingredients: expected true or false, got str",
        ),
    ],
    ids=[
        "missing-column",
        "no-rows",
        "number-in-list",
        "number-not-list",
        "empty-products",
        "number-as-name",
        "text-as-flag",
    ],
)
def test_bad_input_says_what_is_wrong(frame, message):
    with pytest.raises(BadModelInput) as error:
        read_products(frame)
    assert message in error.value.message
    # MLflow's scoring server answers this error code with HTTP 400.
    assert error.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)


def test_a_product_with_only_a_name_is_enough():
    frame = pd.DataFrame({**{k: [[]] for k in GOOD}, "product_name": ["Coca-Cola"]})
    assert read_products(frame).names == ["Coca-Cola"]


def test_not_a_table_is_refused():
    with pytest.raises(BadModelInput, match="expected a table of products, got list"):
        read_products([["en:sugar"]])


def test_the_vectorizer_checks_its_input():
    vectorizer = ProductVectorizer(["ingredients:en:sugar"]).fit()
    with pytest.raises(BadModelInput, match="missing column"):
        vectorizer.transform(pd.DataFrame({"ingredients_tags": [["en:sugar"]]}))
    matrix = vectorizer.transform(pd.DataFrame(GOOD))
    assert matrix.X.toarray().tolist() == [[1.0], [0.0], [0.0]]
    assert matrix.evidence.tolist() == [
        [True, True, False, False, False],
        [True, False, False, False, False],
        [False, False, True, False, False],
    ]


@pytest.mark.parametrize(
    ("written", "tag"),
    [
        ("sugar", "en:sugar"),
        ("Palm oil", "en:palm-oil"),
        (" palm oil ", "en:palm-oil"),
        ("palm_oil", "en:palm-oil"),
        ("en: Palm  Oil", "en:palm-oil"),
        ("E322", "en:e322"),
        ("fr:huile de palme", "fr:huile-de-palme"),
        ("en:palm-oil", "en:palm-oil"),
        ("  ", ""),
    ],
)
def test_tags_are_spelt_as_off_does(written, tag):
    assert normalise_tag(written) == tag


def test_the_tags_a_vectorizer_does_not_read_are_named():
    vectorizer = ProductVectorizer(["ingredients:en:sugar", "categories:en:waters"]).fit()
    frame = pd.DataFrame(
        {
            "ingredients_tags": [["sugar", "foo"], ["Bar"], []],
            # en:e322i is no column, but one of OFF's markers: read by the rules, not unknown.
            "additives_tags": [["en:e322i"], [], []],
            "categories_tags": [[], ["waters"], ["en:nowhere"]],
        }
    )
    matrix, unknown = vectorizer.read(frame)
    assert matrix.X.toarray().tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert unknown == [
        {"ingredients_tags": ["en:foo"]},
        {"ingredients_tags": ["en:bar"]},
        {"categories_tags": ["en:nowhere"]},
    ]
    # A vectorizer as logged refuses the product it knows nothing of, naming its tags.
    logged = ProductVectorizer(vectorizer.features, refuse_unknown=True).fit()
    with pytest.raises(BadModelInput) as refused:
        logged.transform(frame)
    assert refused.value.message.startswith(
        "product(s) at row 2 have no tag the model knows, no name and no nutrient: nothing to "
        "predict from. Tags not understood: row 2 categories_tags: en:nowhere; OFF's tags look "
        "like en:palm-oil"
    )
    named = frame.assign(product_name=["", "", "Eau de source"])
    assert len(logged.transform(named)) == 3
