"""The model's input built in DuckDB: the vocabulary (train rows only, OFF's markers always),
the product matrix with names and evidence, equal to the raw-input path, and its file."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from nova_assets.lib.ml.feature_matrix import (
    EVIDENCE,
    WATER_FEATURES,
    ProductMatrix,
    build_vocabulary,
    labelled_rows_sql,
    product_matrix,
)
from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS
from nova_assets.lib.warehouse.nova_rules import NOVA_MARKERS


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE products AS SELECT * FROM (VALUES
            ('a', ['en:sugar', 'en:salt'], ['en:e322'], ['en:snacks'], 'Crisps', 4),
            ('b', ['en:sugar'], [], ['en:sugars'], 'Sucre', 2),
            ('c', ['en:water', 'en:sugar'], ['en:e322'], ['en:snacks'], NULL, 3),
            ('d', ['en:only-in-test', 'en:sugar'], [], ['en:snacks'], ' Test  ', 4),
            ('e', ['en:sugar', 'en:salt'], NULL, NULL, 'Unlabelled', NULL),
            ('f', NULL, NULL, ['en:pizzas'], 'Pizza', 4)
        ) t(code, ingredients_tags, additives_tags, categories_tags, product_name, nova_group)
        """
    )
    con.execute(
        "CREATE TABLE test_split AS SELECT * FROM (VALUES ('a','train'),('b','train'),('c','train'),"
        "('d','test'),('e','train'),('f','train')) t(code, split)"
    )
    for column in NUTRIENT_COLUMNS:
        con.execute(f"ALTER TABLE products ADD COLUMN {column} DOUBLE")
    yield con
    con.close()


def test_vocabulary_comes_from_labelled_train_rows_and_holds_every_marker(con):
    features = build_vocabulary(con, min_count=1)
    assert "ingredients:en:only-in-test" not in features
    assert "ingredients:en:water" in features and "categories:en:pizzas" in features
    assert set(NOVA_MARKERS) <= set(features)
    stored = dict(con.execute("SELECT feature, train_count FROM feature_vocabulary").fetchall())
    assert stored["ingredients:en:sugar"] == 3  # 'e' is unlabelled: not counted
    assert stored["additives:en:e950"] == 0  # a marker no product has
    assert [
        r[0]
        for r in con.execute(
            "SELECT feature FROM feature_vocabulary ORDER BY feature_id"
        ).fetchall()
    ] == features


def test_min_count_keeps_frequent_tags_and_the_markers(con):
    features = build_vocabulary(con, min_count=2)
    kept = set(NOVA_MARKERS) | set(WATER_FEATURES)
    assert sorted(set(features) - kept) == ["categories:en:snacks"]
    assert set(WATER_FEATURES) <= set(features)


def test_matrix_matches_the_raw_vectorizer_and_round_trips(con, tmp_path):
    features = build_vocabulary(con, min_count=1)
    train = product_matrix(con, labelled_rows_sql("train"), features)
    assert list(train.codes) == ["a", "b", "c", "f"] and list(train.labels) == [4, 2, 3, 4]
    assert list(train.names) == ["Crisps", "Sucre", "", "Pizza"]
    assert train.evidence.tolist() == [
        [True, True, True, True, False],
        [True, False, True, True, False],
        [True, True, True, False, False],
        [False, False, True, True, False],
    ]
    assert not train.partial.any() and len(EVIDENCE) == train.evidence.shape[1]
    frame = con.execute(
        "SELECT ingredients_tags, additives_tags, categories_tags, product_name FROM products "
        "WHERE code IN ('a','b','c','f') ORDER BY code"
    ).df()
    raw = ProductVectorizer(features).fit().transform(frame)
    assert (raw.X != train.X).nnz == 0
    assert (raw.evidence == train.evidence).all() and list(raw.names) == list(train.names)
    train.save(tmp_path / "train.npz")
    loaded = ProductMatrix.load(tmp_path / "train.npz")
    assert (loaded.X != train.X).nnz == 0 and loaded.features == features
    for field in ("codes", "labels", "names", "evidence", "partial", "nutrients", "corpus"):
        same = np.array_equal(
            getattr(loaded, field), getattr(train, field), equal_nan=field == "nutrients"
        )
        assert same, field


def test_names_of_every_script_survive_the_file(tmp_path):
    frame = pd.DataFrame(
        {
            "ingredients_tags": [["en:water"]] * 4,
            "additives_tags": [[]] * 4,
            "categories_tags": [[]] * 4,
            "product_name": ["Eau", "水", "Ολυμπος γιαούρτι", ""],
        }
    )
    matrix = ProductVectorizer(["ingredients:en:water"]).fit().transform(frame)
    matrix.save(tmp_path / "m.npz")
    assert list(ProductMatrix.load(tmp_path / "m.npz").names) == list(frame["product_name"])


def test_tags_outside_the_vocabulary_are_dropped_but_count_as_evidence(con):
    matrix = product_matrix(
        con, labelled_rows_sql("test"), ["ingredients:en:sugar", "categories:en:snacks"]
    )
    assert matrix.X.toarray().tolist() == [[1.0, 1.0]]
    assert matrix.names.tolist() == ["Test"]
    only_unknown = product_matrix(con, labelled_rows_sql("test"), ["categories:en:snacks"])
    assert only_unknown.evidence[0, 0]  # en:only-in-test and en:sugar are still ingredients


def test_hashed_names_are_kept_through_hiding_and_taking():
    frame = pd.DataFrame(
        {
            "ingredients_tags": [["en:water"], ["en:salt"]],
            "additives_tags": [[], []],
            "categories_tags": [[], []],
            "product_name": ["Eau", "Sel"],
        }
    )
    matrix = ProductVectorizer(["ingredients:en:water"]).fit().transform(frame)
    first = matrix.name_vectors()
    assert matrix.name_vectors() is first
    second = matrix.take(np.array([1]))
    assert second.hashed_names is not None and (second.name_vectors() != first[1]).nnz == 0


def test_a_corpus_adds_training_rows_but_never_a_product_the_dump_has(con):
    con.execute(
        """
        CREATE TABLE corpus AS SELECT * FROM (VALUES
            ('r1', NULL, NULL, ['en:pastas'], 'Spaghetti', 1),
            ('r2', NULL, NULL, ['en:pastas'], 'Penne', 1),
            ('d', NULL, NULL, ['en:pastas'], 'In the test split', 1),
            ('e', NULL, NULL, ['en:pastas'], 'Blank in the dump', 1),
            ('a', NULL, NULL, ['en:pastas'], 'Labelled in the dump', 1),
            ('r3', NULL, NULL, ['en:pastas'], 'Unlabelled', NULL)
        ) t(code, ingredients_tags, additives_tags, categories_tags, product_name, nova_group)
        """
    )
    for column in NUTRIENT_COLUMNS:
        con.execute(f"ALTER TABLE corpus ADD COLUMN {column} DOUBLE")
    con.execute("UPDATE corpus SET sugars_100g = 1.5, salt_100g = 0.01 WHERE code = 'r1'")
    features = build_vocabulary(con, min_count=2, corpus="corpus")
    assert "categories:en:pastas" in features  # counted in r1 and r2 only: exactly 2
    train = product_matrix(con, labelled_rows_sql("train", "corpus"), features)
    assert list(train.codes) == ["a", "b", "c", "f", "r1", "r2"]
    assert list(train.labels) == [4, 2, 3, 4, 1, 1]
    assert train.corpus.tolist() == [False] * 4 + [True] * 2
    assert train.names[list(train.codes).index("a")] == "Crisps"  # the dump's row, not the corpus'
    assert train.evidence[list(train.codes).index("r1"), EVIDENCE.index("nutrients")]
    # The test side is the dump's alone, and without the corpus nothing changes.
    assert list(product_matrix(con, labelled_rows_sql("test", "corpus"), features).codes) == ["d"]
    assert "categories:en:pastas" not in build_vocabulary(con, min_count=2)
