"""What each step built last, by fingerprint: the same inputs, settings and code build the same
tables, so a step that finds its fingerprint recorded writes nothing. Running the graph again on
an unchanged dump (a second `dg launch`, "Materialize all", the README's first command then the
UI) leaves every table, file, report and model version as it was.

Every step skips the same way, through `Build`:

    build = Build.of("test_split", warehouse.built_as, dump_sha256=dump.sha256)
    if build.done:
        return unchanged(...)
    with warehouse.connect(publish=["test_split"]) as con:
        ...  # build
        build.record(con)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Build:
    """One step's build: its fingerprint, and whether it is done (recorded, files there)."""

    step: str
    fingerprint: str
    done: bool

    @classmethod
    def of(
        cls,
        step: str,
        recorded: Callable[[str], str | None],
        *,
        outputs: Iterable[Path] = (),
        **inputs: Any,
    ) -> Build:
        """`step`'s build of `inputs` (JSON-able, with the code): done when `recorded(step)`, the
        fingerprint the step last recorded, is this one and every file of `outputs` exists."""
        made_of = fingerprint(**inputs)
        done = recorded(step) == made_of and all(Path(p).exists() for p in outputs)
        return cls(step, made_of, done)

    def record(self, con: duckdb.DuckDBPyConnection) -> None:
        """Record this build as done (see `record`)."""
        record(con, self.step, self.fingerprint)
