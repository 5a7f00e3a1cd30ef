"""Hiding evidence the way OFF's blank products lack it, routing by evidence state, and the
population weights; the SQL twin of the states agrees with the Python on real products."""

from pathlib import Path

import duckdb
import numpy as np
import pytest

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ml.batch_predictions import STATE_SQL, UNLABELLED_SQL, population
from nova_assets.lib.ml.evidence import (
    SLICES,
    STATE_SLICE,
    STATES,
    evidence_labels,
    family_of_columns,
    has_evidence,
    hide,
    population_weights,
    states,
)
from nova_assets.lib.ml.feature_matrix import EVIDENCE, product_matrix
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets_tests.lib import synthetic


@pytest.fixture(scope="module")
def products():
    return synthetic.matrix(300)


def family_nonzeros(matrix, family: str) -> np.ndarray:
    """Per row, how many tags of `family` it has."""
    mask = family_of_columns(matrix.features) == EVIDENCE.index(family)
    return np.asarray(matrix.X[:, np.flatnonzero(mask)].sum(axis=1)).ravel()


@pytest.mark.parametrize("name", list(SLICES))
def test_each_slice_hides_exactly_its_evidence(products, name):
    spec = SLICES[name]
    hidden = hide(products, name, seed=3)
    for family in ("ingredients", "additives", "categories"):
        before, after = family_nonzeros(products, family), family_nonzeros(hidden, family)
        k = EVIDENCE.index(family)
        if family in spec.hide:
            assert after.sum() == 0 and not hidden.evidence[:, k].any()
        elif family == "ingredients" and spec.half_ingredients:
            assert (after == before - before // 2).all()
            assert (hidden.evidence[:, k] == products.evidence[:, k]).all()
        else:
            assert (after == before).all()
    assert (hidden.names == products.names).all()
    k = EVIDENCE.index("nutrients")
    if "nutrients" in spec.hide:
        assert np.isnan(hidden.nutrients).all() and not hidden.evidence[:, k].any()
    else:
        assert np.array_equal(hidden.nutrients, products.nutrients, equal_nan=True)
        assert hidden.evidence[:, k].all()
    assert (hidden.partial == (spec.half_ingredients & products.evidence[:, 0])).all()
    assert products.X.nnz == synthetic.matrix(300).X.nnz  # the original is left as it was


def test_half_of_the_ingredients_is_a_fixed_random_half(products):
    first, again = (
        hide(products, "half_ingredients", seed=1),
        hide(products, "half_ingredients", seed=1),
    )
    other = hide(products, "half_ingredients", seed=2)
    assert (first.X != again.X).nnz == 0
    assert (first.X != other.X).nnz > 0


def test_states_follow_the_evidence(products):
    assert (states(products) == STATES.index("complete")).all()
    expected = {
        "no_categories": "no_categories",
        "no_ingredients": "no_ingredients",
        "half_ingredients": "partial",
        "name_nutrients": "nutrients",
        "name_only": "name_only",
        "no_additives": "complete",
    }
    for name, state in expected.items():
        assert (states(hide(products, name)) == STATES.index(state)).all(), name
    for state, slice_name in STATE_SLICE.items():
        assert (states(hide(products, slice_name)) == STATES.index(state)).all()


def test_evidence_labels_and_no_evidence(products):
    hidden = hide(products, "name_only")
    assert evidence_labels(hidden)[0] == ["name"]
    assert evidence_labels(hide(products, "name_nutrients"))[0] == ["name", "nutrients"]
    assert evidence_labels(products)[0][0] == "ingredients"
    hidden.names[:] = ""
    hidden.evidence[:, EVIDENCE.index("name")] = False
    assert not has_evidence(hidden).any()


def test_population_weights():
    weights = population_weights(
        {
            "complete": 0,
            "no_categories": 10,
            "partial": 30,
            "no_ingredients": 30,
            "nutrients": 10,
            "name_only": 20,
        }
    )
    assert weights == {
        "as_is": 0.0,
        "no_categories": 0.1,
        "no_ingredients": 0.3,
        "half_ingredients": 0.3,
        "no_additives": 0.0,
        "name_nutrients": 0.1,
        "name_only": 0.2,
    }
    equal = population_weights({})
    assert set(equal.values()) == {1 / len(SLICES)}


def test_state_sql_is_the_python_states_on_real_unlabelled_products(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ingest_products(con, fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw"))
    matrix = product_matrix(con, UNLABELLED_SQL, [])
    in_sql = dict(con.execute(f"SELECT code, {STATE_SQL} FROM ({UNLABELLED_SQL})").fetchall())
    assert [in_sql[c] for c in matrix.codes] == [STATES[s] for s in states(matrix)]
    counts = population(con)
    # 173 blank products: 18 with nothing, 2 of them with nutrients alone
    assert sum(counts.values()) == len(matrix) == 155
    assert counts["nutrients"] > 0
    assert counts["name_only"] > 0 and counts["partial"] > 0 and counts["no_categories"] > 0
    con.close()
