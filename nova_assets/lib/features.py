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


def _tag_pairs_sql(rows: str) -> str:
    """(row_id, family, tag) for every tag of every row of the relation `rows`."""
    return " UNION ALL ".join(
        f"SELECT row_id, '{family}' AS family, unnest({family}_tags) AS tag FROM {rows}"
        for family in FAMILIES
    )


def labelled_rows_sql(split: str) -> str:
    """Labelled products of one side of the fixed split, in code order."""
    return f"""
        SELECT p.code, p.ingredients_tags, p.additives_tags, p.categories_tags, p.nova_group
        FROM products p JOIN test_split s USING (code)
        WHERE s.split = '{split}' AND p.nova_group IS NOT NULL
        ORDER BY p.code
    """


def build_vocabulary(con: duckdb.DuckDBPyConnection, min_count: int) -> list[str]:
    """Learn the vocabulary from training rows only: tags seen in at least `min_count` of them.

    Replaces `feature_vocabulary` and returns its features in column order.
    """
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE vocab_rows AS "
        f"SELECT row_number() OVER (ORDER BY code) AS row_id, * FROM ({labelled_rows_sql('train')})"
    )
    con.execute(VOCABULARY_DDL)
    con.execute(
        f"""
        INSERT INTO feature_vocabulary
        SELECT CAST(row_number() OVER (ORDER BY family, tag) - 1 AS INTEGER),
               family || ':' || tag, family, tag, n
        FROM (
            SELECT family, tag, count(DISTINCT row_id) AS n
            FROM ({_tag_pairs_sql("vocab_rows")})
            WHERE tag IS NOT NULL AND tag <> ''
            GROUP BY ALL
            HAVING count(DISTINCT row_id) >= ?
        )
        """,
        [min_count],
    )
    con.execute("DROP TABLE vocab_rows")
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


def tag_matrix(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    features: Sequence[str],
    *,
    ordered: bool = True,
) -> TagMatrix:
    """Multi-hot rows of `rows_sql` (code, *_tags, optional nova_group) over `features`.

    The work is one DuckDB join from tags to column ids; Python only sees the index arrays.
    With `ordered`, rows come in code order, so two calls over the same rows line up; without
    it the rows keep DuckDB's scan order, which is faster and enough for scoring.
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
    order = "ORDER BY code" if ordered else ""
    con.register("matrix_vocab", vocab)
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE matrix_rows AS "
            f"SELECT CAST(row_number() OVER ({order}) - 1 AS BIGINT) AS row_id, * FROM ({rows_sql})"
        )
        columns = {r[0] for r in con.execute("DESCRIBE matrix_rows").fetchall()}
        label = "nova_group" if "nova_group" in columns else "CAST(NULL AS TINYINT)"
        head = con.execute(
            f"SELECT code, coalesce({label}, 0) AS label FROM matrix_rows ORDER BY row_id"
        ).fetchnumpy()
        pairs = con.execute(
            f"""
            SELECT t.row_id, v.feature_id
            FROM ({_tag_pairs_sql("matrix_rows")}) t
            JOIN matrix_vocab v USING (family, tag)
            """
        ).fetchnumpy()
        con.execute("DROP TABLE matrix_rows")
    finally:
        con.unregister("matrix_vocab")
    n_rows = len(head["code"])
    rows = np.asarray(pairs["row_id"], dtype=np.int64)
    cols = np.asarray(pairs["feature_id"], dtype=np.int32)
    # COO to CSR sorts by row in C and sums a tag listed twice; multi-hot wants it back at 1.
    X = sparse.coo_matrix(
        (np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(n_rows, len(features))
    ).tocsr()
    X.data[:] = 1.0
    codes = np.asarray(head["code"]).astype(str)
    labels = np.asarray(head["label"], dtype=np.int8)
    return TagMatrix(X, codes, labels, list(features))
