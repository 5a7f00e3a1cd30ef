"""The published tables and dumps in a real S3-compatible server (moto's, on 127.0.0.1): what a
reader on another machine sees while publishes go on, and what a broken store says."""

import json
import threading
import uuid
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.paths import data_paths
from nova_assets.lib.publishing import read_only_copy as serving
from nova_assets.lib.publishing.object_store import ObjectStore, ObjectStoreError
from nova_assets.published import connect, main


@pytest.fixture
def store(s3_endpoint) -> ObjectStore:
    store = ObjectStore(f"s3://nova-{uuid.uuid4().hex[:8]}/platform", s3_endpoint)
    store.create_bucket()
    return store


def publish(con, tables, serving_dir, store, keep_seconds=600.0):
    serving.publish(con, tables, serving_dir)
    return store.publish(serving.read_manifest(serving_dir)["tables"], keep_seconds)


def test_a_reader_sees_one_publish_whole_and_keeps_it_while_the_next_lands(store, tmp_path):
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE products AS SELECT range AS code, range % 4 + 1 AS nova FROM range(1000)"
    )
    con.execute("CREATE TABLE dumps AS SELECT 'abc' AS sha256")
    first = publish(con, ["products", "dumps"], tmp_path / "serving", store)
    assert set(first["tables"]) == {"products", "dumps"}

    reader = connect(store.url, store.endpoint_url)
    assert reader.execute("SELECT count(*), sum(nova) FROM products").fetchone() == (1000, 2500)
    assert reader.execute('SELECT "table", rows FROM published ORDER BY 1').fetchall() == [
        ("dumps", 1),
        ("products", 1000),
    ]

    con.execute("DELETE FROM products WHERE code >= 10")
    second = publish(con, ["products"], tmp_path / "serving", store)
    assert second["tables"]["dumps"] == first["tables"]["dumps"]  # not uploaded again
    assert second["tables"]["products"]["key"] != first["tables"]["products"]["key"]
    assert list(second["retired"]) == [first["tables"]["products"]["key"]]
    # The connection opened before still reads its publish; a new one reads the new.
    assert reader.execute("SELECT count(*) FROM products").fetchone() == (1000,)
    later = connect(store.url, store.endpoint_url)
    assert later.execute("SELECT count(*) FROM products").fetchone() == (10,)

    # Past keep_seconds, an object no manifest names any more is deleted.
    third = publish(con, ["products"], tmp_path / "serving", store, keep_seconds=0.0)
    assert store.size(first["tables"]["products"]["key"]) is None
    assert store.size(second["tables"]["products"]["key"]) is not None  # the previous one stays
    assert list(third["retired"]) == [second["tables"]["products"]["key"]]


def test_a_publish_the_store_missed_is_made_up_by_the_next(store, tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TABLE products AS SELECT 1 AS code")
    con.execute("CREATE TABLE nova_drift AS SELECT 2 AS x")
    serving.publish(con, ["products"], tmp_path / "serving")  # the store was down then
    publish(con, ["nova_drift"], tmp_path / "serving", store)
    reader = connect(store.url, store.endpoint_url)
    assert reader.execute("SELECT code FROM products").fetchall() == [(1,)]
    assert reader.execute("SELECT x FROM nova_drift").fetchall() == [(2,)]


def test_a_file_is_uploaded_once(store, tmp_path):
    local = tmp_path / "dump.tsv"
    local.write_bytes(b"code\n1\n" * 1000)
    uri = store.put_file(local, "raw/dump.tsv")
    assert uri == f"{store.url}/raw/dump.tsv" and store.size("raw/dump.tsv") == 7000
    store.put_bytes(b"short", "raw/dump.tsv")  # another size there: uploaded again
    store.put_file(local, "raw/dump.tsv")
    assert store.get_bytes("raw/dump.tsv") == local.read_bytes()


def test_a_bad_store_is_named(s3_endpoint, tmp_path, capsys):
    with pytest.raises(ObjectStoreError, match="not an s3://bucket/prefix URL"):
        ObjectStore("/data/published")
    missing = ObjectStore(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/x", s3_endpoint)
    with pytest.raises(ObjectStoreError, match="nothing published in s3://no-such-bucket"):
        connect(missing.url, missing.endpoint_url)
    (tmp_path / "t.parquet").write_bytes(b"x")
    with pytest.raises(ObjectStoreError, match=r"s3://no-such-bucket-\w+/x: could not upload"):
        missing.put_file(tmp_path / "t.parquet", "t.parquet")
    down = ObjectStore("s3://nova/x", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(ObjectStoreError, match="s3://nova/x: could not look up manifest.json"):
        down.read_manifest()
    assert main(["SELECT 1", "--store", down.url, "--endpoint-url", down.endpoint_url]) == 2
    assert "could not look up manifest.json" in capsys.readouterr().err


def test_the_command_prints_a_query(store, tmp_path, capsys):
    con = duckdb.connect()
    con.execute("CREATE TABLE nova_predictions AS SELECT 'x' AS code, 4 AS nova_group")
    publish(con, ["nova_predictions"], tmp_path / "serving", store)
    sql = "SELECT nova_group, count(*) AS n FROM nova_predictions GROUP BY 1"
    assert main([sql, "--store", store.url, "--endpoint-url", store.endpoint_url]) == 0
    out = capsys.readouterr().out
    assert "nova_group" in out and "4" in out
    manifest = json.loads(store.get_bytes("manifest.json"))
    assert Path(manifest["tables"]["nova_predictions"]["key"]).suffix == ".parquet"


def test_a_manifest_replaced_while_it_is_read_is_read_whole(store):
    """Publishes replace the manifest while readers read it: each read gets one manifest whole."""
    short = {"tables": {"a": {"key": "tables/a.parquet", "rows": 1, "published_at": "t"}}}
    long = {"tables": {f"t{i}": {**short["tables"]["a"], "rows": i} for i in range(40)}}
    versions = [json.dumps(m).encode() for m in (short, long)]
    store.put_bytes(versions[0], "manifest.json")
    done = threading.Event()

    def publishes() -> None:
        i = 0
        while not done.is_set():
            i += 1
            store.put_bytes(versions[i % 2], "manifest.json")

    writer = threading.Thread(target=publishes, daemon=True)
    writer.start()
    try:
        seen = {len(store.read_manifest()["tables"]) for _ in range(150)}
    finally:
        done.set()
        writer.join(10)
    assert seen <= {1, 40} and seen


def test_without_a_url_the_store_comes_from_the_environment_else_the_local_copy(
    store, data_dir, monkeypatch, capsys
):
    con = duckdb.connect()
    con.execute("CREATE TABLE products AS SELECT range AS code FROM range(3)")
    with pytest.raises(FileNotFoundError, match="nothing published at .*nova.duckdb yet"):
        connect()
    serving.publish(con, ["products"], data_paths().serving)
    with connect() as local:  # the data dir's published copy
        assert local.execute("SELECT count(*) FROM products").fetchone() == (3,)
    assert main(["SELECT count(*) AS n FROM products"]) == 0
    assert "3" in capsys.readouterr().out

    con.execute("INSERT INTO products VALUES (3)")
    publish(con, ["products"], data_dir / "elsewhere", store)
    monkeypatch.setenv("NOVA_OBJECT_STORE", store.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", store.endpoint_url)
    assert connect().execute("SELECT count(*) FROM products").fetchone() == (4,)
