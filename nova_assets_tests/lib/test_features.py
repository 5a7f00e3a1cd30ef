import duckdb
import numpy as np
import pandas as pd
import pytest

from nova_assets.lib.features import TagMatrix, build_vocabulary, labelled_rows_sql, tag_matrix
from nova_assets.lib.models import TagVectorizer


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE products AS SELECT * FROM (VALUES
            ('a', ['en:sugar', 'en:salt'], ['en:e322'], ['en:snacks'], 4),
            ('b', ['en:sugar'], [], ['en:sugars'], 2),
            ('c', ['en:water', 'en:sugar'], ['en:e322'], ['en:snacks'], 3),
            ('d', ['en:only-in-test', 'en:sugar'], [], ['en:snacks'], 4),
            ('e', ['en:sugar', 'en:salt'], NULL, NULL, NULL)
        ) t(code, ingredients_tags, additives_tags, categories_tags, nova_group)
        """
    )
    con.execute(
        "CREATE TABLE test_split AS SELECT * FROM (VALUES ('a','train'),('b','train'),('c','train'),"
        "('d','test'),('e','train')) t(code, split)"
    )
    yield con
    con.close()


def test_vocabulary_comes_from_labelled_train_rows_only(con):
    features = build_vocabulary(con, min_count=1)
    assert "ingredients:en:only-in-test" not in features
    assert "ingredients:en:sugar" in features and "categories:en:sugars" in features
    assert "additives:en:e322" in features
    stored = con.execute(
        "SELECT feature, train_count FROM feature_vocabulary ORDER BY feature_id"
    ).fetchall()
    assert [f for f, _ in stored] == features
    assert dict(stored)["ingredients:en:sugar"] == 3  # 'e' is unlabelled: not counted


def test_min_count_and_separate_families(con):
    features = build_vocabulary(con, min_count=2)
    assert features == ["additives:en:e322", "categories:en:snacks", "ingredients:en:sugar"]


def test_matrix_matches_the_pipeline_vectorizer_and_round_trips(con, tmp_path):
    features = build_vocabulary(con, min_count=1)
    train = tag_matrix(con, labelled_rows_sql("train"), features)
    assert list(train.codes) == ["a", "b", "c"] and list(train.labels) == [4, 2, 3]
    frame = con.execute(
        "SELECT ingredients_tags, additives_tags, categories_tags FROM products WHERE code IN ('a','b','c') ORDER BY code"
    ).df()
    expected = TagVectorizer(features).fit().transform(frame)
    assert (expected != train.X).nnz == 0
    assert train.X.sum() == 10
    train.save(tmp_path / "train.npz")
    loaded = TagMatrix.load(tmp_path / "train.npz")
    assert (loaded.X != train.X).nnz == 0 and loaded.features == features
    assert list(loaded.codes) == list(train.codes)


def test_tags_outside_the_vocabulary_are_dropped(con):
    matrix = tag_matrix(
        con, labelled_rows_sql("test"), ["ingredients:en:sugar", "categories:en:snacks"]
    )
    assert matrix.X.toarray().tolist() == [[1.0, 1.0]]


def test_vectorizer_takes_comma_strings_and_reports_missing_columns():
    vectorizer = TagVectorizer(["ingredients:en:sugar", "additives:en:e322"]).fit()
    frame = pd.DataFrame(
        {
            "ingredients_tags": ["en:sugar,en:x"],
            "additives_tags": [None],
            "categories_tags": [np.nan],
        }
    )
    assert vectorizer.transform(frame).toarray().tolist() == [[1.0, 0.0]]
    with pytest.raises(ValueError, match="categories_tags"):
        vectorizer.transform(frame.drop(columns="categories_tags"))
