"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves on demand."""

import re
import socket
import time
from pathlib import Path

import pytest

from nova_assets.lib.ingest.dump import Dump, fetch_dump
from nova_assets.lib.ingest.dump_format import DumpError
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets_tests.lib.http_server import FAST, DumpServer, files, sha


def test_http_download_from_a_local_server(tmp_path: Path, http_root):
    url, root = http_root
    (root / "products.csv.gz").write_bytes(SAMPLE_DUMP.read_bytes())
    dump = fetch_dump(f"{url}/products.csv.gz", tmp_path / "raw")
    assert dump.gzipped and dump.sha256 == sha(SAMPLE_DUMP.read_bytes())
    assert dump.source == f"{url}/products.csv.gz"


def test_http_404_is_an_error_and_writes_nothing(tmp_path: Path, http_root):
    url, _ = http_root
    with pytest.raises(Exception, match="404"):
        fetch_dump(f"{url}/missing.csv", tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


# --- downloads over a bad network: a real server on 127.0.0.1 that misbehaves on demand ---


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
