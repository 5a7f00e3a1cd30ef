"""The published read-only copy: real DuckDB files, real reader processes, no mocks."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.publishing.read_only_copy import catalog_path, publish, read_manifest

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
query = "SELECT count(*), sum(x) FROM a"
print(con.execute(query).fetchone(), flush=True)
for line in sys.stdin:
    print(con.execute(query).fetchone(), flush=True)
"""


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE TABLE a AS SELECT range AS x FROM range(10)")
    con.execute("CREATE TABLE b AS SELECT 'b' || range AS y, [range, 1] AS tags FROM range(3)")
    try:
        yield con
    finally:
        con.close()


def served(serving: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(catalog_path(serving)), read_only=True) as reader:
        return reader.execute(query).fetchall()


def parquet_files(serving: Path) -> set[str]:
    return {str(p) for p in (serving / "tables").glob("*.parquet")}


def test_published_tables_read_back_the_same_rows(warehouse, tmp_path):
    serving = tmp_path / "serving"
    result = publish(warehouse, ["a", "b"], serving)
    assert {t: r["rows"] for t, r in result.items()} == {"a": 10, "b": 3}
    for table in ("a", "b"):
        expected = warehouse.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        assert served(serving, f"SELECT * FROM {table} ORDER BY ALL") == expected
    published = served(serving, 'SELECT "table", rows, published_at FROM published ORDER BY 1')
    assert [(t, n) for t, n, _ in published] == [("a", 10), ("b", 3)]
    assert all(at is not None for _, _, at in published)
    manifest = json.loads((serving / "manifest.json").read_text())
    assert set(manifest["tables"]) == {"a", "b"}


def test_republish_is_seen_by_a_new_connection_and_keeps_other_tables(warehouse, tmp_path):
    serving = tmp_path / "serving"
    publish(warehouse, ["a", "b"], serving)
    warehouse.execute("INSERT INTO a VALUES (100)")
    publish(warehouse, ["a"], serving)
    assert served(serving, "SELECT count(*), max(x) FROM a") == [(11, 100)]
    assert served(serving, "SELECT count(*) FROM b") == [(3,)]
    assert dict(served(serving, 'SELECT "table", rows FROM published')) == {"a": 11, "b": 3}


def test_an_open_reader_keeps_its_snapshot_and_does_not_block_publishing(warehouse, tmp_path):
    serving = tmp_path / "serving"
    publish(warehouse, ["a"], serving)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(catalog_path(serving))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "(10, 45)"
        for value in (100, 200):
            warehouse.execute("INSERT INTO a VALUES (?)", [value])
            start = time.monotonic()
            publish(warehouse, ["a"], serving)
            assert time.monotonic() - start < 5
        reader.stdin.write("again\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "(10, 45)"
        assert served(serving, "SELECT count(*), sum(x) FROM a") == [(12, 345)]
    finally:
        reader.kill()
        reader.wait()


def test_files_are_deleted_only_when_unreferenced_and_old(warehouse, tmp_path):
    serving = tmp_path / "serving"
    first = publish(warehouse, ["a", "b"], serving)["a"]["path"]
    second = publish(warehouse, ["a"], serving)["a"]["path"]
    old = time.time() - 3600
    for path in parquet_files(serving):
        os.utime(path, (old, old))
    orphan = serving / "tables" / "a-00000000000000000001-000000.parquet"
    orphan.write_bytes(b"left by a crashed publish")
    os.utime(orphan, (old, old))

    third = publish(warehouse, ["a"], serving)["a"]["path"]
    b_path = read_manifest(serving)["tables"]["b"]["path"]
    # `first` was retired a moment ago: a session on that catalog may still read it.
    assert parquet_files(serving) == {first, second, third, b_path}

    fourth = publish(warehouse, ["a"], serving, keep_seconds=0)["a"]["path"]
    # Current (fourth, b) and previous (third) stay; everything else unreferenced goes.
    assert parquet_files(serving) == {third, fourth, b_path}
    assert served(serving, "SELECT count(*) FROM b") == [(3,)]


def test_a_failing_publish_leaves_the_previous_copy_intact(warehouse, tmp_path):
    serving = tmp_path / "serving"
    publish(warehouse, ["a"], serving)
    manifest = (serving / "manifest.json").read_bytes()
    catalog = catalog_path(serving).read_bytes()
    files = parquet_files(serving)
    warehouse.execute("INSERT INTO a VALUES (100)")
    with pytest.raises(duckdb.CatalogException, match="missing"):
        publish(warehouse, ["a", "missing"], serving)
    with pytest.raises(ValueError, match="plain table name"):
        publish(warehouse, ["a; DROP TABLE a"], serving)
    assert (serving / "manifest.json").read_bytes() == manifest
    assert catalog_path(serving).read_bytes() == catalog
    assert parquet_files(serving) == files
    assert sorted(p.name for p in serving.iterdir()) == ["manifest.json", "nova.duckdb", "tables"]
    assert served(serving, "SELECT count(*) FROM a") == [(10,)]
