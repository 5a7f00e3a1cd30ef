"""What is kept of each dump measured for drift, and nowhere else (the warehouse keeps only the
newest `products`, so a comparison needs something of the previous dump):

- `nova_drift`: one row of figures per dump measured (the history the asset's plots show);
- `drift_labels`: (dump, code, group) of every labelled product, for the newest two dumps only;
- `drift_tags`: (dump, family, tag, products) of every tag, for the newest two dumps only.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from nova_assets.lib.database import table_exists, transaction

HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS nova_drift (
    dump_sha256 VARCHAR PRIMARY KEY,
    previous_sha256 VARCHAR,
    seq BIGINT NOT NULL,
    measured_at TIMESTAMP NOT NULL,
    min_count INTEGER NOT NULL,
    products BIGINT NOT NULL,
    labelled BIGINT NOT NULL,
    labelled_share DOUBLE NOT NULL,
    share_1 DOUBLE NOT NULL,
    share_2 DOUBLE NOT NULL,
    share_3 DOUBLE NOT NULL,
    share_4 DOUBLE NOT NULL,
    vocabulary BIGINT NOT NULL,
    class_share_distance DOUBLE,
    labelled_share_change DOUBLE,
    new_vocabulary BIGINT,
    vanished_vocabulary BIGINT,
    vocabulary_change_share DOUBLE,
    common_labelled BIGINT,
    changed_labels BIGINT,
    changed_label_share DOUBLE,
    champion_version VARCHAR,
    champion_rows BIGINT,
    champion_accuracy DOUBLE,
    champion_test_rows BIGINT,
    champion_test_accuracy DOUBLE,
    details VARCHAR
)
"""
LABELS_DDL = """
CREATE TABLE IF NOT EXISTS drift_labels (
    dump_sha256 VARCHAR NOT NULL, code VARCHAR NOT NULL, nova_group TINYINT NOT NULL
)
"""
TAGS_DDL = """
CREATE TABLE IF NOT EXISTS drift_tags (
    dump_sha256 VARCHAR NOT NULL, family VARCHAR NOT NULL, tag VARCHAR NOT NULL,
    products BIGINT NOT NULL
)
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(HISTORY_DDL)
    con.execute(LABELS_DDL)
    con.execute(TAGS_DDL)


def previous_measured(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    """The dump measured last before `sha256` (its `nova_drift` row); None for the first.

    Re-measuring the same dump compares it with the same predecessor, so the figures repeat.
    """
    return _row(
        con,
        "SELECT * FROM nova_drift WHERE dump_sha256 <> ? ORDER BY seq DESC LIMIT 1",
        [sha256],
    )


def _row(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> dict[str, Any] | None:
    cursor = con.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def record(
    con: duckdb.DuckDBPyConnection, figures: dict[str, Any], details: dict[str, Any]
) -> None:
    """Keep one measured dump: its figures (a `nova_drift` row) and details (JSON), and the
    labels and tags of the newest two dumps. Takes plain dicts, so this module needs nothing
    of measure.py (which imports it)."""
    keep = [figures["dump_sha256"], figures["previous_sha256"] or figures["dump_sha256"]]
    columns = [*figures, "details"]
    with transaction(con):
        for table in ("drift_labels", "drift_tags"):
            con.execute(
                f"DELETE FROM {table} WHERE dump_sha256 NOT IN (?, ?) OR dump_sha256 = ?",
                [*keep, figures["dump_sha256"]],
            )
        con.execute(
            "INSERT INTO drift_labels SELECT ?, code, nova_group FROM drift_current_labels",
            [figures["dump_sha256"]],
        )
        con.execute(
            "INSERT INTO drift_tags SELECT ?, family, tag, products FROM drift_current_tags",
            [figures["dump_sha256"]],
        )
        con.execute(
            f"INSERT OR REPLACE INTO nova_drift (seq, measured_at, {', '.join(columns)}) "
            "SELECT coalesce(max(seq), 0) + 1, CAST(current_timestamp AS TIMESTAMP), "
            f"{', '.join('?' for _ in columns)} FROM nova_drift",
            [*figures.values(), json.dumps(details)],
        )
        con.execute("DROP TABLE drift_current_labels")
        con.execute("DROP TABLE drift_current_tags")


def measured(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The `nova_drift` row of the dump `products` holds now; None if not measured yet."""
    if not table_exists(con, "nova_drift"):
        return None
    return _row(
        con,
        "SELECT * FROM nova_drift WHERE dump_sha256 = (SELECT any_value(dump_sha256) FROM products)",
        [],
    )


def history(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    """The newest `limit` rows of `nova_drift`, newest first."""
    cursor = con.execute("SELECT * FROM nova_drift ORDER BY seq DESC LIMIT ?", [limit])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
