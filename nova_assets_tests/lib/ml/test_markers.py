"""The marker features and OFF's rules decide the group in one place: on every real product of
the sample, the matrix's marker group is `marker_nova_group` of the product's tags."""

from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import sparse

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ml.feature_matrix import build_vocabulary, product_matrix
from nova_assets.lib.ml.markers import ADDITIVES_IN_INGREDIENTS, Markers, rules_prediction
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets.lib.warehouse.nova_rules import marker_nova_group
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets.lib.warehouse.split import extend_test_split

ALL_ROWS = """
    SELECT rowid AS row_key, code, ingredients_tags, additives_tags, categories_tags
    FROM products
"""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("markers")
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    ingest_products(con, fetch_dump(str(SAMPLE_DUMP), root / "raw"))
    extend_test_split(con)
    yield con
    con.close()


def test_marker_group_of_the_matrix_is_the_rules_on_every_sample_row(sample):
    features = build_vocabulary(sample, min_count=2)
    matrix = product_matrix(sample, ALL_ROWS, features)
    rows = {
        code: (ingredients or [], additives or [], categories or [])
        for code, ingredients, additives, categories in sample.execute(
            "SELECT code, ingredients_tags, additives_tags, categories_tags FROM products"
        ).fetchall()
    }
    expected = np.array([marker_nova_group(*rows[code]) for code in matrix.codes])
    got = rules_prediction(features, matrix.X)
    assert len(got) == 1000
    assert (got == expected).all(), matrix.codes[got != expected][:5]
    assert set(expected.tolist()) == {1, 2, 3, 4}


def test_group_3_never_overrides_group_2():
    """Salt in a product of the category en:sugars: 2 for the rules, 2 for the features."""
    features = ["categories:en:sugars", "ingredients:en:salt", "ingredients:en:flavouring"]
    X = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]], np.float32))
    assert Markers(features).highest(X).tolist() == [2, 3, 4, 1]
    assert marker_nova_group(["en:salt"], [], ["en:sugars"]) == 2


def test_additives_among_the_ingredients_are_the_models_markers_not_offs():
    features = ["additives:en:e322", "ingredients:en:e322", "ingredients:en:e250"]
    X = sparse.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], np.float32))
    markers = Markers(features)
    present = markers.present(X)
    columns = Markers.columns()
    in_ingredients = [columns.index((ADDITIVES_IN_INGREDIENTS, g)) for g in (3, 4)]
    assert present[:, in_ingredients].tolist() == [[False, True], [False, False], [True, False]]
    assert present[1, columns.index(("additives", 4))]
    # OFF's rules, and so `highest`, read the additive in `additives_tags` only.
    assert markers.highest(X).tolist() == [1, 4, 1]
