"""The fixed train/test split: a pure function of `code`, so a product never changes side.

The bucket is the first 32 bits of the md5 of the code, modulo 100: the same in DuckDB and
Python, on every machine and Python version (unlike Python's salted `hash()`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import duckdb
import numpy as np

TEST_PERCENT = 20


def split_of(code: str, test_percent: int = TEST_PERCENT) -> str:
    """'test' or 'train' for one code; the reference for `split_sql`."""
    bucket = int(hashlib.md5(code.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if bucket < test_percent else "train"


def validation_mask(codes: Sequence[str], percent: int = 20) -> np.ndarray:
    """Which training codes form the validation set used to choose a model.

    A salted md5 bucket, so the carve-out is as stable as the test split and independent of it;
    test codes never reach this function.
    """
    buckets = np.fromiter(
        (int(hashlib.md5(f"validation:{c}".encode()).hexdigest()[:8], 16) % 100 for c in codes),
        dtype=np.int64,
        count=len(codes),
    )
    return buckets < percent


def split_sql(column: str = "code", test_percent: int = TEST_PERCENT) -> str:
    """The same rule as `split_of`, as a DuckDB expression over `column`."""
    bucket = f"(CAST(('0x' || left(md5({column}), 8)) AS UBIGINT) % 100)"
    return f"CASE WHEN {bucket} < {int(test_percent)} THEN 'test' ELSE 'train' END"


TEST_SPLIT_DDL = """
CREATE TABLE IF NOT EXISTS test_split (
    code VARCHAR PRIMARY KEY,
    split VARCHAR NOT NULL CHECK (split IN ('train', 'test')),
    first_seen_dump VARCHAR
)
"""


def extend_test_split(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Give every new product code its side; codes already placed are never touched."""
    con.execute(TEST_SPLIT_DDL)
    before = con.execute("SELECT count(*) FROM test_split").fetchone()[0]
    con.execute(
        f"""
        INSERT INTO test_split
        SELECT p.code, {split_sql("p.code")}, p.dump_sha256
        FROM products p ANTI JOIN test_split s ON s.code = p.code
        """
    )
    total, test = con.execute(
        "SELECT count(*), count(*) FILTER (split = 'test') FROM test_split"
    ).fetchone()
    return {"codes": total, "new_codes": total - before, "test_codes": test}


def misplaced_codes(con: duckdb.DuckDBPyConnection, limit: int = 5) -> tuple[int, list[str]]:
    """Codes whose stored side differs from the rule: any means the split was tampered with."""
    where = f"split <> {split_sql('code')}"
    count = con.execute(f"SELECT count(*) FROM test_split WHERE {where}").fetchone()[0]
    sample = [
        r[0]
        for r in con.execute(f"SELECT code FROM test_split WHERE {where} LIMIT {limit}").fetchall()
    ]
    return count, sample
