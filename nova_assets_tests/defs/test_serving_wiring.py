"""Warehouse.connect(publish=...) and the assets that publish what they write."""

import json
import uuid
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from nova_assets.defs.resources import Warehouse
from nova_assets.lib.paths import data_paths
from nova_assets.lib.publishing.object_store import ObjectStore
from nova_assets.lib.publishing.read_only_copy import catalog_path
from nova_assets.published import connect
from nova_assets_tests.defs.graph import failure_text, run_graph


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(
        path=str(tmp_path / "warehouse.duckdb"),
        temp_directory=str(tmp_path / "tmp"),
        serving_dir=str(tmp_path / "serving"),
    )


def test_a_successful_block_publishes_its_tables(warehouse, tmp_path):
    with warehouse.connect(publish=["t"]) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    with duckdb.connect(str(catalog_path(tmp_path / "serving")), read_only=True) as reader:
        assert reader.execute("SELECT x FROM t").fetchall() == [(1,)]
        assert reader.execute('SELECT "table", rows FROM published').fetchall() == [("t", 1)]


def test_a_block_that_raises_publishes_nothing(warehouse, tmp_path):
    with pytest.raises(RuntimeError, match="boom"), warehouse.connect(publish=["t"]) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
        raise RuntimeError("boom")
    assert not (tmp_path / "serving").exists()


def test_publishing_needs_a_read_write_connection(warehouse):
    with pytest.raises(ValueError, match="read-write"), warehouse.connect(True, ["t"]):
        pass


def test_the_warehouse_assets_publish_on_the_sample(data_dir):
    with DagsterInstance.ephemeral() as instance:
        result, _ = run_graph(instance, ["off_dump", "products", "test_split"])
    assert result.success, failure_text(result)
    catalog = data_paths().serving / "nova.duckdb"
    assert catalog == data_dir / "serving" / "nova.duckdb"
    with duckdb.connect(str(catalog), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM products").fetchone() == (1000,)
        assert reader.execute("SELECT count(*) FROM test_split").fetchone()[0] > 0
        assert reader.execute("SELECT count(*) FROM dumps").fetchone()[0] == 1
        published = dict(reader.execute('SELECT "table", rows FROM published').fetchall())
    assert set(published) == {"products", "dumps", "test_split"}
    assert published["products"] == 1000


def test_with_an_object_store_the_dump_and_tables_are_copied_there(
    data_dir, s3_endpoint, monkeypatch
):
    store = ObjectStore(f"s3://nova-{uuid.uuid4().hex[:8]}/team", s3_endpoint)
    store.create_bucket()
    monkeypatch.setenv("NOVA_OBJECT_STORE", store.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    with DagsterInstance.ephemeral() as instance:
        result, _ = run_graph(instance, ["off_dump", "products", "test_split"])
    assert result.success, failure_text(result)
    dump = json.loads((data_dir / "raw" / "latest.json").read_text())
    archived = f"raw/{Path(dump['path']).name}"
    assert store.get_bytes(archived) == Path(dump["path"]).read_bytes()
    metadata = result.asset_materializations_for_node("off_dump")[0].metadata
    assert metadata["archived"].value == store.uri(archived)

    reader = connect(store.url, s3_endpoint)
    assert reader.execute("SELECT count(*) FROM products").fetchone() == (1000,)
    with duckdb.connect(str(data_paths().serving / "nova.duckdb"), read_only=True) as local:
        here = local.execute("SELECT count(*) FROM test_split").fetchone()
    assert reader.execute("SELECT count(*) FROM test_split").fetchone() == here
    assert dict(reader.execute('SELECT "table", rows FROM published').fetchall())["dumps"] == 1
