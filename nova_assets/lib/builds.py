"""What each step built last, by fingerprint: the same inputs, settings and code build the same
tables, so a step that finds its fingerprint recorded writes nothing. Running the graph again on
an unchanged dump (a second `dg launch`, "Materialize all", the README's first command then the
UI) leaves every table, file, report and model version as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb

from nova_assets.lib.database import table_exists

TABLE = "builds"


def code_fingerprint() -> str:
    """The sha256 of the code that turns a dump into tables and models (this package's lib/)."""
    digest = hashlib.sha256()
    lib = Path(__file__).parent
    for path in sorted(lib.rglob("*.py")):
        name = path.relative_to(lib).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(**inputs: Any) -> str:
    """The sha256 of what a build is made of: its inputs and settings (JSON-able) and the code."""
    made_of = {"inputs": inputs, "code": code_fingerprint()}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()


def built_as(con: duckdb.DuckDBPyConnection, step: str) -> str | None:
    """The fingerprint `step` last recorded, if any."""
    if not table_exists(con, TABLE):
        return None
    row = con.execute(f"SELECT fingerprint FROM {TABLE} WHERE step = ?", [step]).fetchone()
    return row[0] if row else None


def record(con: duckdb.DuckDBPyConnection, step: str, fingerprint: str) -> None:
    """Record that `step` built `fingerprint`: call it inside the transaction that publishes the
    build, or after its files are written, so a failed build is never recorded."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (step VARCHAR PRIMARY KEY, fingerprint VARCHAR "
        "NOT NULL, built_at TIMESTAMP WITH TIME ZONE NOT NULL)"
    )
    con.execute(
        f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?, now())",
        [step, fingerprint],
    )
