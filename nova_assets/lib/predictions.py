"""Batch predictions for every unlabelled product, written as one atomic table replacement.

Products are scored a slice of the table at a time (by rowid: tags to CSR in DuckDB, then the
classifier), so memory stays bounded by the slice size whatever the dump's size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
from sklearn.pipeline import Pipeline

from nova_assets.lib.features import tag_matrix
from nova_assets.lib.models import predict_matrix, reasons

REASONS_PER_PRODUCT = 3

PREDICTIONS_DDL = """
CREATE OR REPLACE TABLE nova_predictions (
    code VARCHAR NOT NULL,
    predicted_nova_group TINYINT NOT NULL,
    probability DOUBLE NOT NULL,
    model_version INTEGER NOT NULL,
    reasons VARCHAR[] NOT NULL,
    predicted_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)
"""

UNLABELLED_SQL = """
    SELECT rowid AS row_key, code, ingredients_tags, additives_tags, categories_tags
    FROM products
    WHERE nova_group IS NULL AND len(ingredients_tags) > 0
"""


@dataclass(frozen=True)
class PredictionStats:
    rows: int
    batches: int
    seconds: float
    by_group: dict[int, int]
    mean_probability: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_predictions(
    con: duckdb.DuckDBPyConnection,
    pipeline: Pipeline,
    model_version: int,
    *,
    batch_rows: int = 2_000_000,
) -> PredictionStats:
    """Replace `nova_predictions` with `pipeline`'s group, probability and top reasons (the
    tags that pushed most towards that group) for each unlabelled product that has
    ingredients; the old table stays if anything fails.

    Codes are unique because `products.code` is its primary key; the table has no index of its
    own, which would cost more than the scoring itself.
    """
    start = time.perf_counter()
    features = list(pipeline.named_steps["tags"].features)
    feature_names = pa.array(features, pa.string())
    end = con.execute("SELECT coalesce(max(rowid) + 1, 0) FROM products").fetchall()[0][0]
    total = 0
    batches = 0
    probability_sum = 0.0
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(PREDICTIONS_DDL)
        for first in range(0, end, batch_rows):
            batch = tag_matrix(
                con,
                f"{UNLABELLED_SQL} AND rowid >= {first} AND rowid < {first + batch_rows}",
                features,
                ordered=False,
            )
            total += batch.X.shape[0]
            groups, probability = predict_matrix(pipeline, batch.X)
            probability_sum += float(probability.sum())
            offsets, reason_ids = reasons(pipeline, batch.X, groups, REASONS_PER_PRODUCT)
            scored = pa.table(
                {
                    "code": batch.codes,
                    "predicted_nova_group": groups,
                    "probability": probability.astype(np.float64),
                    "model_version": np.full(len(groups), model_version, dtype=np.int32),
                    "reasons": pa.ListArray.from_arrays(
                        pa.array(offsets, pa.int32()), feature_names.take(pa.array(reason_ids))
                    ),
                }
            )
            con.register("scored_batch", scored)
            try:
                con.execute(
                    "INSERT INTO nova_predictions (code, predicted_nova_group, probability, model_version, reasons) "
                    "SELECT * FROM scored_batch"
                )
            finally:
                con.unregister("scored_batch")
            batches += 1
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
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
        mean_probability=probability_sum / total if total else 0.0,
    )
