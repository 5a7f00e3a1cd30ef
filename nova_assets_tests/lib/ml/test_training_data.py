"""The products a model learns from: the sample's labelled training products, and the shipped
real products beside them, never one whose code the dump has."""

import duckdb
import numpy as np

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ml.training_data import training_data
from nova_assets.lib.paths import REAL_PRODUCTS, SAMPLE_DUMP
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets.lib.warehouse.real_products import load_real_products
from nova_assets.lib.warehouse.split import extend_test_split


def test_real_products_train_beside_the_dump_and_never_replace_its_own(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        ingest_products(con, fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw"))
        extend_test_split(con)
        alone = training_data(con, 2)
        both = training_data(con, 2, REAL_PRODUCTS)
        load_real_products(con, REAL_PRODUCTS, "shipped")
        expected = con.execute(
            "SELECT count(*) FROM shipped WHERE nova_group IS NOT NULL "
            "AND code NOT IN (SELECT code FROM products)"
        ).fetchall()[0][0]
        join = "SELECT count(*) FROM shipped JOIN products USING (code)"
        shared = con.execute(join).fetchall()[0][0]
    assert not alone.train.corpus.any()
    assert int(both.train.corpus.sum()) == expected > 4000
    assert shared > 0  # the sample and data/real/ share products: the sample's rows stand
    assert len(both.train) == len(alone.train) + expected
    assert len(set(both.train.codes)) == len(both.train)
    # The dump's own rows are the same with or without the corpus; the test side is untouched.
    own = ~both.train.corpus
    assert list(both.train.codes[own]) == list(alone.train.codes)
    assert np.array_equal(both.train.labels[own], alone.train.labels)
    assert list(both.test.codes) == list(alone.test.codes)
    assert len(both.features) > len(alone.features)
    assert both.unlabelled == alone.unlabelled
