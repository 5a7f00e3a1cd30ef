"""Publish warehouse tables as a read-only copy that users can query while runs write.

DuckDB allows one writer process or many readers, never both, so a user's session on the
warehouse would block the pipeline. Instead the writer exports each table it changed to a new
Parquet file and swaps in a new views-only catalog, `<serving_dir>/nova.duckdb`, with
`os.replace`. Nobody ever opens that catalog for writing, so readers never block the writer;
a reader that already has the old catalog open keeps reading the old Parquet files, which stay
until they have been unreferenced for `keep_seconds`.

Publishes must not run concurrently for one serving dir; the platform guarantees that because
`publish` runs on the warehouse's read-write connection, which DuckDB holds exclusively.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from nova_assets.lib.database import sql_literal
from nova_assets.lib.files import write_atomically

CATALOG = "nova.duckdb"
MANIFEST = "manifest.json"
TABLES_DIR = "tables"
KEEP_SECONDS = 600.0
MATERIALIZE_FIRST = "materialize the assets first: uv run dg launch --job all_assets"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def catalog_path(serving_dir: Path) -> Path:
    """The file users open read-only."""
    return Path(serving_dir) / CATALOG


def read_manifest(serving_dir: Path) -> dict[str, Any]:
    """The current manifest: `tables` maps table -> {path, rows, published_at}."""
    path = Path(serving_dir) / MANIFEST
    if not path.exists():
        return {"tables": {}, "retired": {}}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.setdefault("tables", {})
    manifest.setdefault("retired", {})
    return manifest


def publish(
    con: duckdb.DuckDBPyConnection,
    tables: Sequence[str],
    serving_dir: Path,
    *,
    keep_seconds: float = KEEP_SECONDS,
) -> dict[str, dict[str, Any]]:
    """Export `tables` from `con` and atomically swap in a catalog serving every published table.

    Returns table -> {"rows", "path"} for the tables exported now. On any error before the
    swap, the new files are removed and the previous catalog and manifest are left as they were.
    """
    names = list(dict.fromkeys(tables))
    for name in names:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"cannot publish {name!r}: not a plain table name")
    serving_dir = Path(serving_dir).resolve()
    tables_dir = serving_dir / TABLES_DIR
    tables_dir.mkdir(parents=True, exist_ok=True)

    previous = read_manifest(serving_dir)
    publish_id = f"{time.time_ns():020d}-{secrets.token_hex(3)}"
    published_at = datetime.now(UTC).isoformat()
    written: list[Path] = []
    staged_catalog = serving_dir / f".nova-{publish_id}.duckdb"
    try:
        exported: dict[str, dict[str, Any]] = {}
        for name in names:
            target = tables_dir / f"{name}-{publish_id}.parquet"
            written.append(target)
            rows = con.execute(
                f"COPY (SELECT * FROM {_quote(name)}) TO {sql_literal(target)} (FORMAT parquet)"
            ).fetchone()[0]
            exported[name] = {"rows": int(rows), "path": str(target)}

        manifest = _next_manifest(previous, exported, published_at, publish_id)
        _build_catalog(staged_catalog, manifest["tables"])
        _write_json_atomically(serving_dir / MANIFEST, manifest)
    except BaseException:
        for path in [*written, staged_catalog, Path(f"{staged_catalog}.wal")]:
            path.unlink(missing_ok=True)
        raise
    os.replace(staged_catalog, catalog_path(serving_dir))
    _clean(serving_dir, previous, manifest, keep_seconds)
    return exported


def _next_manifest(
    previous: dict[str, Any],
    exported: dict[str, dict[str, Any]],
    published_at: str,
    publish_id: str,
) -> dict[str, Any]:
    """The previous manifest with the exported tables replaced; replaced files become retired."""
    tables = dict(previous["tables"])
    now = time.time()
    retired = {path: at for path, at in previous["retired"].items() if Path(path).exists()}
    for name, entry in exported.items():
        old = tables.get(name)
        if old is not None and old["path"] != entry["path"]:
            retired[old["path"]] = now
        tables[name] = {**entry, "published_at": published_at}
    return {"publish_id": publish_id, "tables": tables, "retired": retired}


def _build_catalog(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    """A new views-only DuckDB file: one view per table over its Parquet, plus `published`."""
    with duckdb.connect(str(path)) as catalog:
        for name, entry in sorted(tables.items()):
            catalog.execute(
                f"CREATE VIEW {_quote(name)} AS SELECT * FROM read_parquet({sql_literal(entry['path'])})"
            )
        catalog.execute(
            'CREATE TABLE published ("table" VARCHAR, rows BIGINT, published_at TIMESTAMPTZ)'
        )
        catalog.executemany(
            "INSERT INTO published VALUES (?, ?, ?)",
            [[name, e["rows"], e["published_at"]] for name, e in sorted(tables.items())],
        )
        catalog.execute("CHECKPOINT")


def _write_json_atomically(path: Path, content: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(content, indent=2, sort_keys=True))


def _clean(
    serving_dir: Path, previous: dict[str, Any], current: dict[str, Any], keep_seconds: float
) -> None:
    """Delete Parquet files and leftover staged catalogs nobody can still be reading.

    A file in the current or previous manifest is never deleted; any other file only once it has
    been unreferenced (or, for a file no manifest knew, existed) for more than `keep_seconds`,
    so a session opened on an older catalog has that long to finish.
    """
    referenced = {e["path"] for m in (previous, current) for e in m["tables"].values()}
    now = time.time()
    candidates = [*(serving_dir / TABLES_DIR).glob("*.parquet"), *serving_dir.glob(".nova-*")]
    for path in candidates:
        if str(path) in referenced:
            continue
        try:
            since = max(path.stat().st_mtime, current["retired"].get(str(path), 0.0))
            if now - since > keep_seconds:
                path.unlink()
        except FileNotFoundError:
            continue


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
