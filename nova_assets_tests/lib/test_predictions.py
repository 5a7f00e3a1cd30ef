import duckdb
import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from nova_assets.lib.models import fit_pipeline
from nova_assets.lib.predictions import write_predictions

FEATURES = [
    "additives:en:e322",
    "categories:en:sugars",
    "ingredients:en:sugar",
    "ingredients:en:water",
]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE products AS SELECT * FROM (VALUES
            ('a', ['en:water'], [], [], NULL),
            ('b', ['en:sugar'], ['en:e322'], [], NULL),
            ('c', ['en:sugar'], [], ['en:sugars'], NULL),
            ('d', ['en:water'], [], [], 1),
            ('e', [], [], ['en:sugars'], NULL),
            ('f', ['en:unknown-tag'], [], [], NULL)
        ) t(code, ingredients_tags, additives_tags, categories_tags, nova_group)
        """
    )
    yield con
    con.close()


@pytest.fixture(scope="module")
def pipeline():
    X = sparse.csr_matrix(
        np.array([[0, 0, 0, 1], [0, 1, 1, 0], [1, 0, 1, 0]] * 30, dtype=np.float32)
    )
    return fit_pipeline("logistic_regression", X, np.array([1, 2, 4] * 30), FEATURES)


def test_unlabelled_products_with_ingredients_get_a_group(con, pipeline):
    stats = write_predictions(con, pipeline, 7)
    rows = con.execute(
        "SELECT code, predicted_nova_group, model_version FROM nova_predictions ORDER BY code"
    ).fetchall()
    assert [(c, g) for c, g, _ in rows[:3]] == [("a", 1), ("b", 4), ("c", 2)]
    assert [c for c, _, _ in rows] == [
        "a",
        "b",
        "c",
        "f",
    ]  # 'd' is labelled, 'e' has no ingredients
    assert {v for _, _, v in rows} == {7}
    assert stats.rows == 4 and stats.batches == 1 and sum(stats.by_group.values()) == 4


def test_small_batches_give_the_same_table(con, pipeline):
    write_predictions(con, pipeline, 1)
    whole = con.execute(
        "SELECT code, predicted_nova_group, probability FROM nova_predictions ORDER BY code"
    ).fetchall()
    stats = write_predictions(con, pipeline, 1, batch_rows=4)
    assert stats.batches == 2
    batched = con.execute(
        "SELECT code, predicted_nova_group, probability FROM nova_predictions ORDER BY code"
    ).fetchall()
    assert batched == whole


def test_a_failing_batch_keeps_the_previous_table(con, pipeline):
    write_predictions(con, pipeline, 1)
    before = con.execute("SELECT * FROM nova_predictions ORDER BY code").fetchall()

    unfitted = Pipeline(
        [("tags", pipeline.named_steps["tags"]), ("classifier", LogisticRegression())]
    )
    with pytest.raises(NotFittedError):
        write_predictions(con, unfitted, 2, batch_rows=2)
    assert con.execute("SELECT * FROM nova_predictions ORDER BY code").fetchall() == before


def test_reasons_are_tags_of_the_product_that_favour_its_group(con, pipeline):
    write_predictions(con, pipeline, 1)
    rows = dict(con.execute("SELECT code, reasons FROM nova_predictions").fetchall())
    # 'b' (sugar + e322) is predicted 4: e322 is what tells it from group 2.
    assert rows["b"][0] == "additives:en:e322"
    assert set(rows["b"]) <= {"additives:en:e322", "ingredients:en:sugar"}
    assert rows["a"] == ["ingredients:en:water"]
    # A product with no known tag has no reason to give.
    assert rows["f"] == []
