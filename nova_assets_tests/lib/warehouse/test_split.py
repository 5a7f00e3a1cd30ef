import os
import subprocess
import sys

import duckdb

from nova_assets.lib.warehouse.split import extend_test_split, misplaced_codes, split_of, split_sql

CODES = [f"{i:013d}" for i in range(0, 200_000, 37)] + ["3017620422003", "00000758", "abc-def"]


def test_sql_and_python_agree():
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT code, {split_sql('code')} FROM unnest(?::VARCHAR[]) AS t(code)", [CODES]
    ).fetchall()
    assert {code: side for code, side in rows} == {code: split_of(code) for code in CODES}


def test_about_a_fifth_is_test():
    share = sum(split_of(c) == "test" for c in CODES) / len(CODES)
    assert 0.18 < share < 0.22


def test_split_is_the_same_in_other_processes_and_hash_seeds():
    script = "import sys; from nova_assets.lib.warehouse.split import split_of; print(''.join(split_of(c)[1] for c in sys.argv[1:]))"
    here = "".join(split_of(c)[1] for c in CODES[:300])
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", script, *CODES[:300]],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        assert out == here


def test_existing_codes_never_change_side():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE products AS SELECT code, 'd1' AS dump_sha256 FROM unnest(?::VARCHAR[]) t(code)",
        [CODES[:100]],
    )
    first = extend_test_split(con)
    assert first["new_codes"] == 100
    con.execute(
        "UPDATE test_split SET split = CASE split WHEN 'test' THEN 'train' ELSE 'test' END WHERE code = ?",
        [CODES[0]],
    )
    assert misplaced_codes(con)[0] == 1
    con.execute(
        "CREATE OR REPLACE TABLE products AS SELECT code, 'd2' AS dump_sha256 FROM unnest(?::VARCHAR[]) t(code)",
        [CODES[50:150]],
    )
    second = extend_test_split(con)
    assert second["new_codes"] == 50 and second["codes"] == 150
    # A stored side is never rewritten, even a wrong one: the check reports it instead.
    assert misplaced_codes(con) == (1, [CODES[0]])
    assert (
        con.execute(
            "SELECT first_seen_dump FROM test_split WHERE code = ?", [CODES[120]]
        ).fetchone()[0]
        == "d2"
    )
