"""`products` materialized for real, through `off_dump`, on a dump other than the default."""

from pathlib import Path

import duckdb
from dagster import DagsterInstance

from nova_assets.lib.ingest.dump import Dump
from nova_assets.lib.paths import SAMPLE_JSONL, data_paths
from nova_assets_tests.defs.graph import (
    FAST_MODEL,
    failure_text,
    registry_state,
    run_graph,
    warehouse_state,
)
from nova_assets_tests.helpers import get_field, set_field, write_dump

GO_BACK_CONFIG = {"go_back": True, "max_shrink": 1}


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


FAST = {"ops": {"nova_model": {"config": FAST_MODEL}}}


def bigger_dump(path: Path, lines: list[str], copies: int = 3) -> Path:
    """The sample `copies` times under new codes: a dump the sample is a fall of more than half
    of, as the real dump is."""
    header = lines[0]
    renamed = [
        set_field(line, header, "code", get_field(line, header, "code") + f"{n}")
        for n in range(1, copies)
        for line in lines[1:]
    ]
    return write_dump(path, [*lines, *renamed])


def products_result(result) -> dict:
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "products"
    )
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_first_command_after_a_bigger_dump_keeps_the_tables_and_succeeds(
    data_dir, monkeypatch, tmp_path, sample_lines
):
    """A fresh clone's first command, then a real (bigger) dump, then the first command again:
    it fetches the sample again, which the tables held before; they keep the newer dump and
    the run succeeds, changing nothing. An explicit go_back takes the sample back."""
    with DagsterInstance.ephemeral() as instance:
        first, _ = run_graph(instance, ["off_dump", "products"])
        assert first.success, failure_text(first)
        monkeypatch.setenv("NOVA_DUMP_URL", str(bigger_dump(tmp_path / "big.tsv", sample_lines)))
        bigger, _ = run_graph(instance, run_config=FAST)
        assert bigger.success, failure_text(bigger)
        monkeypatch.delenv("NOVA_DUMP_URL")
        tables, registry = warehouse_state(), registry_state()
        big_dump = Dump.from_json(data_paths().latest_dump.read_text())

        again, _ = run_graph(instance, run_config=FAST)
        assert again.success, failure_text(again)
        assert warehouse_state() == tables and registry_state() == registry
        assert Dump.from_json(data_paths().latest_dump.read_text()) == big_dump
        kept = products_result(again)
        assert kept["status"].startswith("unchanged: the tables come from a newer dump")
        assert kept["dump_sha256"] == big_dump.sha256
        assert "go_back" in kept["to_go_back"] and "--config-json" in kept["to_go_back"]
        logs = [e.message for e in instance.all_logs(again.run_id)]
        assert any(f"products keep dump {big_dump.sha256[:12]} (3,000 products" in m for m in logs)

        back, _ = run_graph(
            instance, ["products"], {"ops": {"products": {"config": GO_BACK_CONFIG}}}
        )
        assert back.success, failure_text(back)
        assert products_result(back)["dagster/row_count"] == 1000


def test_a_new_much_smaller_dump_is_refused_naming_the_setting_and_the_command(
    data_dir, monkeypatch, tmp_path, sample_lines
):
    monkeypatch.setenv("NOVA_DUMP_URL", str(bigger_dump(tmp_path / "big.tsv", sample_lines)))
    with DagsterInstance.ephemeral() as instance:
        bigger, _ = run_graph(instance, ["off_dump", "products"])
        assert bigger.success, failure_text(bigger)
        monkeypatch.setenv("NOVA_DUMP_URL", str(write_dump(tmp_path / "new.tsv", sample_lines)))
        refused, _ = run_graph(instance, ["off_dump", "products"])
    assert not refused.success
    text = failure_text(refused)
    assert "1,000 products against 3,000 in the current table, a fall of more than 50%" in text
    assert "products.max_shrink" in text
    assert (
        "uv run dg launch --assets 'products*' --config-json "
        """'{"ops": {"products": {"config": {"max_shrink": 1}}}}'"""
    ) in text
