"""new_dump_sensor and refresh_schedule, evaluated directly on real files and a real HTTP server."""

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from nova_assets.definitions import defs
from nova_assets.defs.ingest.sensors import new_dump_sensor, refresh_schedule
from nova_assets.lib.ingest.dump import Dump
from nova_assets.lib.ingest.dump_watch import fingerprint
from nova_assets.lib.paths import data_paths
from nova_assets_tests.lib.http_server import DumpServer

OLD = time.time() - 3600


def drop(directory: Path, name: str, content: bytes, mtime: float | None = OLD) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def tick(cursor: str | None = None):
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=defs().resources
        ) as context,
    ):
        result = new_dump_sensor(context)
        if isinstance(result, dg.SkipReason):
            return [], context.cursor, result.skip_message
        return result.run_requests, result.cursor, None


def sources(requests) -> list[str]:
    return [r.run_config["ops"]["off_dump"]["config"]["source"] for r in requests]


@pytest.fixture
def incoming(data_dir, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("NOVA_DUMP_URL", str(tmp_path / "no-default-dump.tsv"))
    return data_paths().incoming


def test_the_first_tick_makes_the_incoming_folder(incoming):
    assert not incoming.exists()
    requests, _, skip = tick()
    assert requests == [] and skip.startswith("no new dump") and incoming.is_dir()


def test_a_symlink_out_of_the_incoming_folder_is_ignored(incoming, tmp_path):
    secret = drop(tmp_path / "private", "secret.tsv", b"code\n1\n")
    incoming.mkdir(parents=True, exist_ok=True)
    (incoming / "dump.tsv").symlink_to(secret)
    requests, _, skip = tick()
    assert requests == [] and skip.startswith("no new dump")


def test_first_tick_launches_only_the_newest_dump(incoming):
    drop(incoming, "a.tsv", b"code\n1\n", OLD - 20)
    drop(incoming, "b.tsv.gz", b"code\n2\n", OLD - 10)
    newest = drop(incoming, "c.tsv", b"code\n3\n", OLD)
    requests, cursor, _ = tick()
    assert sources(requests) == [str(newest)]
    assert requests[0].run_key == fingerprint(newest)
    assert requests[0].asset_selection is None or requests[0].asset_selection == [
        dg.AssetKey("off_dump")
    ]
    assert len(json.loads(cursor)["seen"]) == 3
    requests, cursor, skip = tick(cursor)
    assert requests == [] and skip.startswith("no new dump")


def test_a_new_dump_is_launched_once_and_a_copy_of_it_never(incoming):
    drop(incoming, "first.tsv", b"code\n1\n")
    _, cursor, _ = tick()
    new = drop(incoming, "second.tsv", b"code\n2\n")
    requests, cursor, _ = tick(cursor)
    assert sources(requests) == [str(new)]
    drop(incoming, "second-again.tsv", b"code\n2\n")
    requests, cursor, skip = tick(cursor)
    assert requests == [] and "no new dump" in skip


def test_a_parquet_export_dropped_is_launched_like_a_tsv(incoming):
    drop(incoming, "first.tsv", b"code\n1\n")
    _, cursor, _ = tick()
    export = drop(incoming, "food.parquet", b"PAR1 stand-in: off_dump checks the content")
    requests, _, _ = tick(cursor)
    assert sources(requests) == [str(export)]


def test_a_jsonl_export_dropped_is_launched_like_a_tsv(incoming):
    drop(incoming, "first.tsv", b"code\n1\n")
    _, cursor, _ = tick()
    export = drop(incoming, "products.jsonl", b'{"code": "1"}\n')
    requests, _, _ = tick(cursor)
    assert sources(requests) == [str(export)]


def test_a_file_still_being_written_waits_until_its_size_settles(incoming):
    _, cursor, _ = tick()
    growing = drop(incoming, "growing.tsv", b"code\n1\n", mtime=None)
    requests, cursor, skip = tick(cursor)
    assert requests == [] and "not yet stable" in skip
    with growing.open("ab") as f:
        f.write(b"2\n")
    requests, cursor, skip = tick(cursor)
    assert requests == [] and "not yet stable" in skip
    requests, cursor, _ = tick(cursor)
    assert sources(requests) == [str(growing)]


def test_hidden_and_partial_files_are_ignored(incoming):
    drop(incoming, ".hidden.tsv", b"code\n1\n")
    drop(incoming, "download.tsv.part", b"code\n1\n")
    drop(incoming, "notes.txt", b"hello")
    requests, _, skip = tick()
    assert requests == [] and skip.startswith("no new dump")


def test_cursor_round_trips_as_json(incoming):
    drop(incoming, "a.tsv", b"code\n1\n")
    _, cursor, _ = tick()
    state = json.loads(cursor)
    assert set(state) == {"seen", "sizes", "url"}
    assert json.loads(tick(cursor)[1]) == state


@pytest.fixture
def server():
    server = DumpServer()
    yield server
    server.close()


@pytest.fixture
def url_source(data_dir, monkeypatch, server):
    monkeypatch.setenv("NOVA_DUMP_URL", server.url)
    monkeypatch.setenv("NOVA_URL_CHECK_SECONDS", "0")
    return server


def test_url_with_a_new_etag_is_launched_and_the_same_one_is_not(url_source):
    url_source.serve(b"code\n1\n", etag='"v1"')
    requests, cursor, _ = tick()
    # The run fetches NOVA_DUMP_URL itself: its config never carries the URL (or its token).
    assert sources(requests) == [""] and requests[0].run_key == 'etag:"v1"'
    requests, cursor, skip = tick(cursor)
    assert requests == [] and "no new dump" in skip
    url_source.serve(b"code\n2\n", etag='"v2"')
    requests, cursor, _ = tick(cursor)
    assert [r.run_key for r in requests] == ['etag:"v2"']


def test_url_errors_are_skipped_and_retried_next_tick(url_source):
    url_source.serve(b"code\n1\n", etag='"v1"')
    _, cursor, _ = tick()
    url_source.serve(b"code\n1\n", etag='"v2"', errors=[500])
    requests, after_error, skip = tick(cursor)
    assert requests == [] and "URL check failed" in skip and "500" in skip
    assert json.loads(after_error)["url"] == json.loads(cursor)["url"]
    requests, _, _ = tick(after_error)
    assert [r.run_key for r in requests] == ['etag:"v2"']


def test_a_silent_server_times_out_without_crashing(data_dir, monkeypatch):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    monkeypatch.setenv("NOVA_DUMP_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/dump.csv")
    monkeypatch.setenv("NOVA_URL_CHECK_SECONDS", "0")
    monkeypatch.setattr("nova_assets.defs.ingest.sensors.URL_TIMEOUT_SECONDS", 0.5)
    try:
        start = time.monotonic()
        requests, _, skip = tick()
        assert requests == [] and "URL check failed" in skip
        assert time.monotonic() - start < 5
    finally:
        listener.close()


def evaluate_schedule():
    with (
        dg.instance_for_test() as instance,
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=None, resources=defs().resources
        ) as context,
    ):
        return refresh_schedule(context)


def hold(url: str, etag: str) -> None:
    pointer = data_paths().latest_dump
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(Dump("/x.tsv", "ab" * 32, 7, url, False, etag=etag).to_json())


def test_schedule_skips_an_unchanged_url_and_requests_a_changed_one(url_source):
    url_source.serve(b"code\n1\n", etag='"v1"')
    hold(url_source.url, '"v1"')
    result = evaluate_schedule()
    assert isinstance(result, dg.SkipReason) and "unchanged" in result.skip_message
    hold(url_source.url, '"v0"')
    result = evaluate_schedule()
    assert isinstance(result, dg.RunRequest) and result.run_key == 'refresh-etag:"v1"'


def test_schedule_skips_when_the_url_is_unreachable(url_source):
    url_source.serve(b"", errors=[503] * 5)
    result = evaluate_schedule()
    assert isinstance(result, dg.SkipReason) and "could not reach" in result.skip_message
