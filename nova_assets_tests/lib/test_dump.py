import gzip
import hashlib
import io
import os
import random
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nova_assets.lib.dump import Dump, fetch_dump, progress_reporter, remove_partial_downloads
from nova_assets.lib.dump_format import REQUIRED_COLUMNS, DumpError
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets_tests.conftest import write_dump
from nova_assets_tests.lib.http_server import DumpServer


def test_local_gzip_dump_is_copied_under_its_sha256(tmp_path: Path):
    dump = fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw")
    expected = hashlib.sha256(SAMPLE_DUMP.read_bytes()).hexdigest()
    assert dump.sha256 == expected
    assert dump.gzipped
    assert Path(dump.path).name == f"off_products_{expected[:16]}.tsv.gz"
    assert Path(dump.path).read_bytes() == SAMPLE_DUMP.read_bytes()
    assert dump.bytes == SAMPLE_DUMP.stat().st_size
    umask = os.umask(0)
    os.umask(umask)
    assert Path(dump.path).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
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


HEADER = ("\t".join(REQUIRED_COLUMNS) + "\n").encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (
            gzip.compress(
                HEADER + b"".join(b"%d\t%d\t\t\t\t4\n" % (i, i * 7) for i in range(5000))
            )[:300],
            "truncated gzip",
        ),
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


def test_a_file_that_is_not_a_dump_is_never_copied_nor_quoted(tmp_path: Path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$s3cr3t-hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
    secret.chmod(0o600)
    with pytest.raises(DumpError, match="lacks required column") as error:
        fetch_dump(str(secret), tmp_path / "raw")
    assert "s3cr3t" not in str(error.value) and "19000" not in str(error.value)
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


# --- downloads over a bad network: a real server on 127.0.0.1 that misbehaves on demand ---

FAST = {"retry_delay": 0.01, "timeout": 5.0}


@pytest.fixture
def server() -> Iterator[DumpServer]:
    srv = DumpServer()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def body() -> bytes:
    """3.5 MB of incompressible bytes: several 1 MB reads, so progress and cuts fall mid-body."""
    return random.Random(7).randbytes(3 * (1 << 20) + 512 * 1024)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files(raw: Path) -> list[str]:
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


def test_http_success_is_hashed_and_keeps_the_validators(tmp_path: Path, server, body):
    server.serve(body)
    dump = fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert dump.sha256 == sha(body) and dump.bytes == len(body) and not dump.gzipped
    assert Path(dump.path).read_bytes() == body
    assert (dump.etag, dump.last_modified) == ('"v1"', "Wed, 01 Jan 2025 00:00:00 GMT")
    assert files(tmp_path / "raw") == [f"off_products_{sha(body)[:16]}.tsv"]
    assert len(server.plan.requests) == 1


def test_dropped_connection_resumes_with_a_range_request(tmp_path: Path, server, body):
    plan = server.serve(body, drop_first=2)
    messages: list[str] = []
    dump = fetch_dump(server.url, tmp_path / "raw", log=messages.append, **FAST)
    assert Path(dump.path).read_bytes() == body and dump.sha256 == sha(body)
    assert "Range" not in plan.requests[0]
    assert plan.requests[1]["Range"] == f"bytes={len(body) // 2}-"
    assert plan.requests[1]["If-Range"] == '"v1"'
    assert plan.requests[2]["Range"].startswith("bytes=")
    assert len(plan.requests) == 3
    assert any("resuming at byte" in m for m in messages)
    assert files(tmp_path / "raw") == [Path(dump.path).name]


def test_timeout_mid_body_resumes(tmp_path: Path, server, body):
    plan = server.serve(body, stall_first=1, stall_seconds=1.0)
    dump = fetch_dump(server.url, tmp_path / "raw", retry_delay=0.01, timeout=0.2)
    assert dump.sha256 == sha(body) and len(plan.requests) == 2
    assert re.fullmatch(r"bytes=[1-9]\d*-", plan.requests[1]["Range"])


def test_server_ignoring_range_restarts_from_zero(tmp_path: Path, server, body):
    plan = server.serve(body, drop_first=1, honour_range=False)
    dump = fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert Path(dump.path).read_bytes() == body and dump.bytes == len(body)
    assert "Range" in plan.requests[1] and len(plan.requests) == 2


def test_5xx_is_retried_then_succeeds(tmp_path: Path, server, body):
    plan = server.serve(body, errors=[500, 503])
    dump = fetch_dump(server.url, tmp_path / "raw", attempts=3, **FAST)
    assert dump.sha256 == sha(body) and len(plan.requests) == 3


def test_5xx_forever_gives_up_after_the_attempts_and_leaves_nothing(tmp_path: Path, server, body):
    plan = server.serve(body, errors=[500] * 100)
    with pytest.raises(DumpError, match=r"after 4 attempts.*HTTP 500"):
        fetch_dump(server.url, tmp_path / "raw", attempts=4, **FAST)
    assert len(plan.requests) == 4
    assert files(tmp_path / "raw") == []


def test_connection_refused_is_retried_then_an_error(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/dump.tsv"
    with pytest.raises(DumpError, match=f"{url} after 2 attempts"):
        fetch_dump(url, tmp_path / "raw", attempts=2, **FAST)
    assert files(tmp_path / "raw") == []


def test_a_host_that_does_not_resolve_fails_at_once(tmp_path: Path):
    started = time.monotonic()
    with pytest.raises(DumpError, match="does not resolve"):
        fetch_dump("http://nova-assets-test.invalid/dump.tsv", tmp_path / "raw", attempts=5)
    assert time.monotonic() - started < 5
    assert files(tmp_path / "raw") == []


def test_a_redirect_to_ftp_is_refused(tmp_path: Path, server, body):
    server.serve(body, redirect_to="ftp://127.0.0.1/dump.tsv")
    with pytest.raises(DumpError, match=r"redirects to ftp://"):
        fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert files(tmp_path / "raw") == []


def test_a_redirect_to_http_is_followed(tmp_path: Path, server, body):
    other = DumpServer()
    try:
        other.serve(body)
        server.serve(b"", redirect_to=other.url)
        dump = fetch_dump(server.url, tmp_path / "raw", **FAST)
        assert dump.sha256 == sha(body)
    finally:
        other.close()


def test_a_trickling_server_meets_the_deadline(tmp_path: Path, server, body):
    server.serve(body, trickle_seconds=0.05)
    started = time.monotonic()
    with pytest.raises(DumpError, match="passed its deadline"):
        fetch_dump(server.url, tmp_path / "raw", retry_delay=0.01, timeout=1.0, deadline=1.0)
    assert time.monotonic() - started < 5
    assert files(tmp_path / "raw") == []


def test_credentials_and_query_never_reach_the_dump_record_or_messages(
    tmp_path: Path, server, body
):
    server.serve(body, drop_first=1)
    secret_url = server.url.replace("http://", "http://user:hunter2@") + "?token=s3cr3t"
    messages: list[str] = []
    dump = fetch_dump(secret_url, tmp_path / "raw", log=messages.append, **FAST)
    assert dump.source == server.url
    assert messages and not any("hunter2" in m or "s3cr3t" in m for m in messages)
    assert "hunter2" not in dump.to_json() and "s3cr3t" not in dump.to_json()
    server.serve(body, errors=[404])
    with pytest.raises(DumpError) as error:
        fetch_dump(secret_url, tmp_path / "raw2", **FAST)
    assert "s3cr3t" not in str(error.value) and "hunter2" not in str(error.value)


def test_404_is_not_retried(tmp_path: Path, server, body):
    plan = server.serve(body, errors=[404])
    with pytest.raises(DumpError, match=rf"{re.escape(server.url)} answered HTTP 404"):
        fetch_dump(server.url, tmp_path / "raw", attempts=5, **FAST)
    assert len(plan.requests) == 1
    assert files(tmp_path / "raw") == []


@pytest.mark.parametrize(
    ("page", "content_type"),
    [
        (b"<html><body>Service unavailable</body></html>", "text/html; charset=utf-8"),
        (b"\n  <!DOCTYPE html>\n<html><body>Login</body></html>", "application/octet-stream"),
        (b"<HTML><BODY>error</BODY></HTML>", "text/plain"),
    ],
    ids=["content-type", "doctype-after-whitespace", "html-tag"],
)
def test_html_page_served_with_200_is_refused(
    tmp_path: Path, server, page: bytes, content_type: str
):
    plan = server.serve(page, content_type=content_type)
    with pytest.raises(DumpError, match="HTML page"):
        fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert len(plan.requests) == 1
    assert files(tmp_path / "raw") == []


def test_truncated_body_is_refused_after_retries_and_leaves_nothing(tmp_path: Path, server, body):
    plan = server.serve(body, truncate_at=len(body) // 3)
    with pytest.raises(DumpError, match=rf"sent {len(body) // 3:,} of its {len(body):,} announced"):
        fetch_dump(server.url, tmp_path / "raw", attempts=3, **FAST)
    assert len(plan.requests) == 3
    assert all(r["Range"] == f"bytes={len(body) // 3}-" for r in plan.requests[1:])
    assert files(tmp_path / "raw") == []


def test_304_returns_the_previous_dump_and_writes_nothing(tmp_path: Path, server, body):
    plan = server.serve(body)
    raw = tmp_path / "raw"
    first = fetch_dump(server.url, raw, **FAST)
    before = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    again = fetch_dump(server.url, raw, previous=first, **FAST)
    assert again is first
    assert plan.requests[1]["If-None-Match"] == '"v1"'
    assert plan.requests[1]["If-Modified-Since"] == first.last_modified
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == before


def test_304_on_last_modified_alone(tmp_path: Path, server, body):
    plan = server.serve(body, etag=None)
    first = fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert first.etag is None and first.last_modified
    assert fetch_dump(server.url, tmp_path / "raw", previous=first, **FAST) is first
    assert "If-None-Match" not in plan.requests[1]


def test_no_conditional_request_for_a_dump_from_elsewhere(tmp_path: Path, server, body):
    plan = server.serve(body)
    first = fetch_dump(server.url, tmp_path / "raw", **FAST)
    other = Dump(first.path, first.sha256, first.bytes, "http://elsewhere/d.tsv", False, '"v1"')
    dump = fetch_dump(server.url, tmp_path / "raw", previous=other, **FAST)
    assert dump == first and dump is not other
    assert "If-None-Match" not in plan.requests[1]


def test_progress_rises_to_the_total(tmp_path: Path, server, body):
    server.serve(body)
    calls: list[tuple[int, int | None]] = []
    fetch_dump(server.url, tmp_path / "raw", progress=lambda d, t: calls.append((d, t)), **FAST)
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[0] == 0 and len(done) >= 4
    assert {t for _, t in calls} == {len(body)}
    assert calls[-1] == (len(body), len(body))


def test_progress_of_unknown_size_and_local_copy_ends_at_the_size(tmp_path: Path, server, body):
    server.serve(body, send_length=False)
    calls: list[tuple[int, int | None]] = []
    fetch_dump(server.url, tmp_path / "raw", progress=lambda d, t: calls.append((d, t)), **FAST)
    assert calls[0] == (0, None) and calls[-1] == (len(body), len(body))
    calls.clear()
    fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw", progress=lambda d, t: calls.append((d, t)))
    size = SAMPLE_DUMP.stat().st_size
    assert calls[0] == (0, size) and calls[-1] == (size, size)


def test_progress_reporter_logs_every_5_percent_and_draws_a_bar():
    lines: list[str] = []
    bar = io.StringIO()
    report = progress_reporter(lines.append, every_percent=5, bar=bar)
    for done in range(0, 1001, 10):
        report(done, 1000)
    assert [int(line.split()[1]) for line in lines] == list(range(0, 101, 5))
    assert bar.getvalue().endswith("\n") and "100 %" in bar.getvalue()
    assert bar.getvalue().count("\n") == 1


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


def test_gzip_is_checked_across_a_resume(tmp_path: Path, server):
    data = SAMPLE_DUMP.read_bytes()
    plan = server.serve(data, drop_first=1)
    dump = fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert dump.gzipped and Path(dump.path).read_bytes() == data
    assert "Range" in plan.requests[1]

    truncated = data[: len(data) * 3 // 4]
    plan = server.serve(truncated, drop_first=1, etag='"v2"')
    with pytest.raises(DumpError, match="truncated gzip"):
        fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert "Range" in plan.requests[1]
    assert files(tmp_path / "raw") == [Path(dump.path).name]


def test_gzip_cut_of_unknown_size_is_resumed(tmp_path: Path, server):
    data = SAMPLE_DUMP.read_bytes()
    plan = server.serve(data, drop_first=1, send_length=False)
    dump = fetch_dump(server.url, tmp_path / "raw", **FAST)
    assert dump.sha256 == sha(data) and "Range" in plan.requests[1]


def test_dump_json_without_validators_still_reads():
    old = '{"path": "/r/d.tsv", "sha256": "ab", "bytes": 3, "source": "/d.tsv", "gzipped": false}'
    dump = Dump.from_json(old)
    assert dump.etag is None and dump.last_modified is None
    assert Dump.from_json(dump.to_json()) == dump
