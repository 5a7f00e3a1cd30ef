"""Open the DuckDB warehouse the one way the platform allows: closed on exit, fast failure on a lock.

DuckDB lets one process write or many read, never both; waiting on a lock only hides the
problem, so a locked warehouse is reported at once with what to do about it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb


class WarehouseLockedError(RuntimeError):
    """Another process holds the warehouse file."""


class DiskFullError(OSError):
    """The warehouse's device is full: the step failed, its transaction undone."""


MEMORY_LIMIT = "1536MB"
"""DuckDB's memory_limit for every step. DuckDB fills its memory up to the limit (caches,
staging, hash tables) before it spills to the temp directory, so the limit is what a step
holds at scale: ingesting 4.5 M rows (12.9 GB TSV) peaks at 3.1 GB with 4GB and at 2.1 GB with
this, in the same CPU time; at 2 M rows a limit of 600MB makes it three times slower."""


SCAN_MEMORY_LIMIT = "512MB"
"""DuckDB's memory_limit where a step reads the tables into Python (features, evaluation,
scoring): there the rows' arrays are the step's memory, and whatever DuckDB caches of the
table comes on top of them. Building the 2 M-row dump's matrices peaks at 1.17 GB with
MEMORY_LIMIT and at 1.03 GB with this."""


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    memory_limit: str = MEMORY_LIMIT,
    temp_directory: Path | None = None,
    threads: int | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the warehouse at `path`, closed however the block ends."""
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"warehouse {path} does not exist yet: materialize `products` first"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | int] = {
        "memory_limit": memory_limit,
        "threads": threads or default_threads(),
    }
    if temp_directory is not None and not read_only:
        temp_directory.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLockedError(
                f"warehouse {path} is locked by another process ({exc}). Close other DuckDB "
                "sessions on it (query the published copy instead) or wait for the running job."
            ) from exc
        raise
    try:
        yield con
    except duckdb.Error as exc:
        if "no space left" not in str(exc).lower():
            raise
        raise DiskFullError(
            f"no space left on the device of {path}: the step's writes were undone and the "
            f"tables are as they were; free space there (or move NOVA_DATA_DIR) and run again "
            f"(DuckDB: {exc})"
        ) from exc
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """One transaction: committed when the block ends, rolled back on any error so the last
    good tables stay. The block's own error is what is raised (after a failed write, such as a
    full disk, DuckDB may have ended the transaction and the rollback fails too)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def sql_literal(value: str | Path) -> str:
    """`value` as a SQL string literal, for the places DuckDB takes no parameter (file paths in
    `read_csv`, `COPY … TO`, view definitions)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_name(name: str) -> str:
    """`name` as a quoted SQL identifier (dump headers have names like `energy-kcal_100g`)."""
    return '"' + name.replace('"', '""') + '"'


def sql_list(values: list[str]) -> str:
    """Strings as a SQL `VARCHAR[]` literal (constant lists inside generated SQL)."""
    return "[" + ", ".join(sql_literal(v) for v in values) + "]::VARCHAR[]"


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()[0]
    )
