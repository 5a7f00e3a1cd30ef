import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from nova_assets.defs.resources import DumpSource, Warehouse
from nova_assets.lib.database import WarehouseLockedError
from nova_assets_tests.helpers import write_dump

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
print("locked", flush=True)
time.sleep(60)
"""


def test_locked_warehouse_fails_fast_with_a_clear_message(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        warehouse = Warehouse(path=str(path), temp_directory=str(tmp_path / "tmp"))
        for read_only in (False, True):
            start = time.monotonic()
            with (
                pytest.raises(WarehouseLockedError, match="locked by another process"),
                warehouse.connect(read_only=read_only),
            ):
                pass
            assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()


def test_connection_is_closed_when_the_block_raises(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "w.duckdb"), temp_directory=str(tmp_path / "tmp"))
    with pytest.raises(RuntimeError), warehouse.connect() as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        raise RuntimeError("boom")
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")
    with warehouse.connect(read_only=True) as reader:
        assert reader.execute("SELECT x FROM t").fetchone() == (1,)
        with pytest.raises(duckdb.Error, match="read-only"):
            reader.execute("CREATE TABLE u (x INTEGER)")


def test_read_only_on_a_missing_warehouse_says_what_to_do(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "none.duckdb"), temp_directory=str(tmp_path / "tmp"))
    with (
        pytest.raises(FileNotFoundError, match="materialize `products` first"),
        warehouse.connect(read_only=True),
    ):
        pass


def test_a_run_holding_the_lock_deletes_downloads_dead_runs_left(tmp_path, sample_lines):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / ".incoming-dead").write_bytes(b"1.35 GB, say")
    said: list[str] = []
    source = DumpSource(
        url=str(write_dump(tmp_path / "d.tsv", sample_lines[:20])),
        raw_dir=str(raw),
        run_lock=str(tmp_path / "run.lock"),
    )
    dump = source.fetch(log=said.append)
    assert sorted(p.name for p in raw.iterdir()) == [Path(dump.path).name]
    assert any(".incoming-dead" in m for m in said)
