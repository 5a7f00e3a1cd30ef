"""`nova_predictions`: every unlabelled food product with some evidence, answered with what
the model had, in one atomic replacement."""

import duckdb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from nova_assets.lib.ml.batch_predictions import (
    coverage_by_reason,
    rescore_codes,
    write_predictions,
)
from nova_assets.lib.ml.classifiers import fit_pipeline
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS
from nova_assets_tests.lib import synthetic


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE products AS SELECT * FROM (VALUES
            ('a', ['en:apple', 'en:fruit'], [], ['en:plant-based-foods'], 'pommes fraîches', NULL, 'too_many_unknown_ingredients'),
            ('b', ['en:wheat-flour', 'en:flavouring'], ['en:e322'], [], 'chocolate cookies', NULL, 'missing_category'),
            ('c', [], [], ['en:snacks'], 'biscuits au chocolat', NULL, 'missing_ingredients'),
            ('d', ['en:apple'], [], ['en:plant-based-foods'], 'apples', 1, NULL),
            ('e', [], [], [], 'Schokoriegel', NULL, 'missing_ingredients'),
            ('f', [], [], [], NULL, NULL, 'missing_ingredients'),
            ('g', ['en:soap'], [], ['en:non-food-products'], 'Soap', NULL, 'non_food'),
            ('h', ['en:unknown-tag'], [], ['en:snacks'], '  ', NULL, 'too_many_unknown_ingredients')
        ) t(code, ingredients_tags, additives_tags, categories_tags, product_name, nova_group,
            nova_blank_reason)
        """
    )
    for column in NUTRIENT_COLUMNS:
        con.execute(f"ALTER TABLE products ADD COLUMN {column} DOUBLE")
    yield con
    con.close()


@pytest.fixture(scope="module")
def pipeline():
    train = synthetic.matrix(2000, seed=0)
    validation = synthetic.matrix(600, seed=1)
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    validation.features = train.features  # same tag pool, same order
    pipeline.named_steps["classifier"].calibrate(validation, validation.labels)
    return pipeline


def table(con) -> dict:
    return {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT code, predicted_nova_group, probability, confident, evidence, "
            "nova_blank_reason, model_version, reasons FROM nova_predictions"
        ).fetchall()
    }


def test_every_unlabelled_food_product_with_evidence_gets_an_answer(con, pipeline):
    stats = write_predictions(con, pipeline, 7)
    rows = table(con)
    # 'd' is labelled, 'f' carries nothing, 'g' is not food.
    assert sorted(rows) == ["a", "b", "c", "e", "h"]
    assert rows["a"][3] == ["ingredients", "categories", "name"]
    assert rows["b"][3] == ["ingredients", "additives", "name"]
    assert rows["c"][3] == ["categories", "name"] and rows["e"][3] == ["name"]
    assert rows["h"][3] == ["ingredients", "categories"]
    assert {code: r[4] for code, r in rows.items()} == {
        "a": "too_many_unknown_ingredients",
        "b": "missing_category",
        "c": "missing_ingredients",
        "e": "missing_ingredients",
        "h": "too_many_unknown_ingredients",
    }
    # The name carries the answer where nothing else does.
    assert rows["b"][0] == 4 and rows["c"][0] == 4 and rows["e"][0] == 4
    for group, probability, confident, *_ in rows.values():
        assert 1 <= group <= 4 and 0 < probability <= 1 and isinstance(confident, bool)
    assert {r[5] for r in rows.values()} == {7}
    assert stats.rows == 5 and stats.batches == 1 and sum(stats.by_group.values()) == 5
    assert stats.confident == sum(r[2] for r in rows.values())


def test_small_batches_give_the_same_table(con, pipeline):
    write_predictions(con, pipeline, 1)
    whole = table(con)
    stats = write_predictions(con, pipeline, 1, batch_rows=3)
    assert stats.batches == 3  # rowids 0-2, 3-5 and 6-7 each hold a product to answer
    batched = table(con)
    assert batched.keys() == whole.keys()
    for code, row in batched.items():
        # Probabilities to the last bits of a float: sums run in another order by batch.
        assert row[1] == pytest.approx(whole[code][1], rel=1e-12), code
        assert row[:1] + row[2:] == whole[code][:1] + whole[code][2:], code


def test_a_failing_batch_keeps_the_previous_table(con, pipeline):
    write_predictions(con, pipeline, 1)
    before = table(con)
    classifier = pipeline.named_steps["classifier"]
    experts = classifier.experts_
    classifier.experts_ = {state: LogisticRegression() for state in experts}
    try:
        with pytest.raises(AttributeError, match="classes_"):  # unfitted experts
            write_predictions(con, pipeline, 2, batch_rows=2)
    finally:
        classifier.experts_ = experts
    assert table(con) == before


def test_reasons_are_the_products_own_tags_or_its_name(con, pipeline):
    write_predictions(con, pipeline, 1)
    tags = {
        code: {f"ingredients:{t}" for t in i}
        | {f"additives:{t}" for t in a}
        | {f"categories:{t}" for t in c}
        for code, i, a, c in con.execute(
            "SELECT code, ingredients_tags, additives_tags, categories_tags FROM products"
        ).fetchall()
    }
    rows = table(con)
    for code, row in rows.items():
        assert set(row[6]) <= tags[code] | {"product_name"}, code
    assert "ingredients:en:flavouring" in rows["b"][6]
    assert rows["e"][6] in ([], ["product_name"])


def test_coverage_by_reason(con, pipeline):
    write_predictions(con, pipeline, 1)
    coverage = {r[0]: r[1:] for r in coverage_by_reason(con)}
    assert {k: v[0] for k, v in coverage.items()} == {
        "missing_ingredients": 2,
        "too_many_unknown_ingredients": 2,
        "missing_category": 1,
    }
    assert all(0 <= share <= 1 and 0 < p <= 1 for _, share, p in coverage.values())
    assert np.isclose(
        sum(n * share for n, share, _ in coverage.values()),
        con.execute("SELECT count(*) FILTER (confident) FROM nova_predictions").fetchone()[0],
    )


def test_rescoring_codes_changes_their_rows_only(con, pipeline):
    write_predictions(con, pipeline, 7)
    before = table(con)
    con.execute("UPDATE products SET nova_group = 4, nova_blank_reason = NULL WHERE code = 'a'")
    con.execute("UPDATE products SET categories_tags = ['en:snacks'] WHERE code = 'b'")
    con.execute(
        "CREATE TABLE touched AS SELECT * FROM (VALUES ('a'), ('b'), ('n'), ('zz')) t(code)"
    )
    con.execute("BEGIN TRANSACTION")
    # A row the transaction itself wrote (as a delta's are) has a rowid far past the table's.
    con.execute(
        "INSERT INTO products BY NAME SELECT 'n' AS code, ['en:sugar'] AS ingredients_tags, "
        "'missing_category' AS nova_blank_reason"
    )
    assert rescore_codes(con, pipeline, 8, "touched", batch_rows=1) == 2
    con.execute("COMMIT")
    after = table(con)
    assert "a" not in after  # labelled now: no prediction
    assert after["b"][5] == 8 and after["b"][4] == "missing_category"
    assert after["n"][5] == 8
    assert {c: r for c, r in after.items() if c not in ("b", "n")} == {
        c: r for c, r in before.items() if c not in ("a", "b")
    }
