"""`products` materialized for real, through `off_dump`, on a dump other than the default."""

import duckdb
from dagster import DagsterInstance

from nova_assets.lib.dump import Dump
from nova_assets.lib.paths import SAMPLE_JSONL, data_paths
from nova_assets_tests.defs.graph import failure_text, run_graph


def test_the_jsonl_sample_is_a_dump_for_the_products_asset(data_dir, monkeypatch):
    monkeypatch.setenv("NOVA_DUMP_URL", str(SAMPLE_JSONL))
    with DagsterInstance.ephemeral() as instance:
        result, deprecations = run_graph(instance, ["off_dump", "products"])
    assert result.success, failure_text(result)
    assert deprecations == []
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "products"
    )
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["dagster/row_count"] == metadata["lines_read"] > 0
    assert metadata["skipped_lines"] == 0
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        path, products = con.execute("SELECT path, products FROM dumps").fetchone()
        reasons = con.execute(
            "SELECT count(*) FROM products WHERE nova_blank_reason IS NOT NULL"
        ).fetchone()[0]
    assert path.endswith(".jsonl.gz") and products == metadata["dagster/row_count"]
    assert reasons > 0
    accepted = Dump.from_json(data_paths().latest_dump.read_text())
    assert accepted.path == path and accepted.gzipped
