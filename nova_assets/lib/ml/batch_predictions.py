"""Batch predictions for every unlabelled food product with any evidence, written as one atomic
table replacement; and who those products are (the population the model is judged for).

Products are scored a slice of the table at a time (by rowid: tags to CSR in DuckDB, then the
classifier), so memory stays bounded by the slice size whatever the dump's size.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from sklearn.pipeline import Pipeline

from nova_assets.lib.database import transaction
from nova_assets.lib.ml.classifiers import predict
from nova_assets.lib.ml.evidence import STATES
from nova_assets.lib.ml.feature_matrix import EVIDENCE, MIN_NUTRIENTS, ProductMatrix, product_matrix
from nova_assets.lib.ml.reasons import reason_names, reasons
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS

REASONS_PER_PRODUCT = 3

PREDICTIONS_DDL = """
CREATE OR REPLACE TABLE nova_predictions (
    code VARCHAR NOT NULL,
    predicted_nova_group TINYINT NOT NULL,
    probability DOUBLE NOT NULL,
    confident BOOLEAN NOT NULL,
    evidence VARCHAR[] NOT NULL,
    nova_blank_reason VARCHAR,
    model_version INTEGER NOT NULL,
    reasons VARCHAR[] NOT NULL,
    predicted_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""

_HAS_INGREDIENTS = "(coalesce(len(ingredients_tags), 0) + coalesce(len(additives_tags), 0) > 0)"
_HAS_CATEGORIES = "(coalesce(len(categories_tags), 0) > 0)"
_HAS_NAME = "(nullif(trim(product_name), '') IS NOT NULL)"
_HAS_NUTRIENTS = (
    "("
    + " + ".join(f"CAST({c} IS NOT NULL AS INTEGER)" for c in NUTRIENT_COLUMNS)
    + f" >= {MIN_NUTRIENTS})"
)
_PARTIAL = "coalesce(nova_blank_reason = 'too_many_unknown_ingredients', false)"

UNLABELLED_SQL = f"""
    SELECT rowid AS row_key, code, ingredients_tags, additives_tags, categories_tags, product_name,
           {_PARTIAL} AS partial_ingredients, {", ".join(NUTRIENT_COLUMNS)}
    FROM products
    WHERE nova_group IS NULL AND coalesce(nova_blank_reason, '') <> 'non_food'
      AND ({_HAS_INGREDIENTS} OR {_HAS_CATEGORIES} OR {_HAS_NAME} OR {_HAS_NUTRIENTS})
"""
"""Every food product OFF left without a group that carries ingredients, categories, a name or
nutrients."""

STATE_SQL = f"""CASE
    WHEN {_HAS_INGREDIENTS} AND {_HAS_CATEGORIES} AND partial_ingredients THEN 'partial'
    WHEN {_HAS_INGREDIENTS} AND {_HAS_CATEGORIES} THEN 'complete'
    WHEN {_HAS_INGREDIENTS} THEN 'no_categories'
    WHEN {_HAS_CATEGORIES} THEN 'no_ingredients'
    WHEN {_HAS_NUTRIENTS} THEN 'nutrients'
    ELSE 'name_only' END"""
"""`evidence.states` in SQL, over a row of UNLABELLED_SQL."""


def population(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many unlabelled food products with evidence are in each evidence state."""
    counts = dict(
        con.execute(
            f"SELECT {STATE_SQL} AS state, count(*) FROM ({UNLABELLED_SQL}) GROUP BY ALL"
        ).fetchall()
    )
    return {state: int(counts.get(state, 0)) for state in STATES}


@dataclass(frozen=True)
class PredictionStats:
    rows: int
    batches: int
    seconds: float
    by_group: dict[int, int]
    confident: int
    mean_probability: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def evidence_lists(matrix: ProductMatrix) -> pa.ListArray:
    """Per product, the names of the evidence it carries, as an Arrow list column."""
    rows, cols = np.nonzero(matrix.evidence)
    offsets = np.zeros(len(matrix) + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=len(matrix)), out=offsets[1:])
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(EVIDENCE, pa.string()).take(pa.array(cols))
    )


def write_predictions(
    con: duckdb.DuckDBPyConnection,
    pipeline: Pipeline,
    model_version: int,
    *,
    batch_rows: int = 200_000,
) -> PredictionStats:
    """Replace `nova_predictions` with `pipeline`'s group, calibrated probability, whether it
    clears its threshold, the evidence it had and the top reasons for each product of
    UNLABELLED_SQL; the old table stays if anything fails. `batch_rows` products at a time:
    a batch's name n-grams and reasons were the run's peak memory at 500 k.

    Codes are unique because `products.code` is its primary key; the table has no index of its
    own, which would cost more than the scoring itself.
    """
    start = time.perf_counter()
    with transaction(con):
        con.execute(PREDICTIONS_DDL)
        end = con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM products").fetchall()[0][0]
        slices = (
            f" AND rowid >= {first} AND rowid < {first + batch_rows}"
            for first in range(0, end, batch_rows)
        )
        total, batches, confident, probability_sum = _score_into(
            con, pipeline, model_version, slices
        )
    by_group = dict(
        con.execute(
            "SELECT predicted_nova_group, count(*) FROM nova_predictions GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    return PredictionStats(
        rows=total,
        batches=batches,
        seconds=time.perf_counter() - start,
        by_group=by_group,
        confident=confident,
        mean_probability=probability_sum / total if total else 0.0,
    )


def rescore_codes(
    con: duckdb.DuckDBPyConnection,
    pipeline: Pipeline,
    model_version: int,
    codes_table: str,
    *,
    batch_rows: int = 200_000,
) -> int:
    """Recompute `nova_predictions` for the codes in `codes_table` only (a table with a `code`
    column): their rows deleted, then those of them UNLABELLED_SQL still holds scored as
    `write_predictions` scores every product; every other row is left as it is. Runs in the
    caller's transaction. Returns the predictions written.

    Batched by code, not by rowid: rows the transaction wrote have rowids far beyond the
    table's."""
    con.execute(f"DELETE FROM nova_predictions WHERE code IN (SELECT code FROM {codes_table})")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE rescored_codes AS SELECT code, "
        f"(row_number() OVER () - 1) // {int(batch_rows)} AS batch FROM {codes_table}"
    )
    count = con.execute("SELECT coalesce(max(batch) + 1, 0) FROM rescored_codes").fetchone()[0]
    slices = (
        f" AND code IN (SELECT code FROM rescored_codes WHERE batch = {b})" for b in range(count)
    )
    try:
        return _score_into(con, pipeline, model_version, slices)[0]
    finally:
        con.execute("DROP TABLE rescored_codes")


def _score_into(
    con: duckdb.DuckDBPyConnection,
    pipeline: Pipeline,
    model_version: int,
    slices: Iterable[str],
) -> tuple[int, int, int, float]:
    """Score the products of UNLABELLED_SQL into `nova_predictions`, one slice (a condition
    narrowing it) at a time: (rows, batches, confident, sum of probabilities)."""
    classifier = pipeline.named_steps["classifier"]
    features = list(pipeline.named_steps["products"].features)
    names = pa.array(reason_names(classifier), pa.string())
    total = batches = confident = 0
    probability_sum = 0.0
    for where in slices:
        batch = product_matrix(con, f"{UNLABELLED_SQL}{where}", features, ordered=False)
        if len(batch) == 0:
            continue
        answer = predict(pipeline, batch)
        offsets, reason_ids = reasons(classifier, batch, answer.groups, REASONS_PER_PRODUCT)
        scored = pa.table(
            {
                "code": batch.codes,
                "predicted_nova_group": answer.groups,
                "probability": answer.probability.astype(np.float64),
                "confident": answer.confident,
                "evidence": evidence_lists(batch),
                "model_version": np.full(len(batch), model_version, dtype=np.int32),
                "reasons": pa.ListArray.from_arrays(
                    pa.array(offsets, pa.int32()), names.take(pa.array(reason_ids))
                ),
            }
        )
        con.register("scored_batch", scored)
        try:
            con.execute(
                "INSERT INTO nova_predictions (code, predicted_nova_group, probability, "
                "confident, evidence, nova_blank_reason, model_version, reasons) "
                "SELECT s.code, s.predicted_nova_group, s.probability, s.confident, s.evidence, "
                "p.nova_blank_reason, s.model_version, s.reasons "
                "FROM scored_batch s JOIN products p USING (code)"
            )
        finally:
            con.unregister("scored_batch")
        total += len(batch)
        confident += int(answer.confident.sum())
        probability_sum += float(answer.probability.sum())
        batches += 1
    return total, batches, confident, probability_sum


def coverage_by_reason(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Per reason OFF left products blank: products predicted, share confident, mean
    probability (from `nova_predictions`)."""
    return con.execute(
        """
        SELECT coalesce(nova_blank_reason, 'unknown') AS reason, count(*) AS products,
               avg(confident::INT) AS confident_share, avg(probability) AS mean_probability
        FROM nova_predictions GROUP BY ALL ORDER BY products DESC
        """
    ).fetchall()
