"""The warehouse connection on a real full disk: a small tmpfs mounted for the test."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nova_assets.lib import database as wh
from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets_tests.helpers import get_field, set_field, write_dump


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 32 MB filesystem of its own, so filling it fills nothing else."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    stats = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - leave))
    return filler


def test_a_full_disk_says_no_space_left_and_keeps_the_tables(small_disk, tmp_path, sample_lines):
    header = sample_lines[0]
    path = small_disk / "warehouse.duckdb"
    first = fetch_dump(str(write_dump(tmp_path / "first.tsv", sample_lines)), tmp_path / "raw")
    with wh.connect(path) as con:
        ingest_products(con, first)
        before = con.execute(
            "SELECT count(*), hash(list(p ORDER BY code)) FROM products p"
        ).fetchone()
    bigger = [header] + [
        set_field(line, header, "code", f"{copy}{get_field(line, header, 'code')}")
        for copy in range(40)
        for line in sample_lines[1:]
    ]
    second = fetch_dump(str(write_dump(tmp_path / "second.tsv", bigger)), tmp_path / "raw")
    filler = fill(small_disk, leave=3_000_000)
    with (
        pytest.raises(wh.DiskFullError, match="no space left on the device of") as failure,
        wh.connect(path) as con,
    ):
        ingest_products(con, second)
    assert "rollback" not in str(failure.value).lower()
    filler.unlink()
    with wh.connect(path, read_only=True) as con:
        after = con.execute(
            "SELECT count(*), hash(list(p ORDER BY code)) FROM products p"
        ).fetchone()
        assert con.execute("SELECT count(*) FROM dumps").fetchone() == (1,)
    assert after == before and before[0] == 1000
