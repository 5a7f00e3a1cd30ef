import duckdb
import numpy as np
import pandas as pd
import pytest
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, ErrorCode

from nova_assets.lib.model_input import BadModelInput, as_tags, tag_lists
from nova_assets.lib.models import TagVectorizer

GOOD = {
    "ingredients_tags": [["en:sugar"], "en:water, en:salt", None],
    "additives_tags": [np.array(["en:e322"]), [], float("nan")],
    "categories_tags": [[], [], ["en:waters"]],
}


def test_lists_arrays_strings_and_nothing_are_tags():
    columns = tag_lists(pd.DataFrame(GOOD))
    assert columns["ingredients_tags"] == [["en:sugar"], ["en:water", "en:salt"], []]
    assert columns["additives_tags"] == [["en:e322"], [], []]
    assert as_tags("a,,b,") == ["a", "b"]


def test_a_frame_straight_from_duckdb_with_null_lists_is_tags():
    frame = duckdb.sql(
        "SELECT ['en:sugar'] AS ingredients_tags, NULL::VARCHAR[] AS additives_tags, "
        "[]::VARCHAR[] AS categories_tags"
    ).df()
    assert frame["additives_tags"][0] is pd.NA
    columns = tag_lists(frame)
    assert columns == {
        "ingredients_tags": [["en:sugar"]],
        "additives_tags": [[]],
        "categories_tags": [[]],
    }


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
            "product(s) at row 1, 3 have no tags at all",
        ),
    ],
    ids=["missing-column", "no-rows", "number-in-list", "number-not-list", "empty-products"],
)
def test_bad_input_says_what_is_wrong(frame, message):
    with pytest.raises(BadModelInput) as error:
        tag_lists(frame)
    assert message in error.value.message
    # MLflow's scoring server answers this error code with HTTP 400.
    assert error.value.error_code == ErrorCode.Name(INVALID_PARAMETER_VALUE)


def test_not_a_table_is_refused():
    with pytest.raises(BadModelInput, match="expected a table of products, got list"):
        tag_lists([["en:sugar"]])


def test_the_vectorizer_checks_its_input():
    vectorizer = TagVectorizer(["ingredients:en:sugar"]).fit()
    with pytest.raises(BadModelInput, match="missing column"):
        vectorizer.transform(pd.DataFrame({"ingredients_tags": [["en:sugar"]]}))
    X = vectorizer.transform(pd.DataFrame(GOOD))
    assert X.toarray().tolist() == [[1.0], [0.0], [0.0]]
