"""The model's input: products as a multi-hot tag matrix, with their names and the evidence
they carry, built set-wise in DuckDB and handed to scipy as CSR.

A tag feature is `family:tag`, the family being where the tag came from (`ingredients`,
`additives`, `categories`), so `en:sugar` as an ingredient and as a category stay apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from scipy import sparse

from nova_assets.lib.files import atomic_path
from nova_assets.lib.ml.name_ngrams import name_vectors
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS, NUTRIENTS
from nova_assets.lib.warehouse.nova_rules import (
    FLAVOURED_WATERS_CATEGORIES,
    NOVA_MARKERS,
    WATERS_CATEGORY,
)

FAMILIES = ("ingredients", "additives", "categories")
EVIDENCE = (*FAMILIES, "name", "nutrients")
"""What a product can carry, in the column order of `ProductMatrix.evidence`."""
WATER_FEATURES = tuple(
    f"categories:{c}" for c in (WATERS_CATEGORY, *sorted(FLAVOURED_WATERS_CATEGORIES))
)
"""Always in the vocabulary beside the markers: OFF gives plain waters group 1 without
ingredients, and the model does as OFF does."""
MIN_NUTRIENTS = 2
"""A product carries nutrients as evidence from this many known values on (energy alone
says little)."""

VOCABULARY_DDL = """
CREATE OR REPLACE TABLE feature_vocabulary (
    feature_id INTEGER PRIMARY KEY,
    feature VARCHAR NOT NULL,
    family VARCHAR NOT NULL,
    tag VARCHAR NOT NULL,
    train_count BIGINT NOT NULL
)
"""


def split_feature(feature: str) -> tuple[str, str]:
    family, _, tag = feature.partition(":")
    return family, tag


def tag_pairs_sql(rows_sql: str) -> str:
    """(row_key, family, tag) for every tag of every row of the query `rows_sql`."""
    return " UNION ALL ".join(
        f"SELECT row_key, '{family}' AS family, unnest({family}_tags) AS tag FROM ({rows_sql})"
        for family in FAMILIES
    )


def labelled_rows_sql(split: str, corpus: str | None = None) -> str:
    """Labelled products of one side of the fixed split, keyed by rowid. OFF labelled them, so
    their ingredients are not partly unknown.

    `corpus`: a table of more labelled products (`real_products.load_real_products`) that the
    training side takes too, keyed below zero, except those whose code the dump has: the
    dump's own row stands for them, and a product of the test split or a blank one is never
    learned from by the back door."""
    columns = "row_key, code, ingredients_tags, additives_tags, categories_tags, product_name, "
    columns += f"nova_group, false AS partial_ingredients, {', '.join(NUTRIENT_COLUMNS)}"
    rows = f"""
        SELECT p.rowid AS {columns}, false AS from_corpus
        FROM products p JOIN test_split s USING (code)
        WHERE s.split = '{split}' AND p.nova_group IS NOT NULL
    """
    if corpus is None or split != "train":
        return rows
    return f"""{rows}
        UNION ALL
        SELECT -1 - c.rowid AS {columns}, true AS from_corpus
        FROM {corpus} c
        WHERE c.nova_group IS NOT NULL AND c.code NOT IN (SELECT code FROM products)
    """


def build_vocabulary(
    con: duckdb.DuckDBPyConnection, min_count: int, corpus: str | None = None
) -> list[str]:
    """Learn the vocabulary from training rows only (the `corpus`'s too, see
    `labelled_rows_sql`): tags seen in at least `min_count` of them, and every one of OFF's
    NOVA markers (and WATER_FEATURES) whatever its count, so the marker features see each
    marker a product has, as the rules do.

    Replaces `feature_vocabulary` and returns its features in column order.
    """
    kept = [*NOVA_MARKERS, *WATER_FEATURES]
    markers = pa.table(
        {
            "family": [split_feature(m)[0] for m in kept],
            "tag": [split_feature(m)[1] for m in kept],
        }
    )
    con.execute(VOCABULARY_DDL)
    con.register("vocabulary_markers", markers)
    try:
        con.execute(
            f"""
            INSERT INTO feature_vocabulary
            SELECT CAST(row_number() OVER (ORDER BY family, tag) - 1 AS INTEGER),
                   family || ':' || tag, family, tag, coalesce(n, 0)
            FROM (
                SELECT family, tag, count(DISTINCT row_key) AS n
                FROM ({tag_pairs_sql(labelled_rows_sql("train", corpus))})
                WHERE tag IS NOT NULL AND tag <> ''
                GROUP BY ALL
            ) counted
            FULL JOIN vocabulary_markers USING (family, tag)
            WHERE n >= ? OR vocabulary_markers.tag IS NOT NULL
            """,
            [min_count],
        )
    finally:
        con.unregister("vocabulary_markers")
    return [
        r[0]
        for r in con.execute(
            "SELECT feature FROM feature_vocabulary ORDER BY feature_id"
        ).fetchall()
    ]


@dataclass
class ProductMatrix:
    """Products as the model reads them.

    `X`: multi-hot tags over `features`. `evidence[i, k]`: product i carries `EVIDENCE[k]` (any
    tag of the family, vocabulary or not; a non-empty name; MIN_NUTRIENTS known nutrient
    values). `nutrients[i, k]`: its value of `NUTRIENTS[k]` per 100 g, NaN where unknown
    (none given: all unknown). `partial[i]`: its ingredients are
    known to be partly unknown (OFF's `too_many_unknown_ingredients`). `names`: product names
    ('' for none). `labels`: NOVA group, 0 where there is none.
    """

    X: sparse.csr_matrix
    codes: np.ndarray
    labels: np.ndarray
    features: list[str]
    names: np.ndarray
    evidence: np.ndarray
    partial: np.ndarray
    nutrients: np.ndarray | None = None
    corpus: np.ndarray | None = None
    """`corpus[i]`: the product comes from a corpus of labelled products beside the dump's own
    (`labelled_rows_sql`): models learn from it, but are judged and calibrated on the dump's
    products only. None given: no product does."""
    nutrient_scores: np.ndarray | None = field(default=None, repr=False, compare=False)
    """Out-of-fold answers of the nutrient trees for training rows (`nutrient_model`), set
    while a model is fitted on them; other rows are scored by the fitted trees."""
    hashed_names: sparse.csr_matrix | None = field(default=None, repr=False, compare=False)
    """`name_vectors(names)`, once computed: hiding evidence or taking rows keeps it."""

    def __post_init__(self) -> None:
        if self.nutrients is None:
            self.nutrients = np.full((self.X.shape[0], len(NUTRIENTS)), np.nan, dtype=np.float32)
        if self.corpus is None:
            self.corpus = np.zeros(self.X.shape[0], dtype=bool)

    def __len__(self) -> int:
        return self.X.shape[0]

    def name_vectors(self) -> sparse.csr_matrix:
        if self.hashed_names is None:
            self.hashed_names = name_vectors(self.names)
        return self.hashed_names

    def take(self, rows: np.ndarray) -> ProductMatrix:
        """The rows `rows` (indices or a boolean mask), in that order."""
        return replace(
            self,
            X=self.X[rows],
            codes=self.codes[rows],
            labels=self.labels[rows],
            names=self.names[rows],
            evidence=self.evidence[rows],
            partial=self.partial[rows],
            nutrients=self.nutrients[rows],
            corpus=self.corpus[rows],
            nutrient_scores=None if self.nutrient_scores is None else self.nutrient_scores[rows],
            hashed_names=None if self.hashed_names is None else self.hashed_names[rows],
        )

    @classmethod
    def concat(cls, matrices: Sequence[ProductMatrix]) -> ProductMatrix:
        """The rows of `matrices` (over the same features), one after the other."""
        first = matrices[0]
        hashed = [m.hashed_names for m in matrices]
        return cls(
            X=sparse.vstack([m.X for m in matrices], format="csr"),
            codes=np.concatenate([m.codes for m in matrices]),
            labels=np.concatenate([m.labels for m in matrices]),
            features=first.features,
            names=np.concatenate([m.names for m in matrices]),
            evidence=np.concatenate([m.evidence for m in matrices]),
            partial=np.concatenate([m.partial for m in matrices]),
            nutrients=np.concatenate([m.nutrients for m in matrices]),
            corpus=np.concatenate([m.corpus for m in matrices]),
            nutrient_scores=None
            if any(m.nutrient_scores is None for m in matrices)
            else np.concatenate([m.nutrient_scores for m in matrices]),
            hashed_names=None
            if any(h is None for h in hashed)
            else sparse.vstack(hashed, format="csr"),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        name_offsets, name_bytes = _pack(self.names)
        with atomic_path(path, ".npz") as tmp:
            np.savez(
                tmp,
                data=self.X.data,
                indices=self.X.indices,
                indptr=self.X.indptr,
                shape=np.array(self.X.shape),
                codes=self.codes,
                labels=self.labels,
                features=np.array(self.features, dtype=str),
                name_offsets=name_offsets,
                name_bytes=name_bytes,
                evidence=self.evidence,
                partial=self.partial,
                nutrients=self.nutrients,
                corpus=self.corpus,
            )

    @staticmethod
    def load_labels(path: Path) -> np.ndarray:
        """The labels of a saved matrix alone: an npz member is read only when asked for."""
        with np.load(path, allow_pickle=False) as f:
            return f["labels"]

    @classmethod
    def load(cls, path: Path) -> ProductMatrix:
        with np.load(path, allow_pickle=False) as f:
            X = sparse.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))
            return cls(
                X,
                f["codes"],
                f["labels"],
                [str(x) for x in f["features"]],
                _unpack(f["name_offsets"], f["name_bytes"]),
                f["evidence"],
                f["partial"],
                f["nutrients"] if "nutrients" in f.files else None,
                f["corpus"] if "corpus" in f.files else None,
            )


def nutrient_evidence(nutrients: np.ndarray) -> np.ndarray:
    """Whether each product carries nutrients as evidence (MIN_NUTRIENTS known values)."""
    return (~np.isnan(nutrients)).sum(axis=1) >= MIN_NUTRIENTS


def _pack(strings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (offsets, UTF-8 bytes), Arrow's layout: no fixed-width unicode array, whose
    size is the longest name times the row count."""
    array = pa.array(list(strings), pa.large_string())
    _, offsets, data = array.buffers()
    n = len(array)
    offsets_np = np.frombuffer(offsets, dtype=np.int64, count=n + 1).copy()
    data_np = (
        np.frombuffer(data, dtype=np.uint8, count=int(offsets_np[-1])).copy()
        if data is not None
        else np.zeros(0, dtype=np.uint8)
    )
    return offsets_np, data_np


def _unpack(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    array = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data.tobytes())
    )
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)


def _positions(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Where each of `wanted` sits in `keys` (unique row keys), by a dense lookup over their
    range: one gather, much faster than a search over millions of pairs."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int32)
    low = int(keys.min())
    lookup = np.full(int(keys.max()) - low + 1, -1, dtype=np.int32)
    lookup[keys - low] = np.arange(len(keys), dtype=np.int32)
    return lookup[wanted - low]


def csr_from_pairs(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
) -> sparse.csr_matrix:
    """Multi-hot CSR from (row, column) pairs in any order, a pair listed twice counted once.

    Pairs grouped by row with a stable integer sort: a third faster than going through COO.
    """
    rows = np.asarray(rows)
    if rows.dtype.kind not in "iu":
        rows = rows.astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    # Rows kept as they come (int32 positions) and let go as soon as sorted: with tens of
    # millions of pairs, each extra copy is hundreds of MB of the step's peak.
    order = np.argsort(rows, kind="stable")
    del rows
    indices = np.asarray(cols, dtype=np.int32)[order]
    del order, cols
    X = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_rows, n_cols)
    )
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


def product_matrix(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    features: Sequence[str],
    *,
    ordered: bool = True,
) -> ProductMatrix:
    """The rows of `rows_sql` as a ProductMatrix over `features`.

    `rows_sql` yields `row_key` (unique per row, e.g. `products.rowid`), `code`, the three
    `*_tags` lists, and optionally `product_name`, `nova_group`, `partial_ingredients` and the
    nutrient columns (`nutrients.NUTRIENT_COLUMNS`). The
    work is one DuckDB join from tags to column ids straight off the table, with no copy of the
    rows; Python only sees index arrays and the names.
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
        raise ValueError("product_matrix needs a row_key column (e.g. products.rowid AS row_key)")

    def optional(column: str, default: str) -> str:
        return column if column in columns else default

    has = ", ".join(f"coalesce(len({f}_tags), 0) > 0 AS has_{f}" for f in FAMILIES)
    values = ", ".join(f"CAST({optional(c, 'NULL')} AS FLOAT) AS {c}" for c in NUTRIENT_COLUMNS)
    con.register("matrix_vocab", vocab)
    try:
        head = con.execute(
            f"SELECT row_key, code, coalesce({optional('nova_group', 'NULL')}, 0) AS label, "
            f"coalesce(trim({optional('product_name', 'NULL')}), '') AS name, {has}, "
            f"coalesce({optional('partial_ingredients', 'NULL')}, false) AS partial, {values}, "
            f"coalesce({optional('from_corpus', 'NULL')}, false) AS from_corpus "
            f"FROM ({rows_sql}) " + ("ORDER BY code" if ordered else "")
        ).fetchnumpy()
        pairs = con.execute(
            f"SELECT t.row_key, v.feature_id FROM ({tag_pairs_sql(rows_sql)}) t "
            "JOIN matrix_vocab v USING (family, tag)"
        ).fetchnumpy()
    finally:
        con.unregister("matrix_vocab")
    keys = np.asarray(head["row_key"], dtype=np.int64)
    # The pairs' arrays handed over, not kept: each is freed once turned into the next.
    X = csr_from_pairs(
        _positions(keys, np.asarray(pairs.pop("row_key"), dtype=np.int64)),
        pairs.pop("feature_id"),
        len(keys),
        len(features),
    )
    names = np.asarray(head["name"], dtype=object)
    nutrients = np.column_stack(
        [np.ma.filled(head[c].astype(np.float32), np.nan) for c in NUTRIENT_COLUMNS]
    ).reshape(len(keys), len(NUTRIENTS))
    evidence = np.column_stack(
        [np.asarray(head[f"has_{f}"], dtype=bool) for f in FAMILIES]
        + [np.fromiter((bool(n) for n in names), dtype=bool, count=len(names))]
        + [nutrient_evidence(nutrients)]
    ).reshape(len(keys), len(EVIDENCE))
    return ProductMatrix(
        X=X,
        codes=np.asarray(head["code"]).astype(str),
        labels=np.asarray(head["label"], dtype=np.int8),
        features=list(features),
        names=names,
        evidence=evidence,
        partial=np.asarray(head["partial"], dtype=bool),
        nutrients=nutrients,
        corpus=np.asarray(head["from_corpus"], dtype=bool),
    )
