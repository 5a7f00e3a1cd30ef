"""Multi-hot features over OFF tags, built set-wise in DuckDB and handed to scipy as CSR.

A feature is `family:tag`, the family being where the tag came from (`ingredients`,
`additives`, `categories`), so `en:sugar` as an ingredient and as a category stay apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from scipy import sparse

FAMILIES = ("ingredients", "additives", "categories")

VOCABULARY_DDL = """
CREATE OR REPLACE TABLE feature_vocabulary (
    feature_id INTEGER PRIMARY KEY,
    feature VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    tag VARCHAR NOT NULL,
    train_count BIGINT NOT NULL
)
"""


def feature_name(family: str, tag: str) -> str:
    return f"{family}:{tag}"


def split_feature(feature: str) -> tuple[str, str]:
    family, _, tag = feature.partition(":")
    return family, tag


def tag_pairs_sql(rows_sql: str) -> str:
    """(row_key, family, tag) for every tag of every row of the query `rows_sql`."""
    return " UNION ALL ".join(
        f"SELECT row_key, '{family}' AS family, unnest({family}_tags) AS tag FROM ({rows_sql})"
        for family in FAMILIES
    )


def labelled_rows_sql(split: str) -> str:
    """Labelled products of one side of the fixed split, keyed by rowid."""
    return f"""
        SELECT p.rowid AS row_key, p.code, p.ingredients_tags, p.additives_tags, p.categories_tags, p.nova_group
        FROM products p JOIN test_split s USING (code)
        WHERE s.split = '{split}' AND p.nova_group IS NOT NULL
    """


def build_vocabulary(con: duckdb.DuckDBPyConnection, min_count: int) -> list[str]:
    """Learn the vocabulary from training rows only: tags seen in at least `min_count` of them.

    Replaces `feature_vocabulary` and returns its features in column order.
    """
    con.execute(VOCABULARY_DDL)
    con.execute(
        f"""
        INSERT INTO feature_vocabulary
        SELECT CAST(row_number() OVER (ORDER BY family, tag) - 1 AS INTEGER),
               family || ':' || tag, family, tag, n
        FROM (
            SELECT family, tag, count(DISTINCT row_key) AS n
            FROM ({tag_pairs_sql(labelled_rows_sql("train"))})
            WHERE tag IS NOT NULL AND tag <> ''
            GROUP BY ALL
            HAVING count(DISTINCT row_key) >= ?
        )
        """,
        [min_count],
    )
    return [
        r[0]
        for r in con.execute(
            "SELECT feature FROM feature_vocabulary ORDER BY feature_id"
        ).fetchall()
    ]


@dataclass
class TagMatrix:
    """Rows of products as a CSR multi-hot matrix, with their codes and (maybe) labels."""

    X: sparse.csr_matrix
    codes: np.ndarray
    labels: np.ndarray
    features: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            data=self.X.data,
            indices=self.X.indices,
            indptr=self.X.indptr,
            shape=np.array(self.X.shape),
            codes=self.codes,
            labels=self.labels,
            features=np.array(self.features, dtype=str),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TagMatrix:
        with np.load(path, allow_pickle=False) as f:
            X = sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            return cls(X, f["codes"], f["labels"], [str(x) for x in f["features"]])


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of `wanted` sits in `keys` (unique row keys), by a dense lookup over their
    range: one gather, much faster than a search over millions of pairs."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int32)
    low = int(keys.min())
    lookup = np.full(int(keys.max()) - low + 1, -1, dtype=np.int32)
    lookup[keys - low] = np.arange(len(keys), dtype=np.int32)
    return lookup[wanted - low]


def tag_matrix(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    features: Sequence[str],
    *,
    ordered: bool = True,
) -> TagMatrix:
    """Multi-hot rows of `rows_sql` over `features`.

    `rows_sql` yields `row_key` (unique per row, e.g. `products.rowid`), `code`, the three
    `*_tags` lists and optionally `nova_group`. The work is one DuckDB join from tags to column ids
    straight off the table, with no copy of the rows; Python only sees index arrays.
    With `ordered`, rows come in code order, so two calls over the same rows line up; without it
    they come in scan order, which is cheaper and enough for scoring.
    """
    families, tags = (
        zip(*(split_feature(f) for f in features), strict=True) if features else ((), ())
    )
    vocab = pa.table(
        {
            "feature_id": pa.array(range(len(features)), pa.int32()),
            "family": pa.array(families, pa.string()),
            "tag": pa.array(tags, pa.string()),
        }
    )
    columns = [d[0] for d in con.execute(f"SELECT * FROM ({rows_sql}) LIMIT 0").description]
    if "row_key" not in columns:
        raise ValueError("tag_matrix needs a row_key column (e.g. products.rowid AS row_key)")
    label = "nova_group" if "nova_group" in columns else "CAST(NULL AS TINYINT)"
    con.register("matrix_vocab", vocab)
    try:
        head = con.execute(
            f"SELECT row_key, code, coalesce({label}, 0) AS label FROM ({rows_sql}) "
            + ("ORDER BY code" if ordered else "")
        ).fetchnumpy()
        pairs = con.execute(
            f"SELECT t.row_key, v.feature_id FROM ({tag_pairs_sql(rows_sql)}) t "
            "JOIN matrix_vocab v USING (family, tag)"
        ).fetchnumpy()
    finally:
        con.unregister("matrix_vocab")
    keys = np.asarray(head["row_key"], dtype=np.int64)
    rows = _positions(keys, np.asarray(pairs["row_key"], dtype=np.int64))
    cols = np.asarray(pairs["feature_id"], dtype=np.int32)
    # Pairs grouped by row with a stable integer sort, then a tag listed twice summed and set
    # back to 1 (multi-hot): a third faster than going through COO.
    indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(keys)), out=indptr[1:])
    X = sparse.csr_matrix(
        (np.ones(len(cols), dtype=np.float32), cols[np.argsort(rows, kind="stable")], indptr),
        shape=(len(keys), len(features)),
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    codes = np.asarray(head["code"]).astype(str)
    labels = np.asarray(head["label"], dtype=np.int8)
    return TagMatrix(X, codes, labels, list(features))
