"""What a model learns from and is tested on: the vocabulary, the dump's labelled products on
each side of the fixed split, the shipped real products beside the training side, and the
unlabelled products by evidence state (who the model is for)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from nova_assets.lib.database import transaction
from nova_assets.lib.ml.batch_predictions import population
from nova_assets.lib.ml.feature_matrix import (
    ProductMatrix,
    build_vocabulary,
    labelled_rows_sql,
    product_matrix,
)
from nova_assets.lib.warehouse.real_products import load_real_products

CORPUS_TABLE = "real_products"


@dataclass
class TrainingData:
    features: list[str]
    train: ProductMatrix
    test: ProductMatrix
    unlabelled: dict[str, int]
    """Unlabelled food products with evidence, per evidence state."""


def training_data(
    con: duckdb.DuckDBPyConnection, min_count: int, real_products: Path | None = None
) -> TrainingData:
    """Replace `feature_vocabulary` and build the matrices, in one transaction; with
    `real_products` (the JSONL of `data/real/`), its labelled products train too
    (`labelled_rows_sql`)."""
    corpus = None
    if real_products is not None:
        # Loaded and committed before the transaction: uncommitted rows have row ids far out
        # of the dense range the matrix's row keys need.
        load_real_products(con, real_products, CORPUS_TABLE, temporary=True)
        corpus = CORPUS_TABLE
    with transaction(con):
        features = build_vocabulary(con, min_count, corpus)
        train = product_matrix(con, labelled_rows_sql("train", corpus), features)
        if len(train) == 0:
            raise ValueError("no labelled training products: cannot build features")
        test = product_matrix(con, labelled_rows_sql("test"), features)
        return TrainingData(features, train, test, population(con))
