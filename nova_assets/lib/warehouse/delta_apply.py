"""Apply one OFF delta to the warehouse: its products upserted by code, their split and their
predictions, and a `deltas` row saying so, all in one DuckDB transaction, so a delta is applied
whole or not at all.

A delta's documents are read and cleaned exactly as a full JSONL export is (`jsonl_dump`'s
read, `products`' staging and rows SQL), so the upserted rows are the rows a full ingest of the
later dump would hold. Unlike a full dump, a delta with any line that is not a JSON object is
refused whole: a partial delta would leave the tables at a time that is no time at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from nova_assets.lib.database import table_exists, transaction
from nova_assets.lib.ingest import jsonl_dump
from nova_assets.lib.ingest.delta_files import DeltaError, DeltaFile, utc
from nova_assets.lib.ingest.dump_format import DumpError, check_gzip_file, is_gzip
from nova_assets.lib.warehouse.products import (
    drop_staging,
    prepare_staged,
    products_rows_sql,
    stage_jsonl,
)
from nova_assets.lib.warehouse.split import extend_test_split

DELTAS_DDL = """
CREATE TABLE IF NOT EXISTS deltas (
    name VARCHAR NOT NULL,
    dump_sha256 VARCHAR NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    sha256 VARCHAR NOT NULL,
    bytes BIGINT NOT NULL,
    documents BIGINT NOT NULL,
    products BIGINT NOT NULL,
    new_products BIGINT NOT NULL,
    stale_documents BIGINT NOT NULL,
    predictions BIGINT NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (name, dump_sha256)
)
"""
"""One row per delta applied on top of a full dump (`dump_sha256`, the dump `products` holds):
a newer full dump replaces the products, so the deltas after it apply again on top of it."""

Rescorer = Callable[[duckdb.DuckDBPyConnection, str], int]
"""Recompute the predictions of the codes in the named table; returns the rows written."""


@dataclass(frozen=True)
class TablesState:
    """What the tables hold: their full dump, the deltas applied on it, and their time (the
    products' newest `last_modified_t` or the last delta's end, whichever is later)."""

    dump_sha256: str | None
    as_of: float | None
    """Unix seconds."""
    applied: frozenset[str]


@dataclass(frozen=True)
class DeltaStats:
    """What one delta did."""

    name: str
    documents: int
    products: int
    """Rows upserted: new codes and codes whose document is at least as new as the table's."""
    new_products: int
    stale_documents: int
    """Documents older than the row the table holds for their code: left out."""
    predictions: int
    as_of: float
    """The tables' time after it, Unix seconds."""


def tables_state(con: duckdb.DuckDBPyConnection) -> TablesState:
    if not table_exists(con, "products"):
        return TablesState(None, None, frozenset())
    # Timestamps are stored as `products` types them (in the session's time zone): back to
    # Unix seconds the same way.
    sha, newest = con.execute(
        "SELECT any_value(dump_sha256), epoch(CAST(max(last_modified_t) AS TIMESTAMPTZ)) "
        "FROM products"
    ).fetchone()
    applied: list[tuple[str, float]] = []
    if table_exists(con, "deltas"):
        applied = con.execute(
            "SELECT name, epoch(CAST(window_end AS TIMESTAMPTZ)) FROM deltas WHERE dump_sha256 = ?",
            [sha],
        ).fetchall()
    times = [t for t in [newest, *(end for _, end in applied)] if t is not None]
    return TablesState(sha, max(times) if times else None, frozenset(n for n, _ in applied))


def _layout(file: DeltaFile) -> jsonl_dump.JsonlLayout:
    """The delta as a JSONL dump, or DeltaError naming it: empty, damaged, or not JSONL."""
    name = file.delta.name
    try:
        if os.path.getsize(file.path) == 0:
            raise DeltaError(f"delta {name} is empty or not JSONL (0 bytes)")
        if is_gzip(file.path):
            check_gzip_file(file.path)
        if not jsonl_dump.is_jsonl(file.path):
            raise DeltaError(f"delta {name} is empty or not JSONL (no product document in it)")
        return jsonl_dump.check_jsonl(file.path)
    except DeltaError:
        raise
    except (DumpError, OSError) as exc:
        raise DeltaError(f"delta {name} refused: {exc}") from exc


def apply_delta(con: duckdb.DuckDBPyConnection, file: DeltaFile, rescore: Rescorer) -> DeltaStats:
    """Upsert the delta's products by code (the newest `last_modified_t` wins; the delta wins a
    tie, being the later export), give new codes their split, recompute the predictions of the
    codes it changed with `rescore`, and record it in `deltas`; on any error nothing changes.

    Raises DeltaError naming the file when it was applied already, ends before the tables'
    time, is empty, damaged, or holds a line that is not a JSON object.
    """
    delta = file.delta
    state = tables_state(con)
    if state.dump_sha256 is None or state.as_of is None:
        raise DeltaError(f"delta {delta.name}: no products yet, materialize off_dump first")
    if delta.name in state.applied:
        raise DeltaError(f"delta {delta.name} is applied already: skipped, not applied twice")
    if delta.end <= state.as_of:
        raise DeltaError(
            f"delta {delta.name} ends at {utc(delta.end)}, not after the tables' time "
            f"({utc(state.as_of)}): older than the tables, not applied"
        )
    layout = _layout(file)
    with transaction(con):
        con.execute(DELTAS_DDL)
        stats = _upsert(con, file, layout, state.dump_sha256, rescore)
        drop_staging(con)
        con.execute("DROP TABLE delta_rows")
        con.execute("DROP TABLE delta_codes")
    return stats


def _upsert(
    con: duckdb.DuckDBPyConnection,
    file: DeltaFile,
    layout: jsonl_dump.JsonlLayout,
    dump_sha256: str,
    rescore: Rescorer,
) -> DeltaStats:
    """The delta's work inside the caller's transaction."""
    name = file.delta.name
    stage_jsonl(con, layout)
    documents, broken = con.execute(
        "SELECT count(*) FILTER (NOT broken_line), count(*) FILTER (broken_line) "
        "FROM staged_products"
    ).fetchone()
    if broken:
        raise DeltaError(
            f"delta {name} has {broken:,} line(s) that are not JSON objects (invalid or cut "
            "short): refused whole, nothing applied"
        )
    if documents == 0:
        raise DeltaError(f"delta {name} is empty: no product document in it")
    prepare_staged(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE delta_rows AS {products_rows_sql()}", [dump_sha256])
    # A document older than the table's row of its code loses, as in a full ingest.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE delta_codes AS
        SELECT d.code, p.code IS NULL AS is_new FROM delta_rows d
        LEFT JOIN products p ON p.code = d.code
        WHERE p.code IS NULL OR NOT (p.last_modified_t > d.last_modified_t
            OR (d.last_modified_t IS NULL AND p.last_modified_t IS NOT NULL))
        """
    )
    con.execute(
        "INSERT OR REPLACE INTO products SELECT d.* FROM delta_rows d SEMI JOIN delta_codes "
        "USING (code)"
    )
    extend_test_split(con)
    predictions = rescore(con, "delta_codes")
    rows, new, kept = con.execute(
        "SELECT count(*), count(*) FILTER (is_new), "
        "(SELECT count(*) FROM delta_rows) - count(*) FROM delta_codes"
    ).fetchone()
    delta = file.delta
    con.execute(
        "INSERT INTO deltas BY NAME SELECT ? AS name, ? AS dump_sha256, "
        "CAST(to_timestamp(?) AS TIMESTAMP) AS window_start, "
        "CAST(to_timestamp(?) AS TIMESTAMP) AS window_end, "
        "? AS sha256, ? AS bytes, ? AS documents, ? AS products, ? AS new_products, "
        "? AS stale_documents, ? AS predictions",
        [name, dump_sha256, delta.start, delta.end, file.sha256, file.bytes, documents, rows, new]
        + [kept, predictions],
    )
    as_of = tables_state(con).as_of
    assert as_of is not None
    return DeltaStats(name, documents, rows, new, kept, predictions, as_of)
