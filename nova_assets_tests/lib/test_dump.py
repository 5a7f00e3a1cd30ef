import gzip
import hashlib
from pathlib import Path

import pytest

from nova_assets.lib.dump import Dump, DumpError, fetch_dump
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets_tests.conftest import write_dump


def test_local_gzip_dump_is_copied_under_its_sha256(tmp_path: Path):
    dump = fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw")
    expected = hashlib.sha256(SAMPLE_DUMP.read_bytes()).hexdigest()
    assert dump.sha256 == expected
    assert dump.gzipped
    assert Path(dump.path).name == f"off_products_{expected[:16]}.tsv.gz"
    assert Path(dump.path).read_bytes() == SAMPLE_DUMP.read_bytes()
    assert dump.bytes == SAMPLE_DUMP.stat().st_size
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".incoming")]


def test_plain_dump_keeps_a_tsv_name_and_same_dump_twice_is_one_file(tmp_path: Path, sample_lines):
    src = write_dump(tmp_path / "dump.tsv", sample_lines[:20])
    first = fetch_dump(str(src), tmp_path / "raw")
    second = fetch_dump(str(src), tmp_path / "raw")
    assert not first.gzipped and first.path.endswith(".tsv")
    assert first == second
    assert len(list((tmp_path / "raw").iterdir())) == 1


def test_dump_round_trips_through_json(tmp_path: Path):
    dump = fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw")
    assert Dump.from_json(dump.to_json()) == dump


def test_multi_member_gzip_is_accepted(tmp_path: Path, sample_lines):
    body = ("\n".join(sample_lines[:10]) + "\n").encode()
    src = tmp_path / "multi.tsv.gz"
    src.write_bytes(gzip.compress(body[:500]) + gzip.compress(body[500:]))
    assert fetch_dump(str(src), tmp_path / "raw").gzipped


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (gzip.compress(b"code\tnova_group\n" * 5000)[:200], "truncated gzip"),
        (b"\x1f\x8b" + b"not really gzip at all" * 10, "not a valid gzip"),
    ],
    ids=["empty", "truncated-gzip", "corrupt-gzip"],
)
def test_bad_files_are_refused_and_leave_nothing_behind(
    tmp_path: Path, content: bytes, message: str
):
    src = tmp_path / "bad.tsv.gz"
    src.write_bytes(content)
    with pytest.raises(DumpError, match=message):
        fetch_dump(str(src), tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_missing_path_names_the_path(tmp_path: Path):
    with pytest.raises(DumpError, match="no-such-dump.tsv"):
        fetch_dump(str(tmp_path / "no-such-dump.tsv"), tmp_path / "raw")


def test_http_download_from_a_local_server(tmp_path: Path, http_root):
    url, root = http_root
    (root / "products.csv.gz").write_bytes(SAMPLE_DUMP.read_bytes())
    dump = fetch_dump(f"{url}/products.csv.gz", tmp_path / "raw")
    assert dump.gzipped and dump.sha256 == hashlib.sha256(SAMPLE_DUMP.read_bytes()).hexdigest()
    assert dump.source == f"{url}/products.csv.gz"


def test_http_404_is_an_error_and_writes_nothing(tmp_path: Path, http_root):
    url, _ = http_root
    with pytest.raises(Exception, match="404"):
        fetch_dump(f"{url}/missing.csv", tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []
