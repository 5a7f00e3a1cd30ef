import gzip
import hashlib
import os
import shutil
import time
from pathlib import Path

import pytest

from nova_assets.lib.ingest.dump import Dump, fetch_dump, remove_partial_downloads
from nova_assets.lib.ingest.dump_format import REQUIRED_COLUMNS, DumpError
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets.lib.progress import progress_reporter
from nova_assets_tests.helpers import write_dump
from nova_assets_tests.lib.http_server import FAST, files


def test_a_local_dump_is_linked_under_its_sha256_not_copied(tmp_path: Path):
    source = tmp_path / "downloads" / "dump.tsv.gz"
    source.parent.mkdir()
    source.write_bytes(SAMPLE_DUMP.read_bytes())
    said: list[str] = []
    dump = fetch_dump(str(source), tmp_path / "raw", log=said.append)
    expected = hashlib.sha256(SAMPLE_DUMP.read_bytes()).hexdigest()
    assert dump.sha256 == expected
    assert dump.gzipped
    assert Path(dump.path).name == f"off_products_{expected[:16]}.tsv.gz"
    assert os.path.samefile(dump.path, source)  # the same bytes on disk, not a second copy
    assert dump.bytes == source.stat().st_size
    assert dump.mtime_ns == source.stat().st_mtime_ns
    assert "linked" in said[-1]
    again = fetch_dump(str(source), tmp_path / "raw", log=said.append)
    assert again == dump and "already there" in said[-1]
    assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".incoming")]


def test_a_dump_on_another_filesystem_is_copied_whole(tmp_path: Path, sample_lines):
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the temp folder's")
    folder = other / f"nova-test-{os.getpid()}"
    folder.mkdir()
    try:
        source = write_dump(folder / "dump.tsv", sample_lines[:20])
        said: list[str] = []
        dump = fetch_dump(str(source), tmp_path / "raw", log=said.append)
        assert not os.path.samefile(dump.path, source) and "copied" in said[-1]
        assert Path(dump.path).read_bytes() == source.read_bytes()
        assert dump.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert not [p for p in (tmp_path / "raw").iterdir() if p.name.startswith(".incoming")]
    finally:
        shutil.rmtree(folder)


def test_a_dump_rewritten_in_place_after_its_fetch_is_refused(tmp_path: Path, sample_lines):
    source = write_dump(tmp_path / "dump.tsv", sample_lines[:20])
    dump = fetch_dump(str(source), tmp_path / "raw")
    dump.check_on_disk()
    with source.open("r+b") as file:  # as `curl -o` over the same file would: same inode
        file.write(b"x")
    with pytest.raises(DumpError, match="changed since it was fetched"):
        dump.check_on_disk()
    Path(dump.path).unlink()
    with pytest.raises(DumpError, match="does not exist"):
        dump.check_on_disk()


def test_a_name_whose_linked_bytes_were_rewritten_is_linked_again(tmp_path: Path, sample_lines):
    first = write_dump(tmp_path / "a" / "dump.tsv", sample_lines[:20])
    dump = fetch_dump(str(first), tmp_path / "raw")
    first.write_bytes(first.read_bytes() + first.read_bytes()[-200:])  # in place: same inode
    again = write_dump(tmp_path / "b" / "dump.tsv", sample_lines[:20])  # the first dump's bytes
    said: list[str] = []
    fetched = fetch_dump(str(again), tmp_path / "raw", log=said.append)
    assert fetched.path == dump.path and "linked" in said[-1]
    assert Path(fetched.path).read_bytes() == again.read_bytes()
    fetched.check_on_disk()


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


HEADER = ("\t".join(REQUIRED_COLUMNS) + "\n").encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x1f\x8b" + b"not really gzip at all" * 10, "not a valid gzip"),
    ],
    ids=["empty", "corrupt-gzip"],
)
def test_bad_files_are_refused_and_leave_nothing_behind(
    tmp_path: Path, content: bytes, message: str
):
    src = tmp_path / "bad.tsv.gz"
    src.write_bytes(content)
    with pytest.raises(DumpError, match=message):
        fetch_dump(str(src), tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_a_file_that_is_not_a_dump_is_never_copied_nor_quoted(tmp_path: Path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3t-hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    with pytest.raises(DumpError, match="lacks required column") as error:
        fetch_dump(str(secret), tmp_path / "raw")
    assert "s3cr3t" not in str(error.value) and "19000" not in str(error.value)
    assert files(tmp_path / "raw") == []


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon")])
def test_a_csv_file_with_another_separator_is_named_as_such(
    tmp_path: Path, sample_lines, delimiter: str, name: str
):
    """A spreadsheet's export of OFF's file reads as one tab-separated field per line: say it
    looks comma-separated, not that it lacks every column."""
    lines = [line.replace("\t", delimiter) for line in sample_lines[:20]]
    src = write_dump(tmp_path / "products.csv", lines)
    with pytest.raises(DumpError) as error:
        fetch_dump(str(src), tmp_path / "raw")
    message = str(error.value)
    assert f"looks {name}-separated" in message and "OFF's CSV export is tab-separated" in message
    assert "code, url, creator" in message and "1 tab-separated field" not in message
    assert files(tmp_path / "raw") == []


def test_a_private_dump_stays_private(tmp_path: Path, sample_lines):
    src = write_dump(tmp_path / "dump.tsv", sample_lines[:20])
    src.chmod(0o600)
    dump = fetch_dump(str(src), tmp_path / "raw")
    assert Path(dump.path).stat().st_mode & 0o077 == 0


def test_a_symlink_out_of_its_folder_is_refused(tmp_path: Path, sample_lines):
    outside = write_dump(tmp_path / "elsewhere" / "dump.tsv", sample_lines[:20])
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "escape.tsv").symlink_to(outside)
    with pytest.raises(DumpError, match="symbolic link out of its folder"):
        fetch_dump(str(incoming / "escape.tsv"), tmp_path / "raw")
    inside = write_dump(incoming / "real.tsv", sample_lines[:20])
    (incoming / "alias.tsv").symlink_to(inside)
    assert fetch_dump(str(incoming / "alias.tsv"), tmp_path / "raw").bytes == inside.stat().st_size


def test_partial_downloads_are_removed_and_dumps_kept(tmp_path: Path, sample_lines):
    raw = tmp_path / "raw"
    dump = fetch_dump(str(write_dump(tmp_path / "d.tsv", sample_lines[:20])), raw)
    partial = raw / ".incoming-abc123"
    partial.write_bytes(b"half a dump")
    assert remove_partial_downloads(raw) == [partial]
    assert files(raw) == [Path(dump.path).name]


def test_missing_path_names_the_path(tmp_path: Path):
    with pytest.raises(DumpError, match="no-such-dump.tsv"):
        fetch_dump(str(tmp_path / "no-such-dump.tsv"), tmp_path / "raw")


def test_progress_rises_to_the_total(tmp_path: Path, server, body):
    server.serve(body)
    calls: list[tuple[int, int | None, str]] = []
    fetch_dump(server.url, tmp_path / "raw", progress=lambda *call: calls.append(call), **FAST)
    done = [d for d, _, _ in calls]
    assert done == sorted(set(done)) and done[0] == 0 and len(done) >= 4
    assert {(t, a) for _, t, a in calls} == {(len(body), "downloaded")}
    assert calls[-1] == (len(body), len(body), "downloaded")


def test_progress_of_unknown_size_ends_at_the_size(tmp_path: Path, server, body):
    server.serve(body, send_length=False)
    calls: list[tuple[int, int | None, str]] = []
    fetch_dump(server.url, tmp_path / "raw", progress=lambda *call: calls.append(call), **FAST)
    assert calls[0] == (0, None, "downloaded")
    assert calls[-1] == (len(body), len(body), "downloaded")


def test_a_linked_local_dump_is_logged_as_linked_not_as_a_download(tmp_path: Path):
    """A small local file is hashed in a blink and linked: no "0 % (0 B of 270.5 KB)" line as
    if something were being downloaded, one line saying what happened."""
    lines: list[str] = []
    dump = fetch_dump(
        str(SAMPLE_DUMP),
        tmp_path / "raw",
        progress=progress_reporter(lines.append),
        log=lines.append,
    )
    assert lines == [
        f"dump {dump.sha256[:12]}: a local file (270.5 KB), linked in {tmp_path / 'raw'}; "
        "nothing downloaded"
    ]


def test_keeps_the_newest_dumps_and_the_one_in_use(tmp_path: Path, server, body):
    raw = tmp_path / "raw"
    raw.mkdir()
    now = time.time()
    old = []
    for i in range(5):
        path = raw / f"off_products_{i:016x}.tsv.gz"
        path.write_bytes(b"x")
        os.utime(path, (now - 1000 * (i + 1), now - 1000 * (i + 1)))
        old.append(path)
    stale = raw / ".incoming-dead"
    stale.write_bytes(b"half")
    os.utime(stale, (now - 2 * 86400, now - 2 * 86400))
    fresh = raw / ".incoming-running"
    fresh.write_bytes(b"half")
    (raw / "latest.json").write_text("{}")
    in_use = Dump(str(old[4]), "0" * 64, 1, "/elsewhere.tsv.gz", True)
    server.serve(body)
    dump = fetch_dump(server.url, raw, previous=in_use, keep=3, **FAST)
    assert files(raw) == sorted(
        [
            ".incoming-running",
            "latest.json",
            Path(dump.path).name,
            old[0].name,
            old[1].name,
            old[4].name,
        ]
    )


def test_dump_json_without_validators_still_reads():
    old = '{"path": "/r/d.tsv", "sha256": "ab", "bytes": 3, "source": "/d.tsv", "gzipped": false}'
    dump = Dump.from_json(old)
    assert dump.etag is None and dump.last_modified is None
    assert Dump.from_json(dump.to_json()) == dump
