"""Drift on two small hand-made dumps in a real DuckDB file: exact shares, vocabulary and
changed labels, the champion scored on them, and the history kept per dump."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nova_assets.lib.database import connect
from nova_assets.lib.drift import measure as dr
from nova_assets.lib.drift.history import history, measured
from nova_assets.lib.drift.report import Thresholds, breaches, drift_markdown
from nova_assets.lib.ml.classifiers import fit_pipeline
from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.warehouse.products import PRODUCTS_DDL

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64

# (code, group, ingredients, additives, categories)
DUMP_A = [
    ("1", 4, ["en:sugar", "en:water"], ["en:e330"], ["en:snacks", "en:biscuits"]),
    ("2", 4, ["en:sugar", "en:palm-oil"], ["en:e330"], ["en:snacks", "en:biscuits"]),
    ("3", 4, ["en:sugar"], [], ["en:snacks"]),
    ("4", 3, ["en:salt", "en:water"], [], ["en:cheeses"]),
    ("5", 4, ["en:salt"], [], ["en:cheeses"]),
    ("6", 1, ["en:water"], [], ["en:waters"]),
    ("7", 1, ["en:apple"], [], ["en:fruits"]),
    ("8", None, ["en:palm-oil"], [], []),
]
# Against A: 2 and 5 go from 4 to 3; 7 loses its label (not a change: unknown is no class);
# 8 leaves, 9 arrives; cocoa and e322 are new, biscuits vanished, palm-oil falls to one
# product (below min_count, but not vanished).
DUMP_B = [
    ("1", 4, ["en:sugar", "en:water"], ["en:e330"], ["en:snacks"]),
    ("2", 3, ["en:sugar", "en:palm-oil"], ["en:e330"], ["en:snacks"]),
    ("3", 4, ["en:sugar", "en:cocoa"], ["en:e322"], ["en:snacks"]),
    ("4", 3, ["en:salt", "en:water"], [], ["en:cheeses"]),
    ("5", 3, ["en:salt", "en:cocoa"], ["en:e322"], ["en:cheeses"]),
    ("6", 1, ["en:water"], [], ["en:waters"]),
    ("7", None, ["en:apple"], [], ["en:fruits"]),
    ("9", 2, ["en:salt"], [], []),
]


def load(con, rows, sha256: str) -> None:
    """Replace `products` as the products asset does, with hand-made rows."""
    con.execute(PRODUCTS_DDL)
    con.executemany(
        "INSERT INTO products (code, nova_group, ingredients_tags, additives_tags, "
        "categories_tags, dump_sha256) VALUES (?, ?, ?, ?, ?, ?)",
        [[*row, sha256] for row in rows],
    )


@pytest.fixture
def con(tmp_path: Path):
    with connect(tmp_path / "warehouse.duckdb") as con:
        # Product 5 is in the test split, product 2 in train.
        con.execute(
            "CREATE TABLE test_split AS SELECT code, CASE WHEN code = '5' THEN 'test' "
            "ELSE 'train' END AS split FROM range(1, 10) t(i), LATERAL (SELECT i::VARCHAR AS code)"
        )
        yield con


@pytest.fixture(scope="module")
def champion() -> dr.Champion:
    """A tree that answers 4 for sugar, 3 for salt, 1 for water: right on 5, wrong on 2."""
    features = ["ingredients:en:salt", "ingredients:en:sugar", "ingredients:en:water"]
    frame = pd.DataFrame(
        {
            "ingredients_tags": [["en:salt"], ["en:sugar"], ["en:water"]],
            "additives_tags": [[], [], []],
            "categories_tags": [[], [], []],
        }
    )
    matrix = ProductVectorizer(features).fit().transform(frame)
    pipeline = fit_pipeline("marker_decision_tree", matrix, np.array([3, 4, 1]))
    return dr.Champion("7", pipeline)


def test_first_dump_has_nothing_to_compare_and_passes(con):
    load(con, DUMP_A, SHA_A)
    drift = dr.update_drift(con, min_count=2, champion=lambda: pytest.fail("not needed"))
    assert drift.previous is None and drift.champion_note == "no previous dump"
    assert drift.current.products == 8 and drift.current.labelled == 7
    assert drift.current.shares == {1: 2 / 7, 2: 0.0, 3: 1 / 7, 4: 4 / 7}
    # sugar, water, palm-oil, salt; e330; snacks, biscuits, cheeses
    assert drift.current.vocabulary == {"ingredients": 4, "additives": 1, "categories": 3}
    figures = drift.figures()
    assert figures["class_share_distance"] is None and figures["changed_labels"] is None
    assert breaches(figures, Thresholds()) == []
    assert measured(con)["dump_sha256"] == SHA_A
    assert con.execute("SELECT DISTINCT dump_sha256 FROM drift_labels").fetchall() == [(SHA_A,)]
    assert "no previous dump measured" in drift_markdown(drift, history(con))


def test_second_dump_exact_figures(con, champion):
    load(con, DUMP_A, SHA_A)
    dr.update_drift(con, min_count=2)
    load(con, DUMP_B, SHA_B)
    drift = dr.update_drift(con, min_count=2, champion=lambda: champion)

    assert drift.previous.dump_sha256 == SHA_A
    assert drift.current.shares == {1: 1 / 7, 2: 1 / 7, 3: 3 / 7, 4: 2 / 7}
    assert drift.class_share_distance == pytest.approx(3 / 7)
    assert drift.labelled_share_change == 0.0
    by_family = {v.family: v for v in drift.vocabulary}
    assert (by_family["ingredients"].new, by_family["ingredients"].vanished) == (1, 0)
    assert by_family["ingredients"].new_examples == ["en:cocoa"]
    assert by_family["additives"].new_examples == ["en:e322"]
    assert by_family["categories"].vanished_examples == ["en:biscuits"]
    assert (drift.new_vocabulary, drift.vanished_vocabulary) == (2, 1)
    # Either vocabulary: sugar, water, palm-oil, salt, cocoa; e330, e322; snacks, cheeses, biscuits
    assert sum(v.union for v in drift.vocabulary) == 10
    assert drift.vocabulary_change_share == pytest.approx(0.3)
    assert drift.labels == dr.LabelChanges(common_labelled=6, changed=2, transitions={(4, 3): 2})
    assert drift.labels.share == pytest.approx(1 / 3)
    assert drift.champion == dr.ChampionScore("7", 2, 0.5, 1, 1.0)

    row = measured(con)
    assert row["previous_sha256"] == SHA_A and row["changed_labels"] == 2
    assert row["class_share_distance"] == pytest.approx(3 / 7)
    assert row["champion_accuracy"] == 0.5 and row["champion_version"] == "7"
    assert breaches(row, Thresholds()) == [
        "class share distance 0.429 > 0.050",
        "vocabulary change share 0.300 > 0.200",
        "changed label share 0.333 > 0.050",
    ]
    assert breaches(row, Thresholds(0.5, 0.5, 0.5)) == []
    assert [r["dump_sha256"] for r in history(con)] == [SHA_B, SHA_A]

    markdown = drift_markdown(drift, history(con))
    assert "| group 4 | 57.1 % | 28.6 % | -28.6 pts |" in markdown
    assert "| ingredients | 4 | 4 | 1 | 0 | en:cocoa |  |" in markdown
    assert "2 of 6 products labelled in both dumps (33.3 %): 4→3: 2." in markdown
    assert "Champion v7 agrees with the new label on 50.0 %" in markdown


def test_same_dump_again_repeats_the_comparison(con, champion):
    load(con, DUMP_A, SHA_A)
    dr.update_drift(con, min_count=2)
    load(con, DUMP_B, SHA_B)
    first = dr.update_drift(con, min_count=2, champion=lambda: champion).figures()
    again = dr.update_drift(con, min_count=2, champion=lambda: champion).figures()
    assert again == first
    assert con.execute("SELECT count(*) FROM nova_drift").fetchone()[0] == 2


def test_third_dump_compares_with_the_second_and_forgets_the_first(con):
    load(con, DUMP_A, SHA_A)
    dr.update_drift(con, min_count=2)
    load(con, DUMP_B, SHA_B)
    dr.update_drift(con, min_count=2, champion=lambda: None)
    load(con, DUMP_B, SHA_C)
    drift = dr.update_drift(con, min_count=2, champion=lambda: pytest.fail("nothing changed"))
    assert drift.previous.dump_sha256 == SHA_B
    assert drift.class_share_distance == 0.0 and drift.vocabulary_change_share == 0.0
    assert drift.labels.changed == 0 and drift.champion_note == "no label changed"
    assert breaches(drift.figures(), Thresholds()) == []
    for table in ("drift_labels", "drift_tags"):
        kept = con.execute(f"SELECT DISTINCT dump_sha256 FROM {table} ORDER BY 1").fetchall()
        assert kept == [(SHA_B,), (SHA_C,)], table
    assert con.execute("SELECT count(*) FROM drift_labels").fetchone()[0] == 14
    assert con.execute("SELECT count(*) FROM nova_drift").fetchone()[0] == 3


def test_no_champion_is_reported_not_scored(con):
    load(con, DUMP_A, SHA_A)
    dr.update_drift(con, min_count=2)
    load(con, DUMP_B, SHA_B)
    drift = dr.update_drift(con, min_count=2, champion=lambda: None)
    assert drift.champion is None and drift.champion_note == "no champion model: not scored"
    assert measured(con)["champion_accuracy"] is None
    assert "Champion: no champion model: not scored." in drift_markdown(drift, [])


def test_min_count_one_counts_every_tag(con):
    load(con, DUMP_A, SHA_A)
    dr.update_drift(con, min_count=2)
    load(con, DUMP_B, SHA_B)
    drift = dr.update_drift(con, min_count=1)
    by_family = {v.family: v for v in drift.vocabulary}
    # fruits, waters and apple are in both; palm-oil too (once now)
    assert (by_family["categories"].new, by_family["categories"].vanished) == (0, 1)
    assert by_family["ingredients"].current == 6
