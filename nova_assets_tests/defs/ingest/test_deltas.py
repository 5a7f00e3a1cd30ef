"""`apply_deltas` for real: the sample's graph materialized once (real MLflow champion), then
OFF-named deltas served by a real HTTP server on 127.0.0.1 and applied by the job on an
ephemeral Dagster instance; bad deltas change nothing, tables or served copy; the sensor asks
only for new deltas."""

import gzip
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterInstance

from nova_assets.definitions import defs
from nova_assets.defs.ingest.deltas import new_delta_sensor
from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ml import batch_predictions as predictions
from nova_assets.lib.paths import SAMPLE_DUMP, data_paths
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets_tests.benchmarks.scripts import load_script
from nova_assets_tests.defs.graph import FAST_MODEL, failure_text, run_graph

CONTENT = (
    "SELECT count(*), hash(list(t ORDER BY t)) FROM (SELECT * EXCLUDE (dump_sha256) FROM {}) t"
)
STATE = "SELECT count(*), hash(list(t ORDER BY t)) FROM {} t"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The sample materialized with a fast model; the data dir saved to restore before each
    test."""
    root = tmp_path_factory.mktemp("deltas")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVA_DATA_DIR", str(root / "data"))
        for name in ("MLFLOW_TRACKING_URI", "NOVA_DUMP_URL", "NOVA_INCOMING_DIR", "NOVA_DELTA_URL"):
            mp.delenv(name, raising=False)
        with DagsterInstance.ephemeral() as instance:
            result, _ = run_graph(
                instance, run_config={"ops": {"nova_model": {"config": FAST_MODEL}}}
            )
            assert result.success, failure_text(result)
        shutil.copytree(root / "data", root / "saved", ignore=shutil.ignore_patterns("*.lock"))
        day = load_script("generate_dump").write_delta(SAMPLE_DUMP, root / "day", 20, 6, seed=5)
        yield {"root": root, "day": day}


@pytest.fixture
def served(world, http_root, monkeypatch):
    """The saved data dir restored, NOVA_DELTA_URL the index of an HTTP folder: (folder, day)."""
    root = world["root"]
    monkeypatch.setenv("NOVA_DATA_DIR", str(root / "data"))
    for name in ("MLFLOW_TRACKING_URI", "NOVA_DUMP_URL", "NOVA_INCOMING_DIR"):
        monkeypatch.delenv(name, raising=False)
    shutil.rmtree(root / "data")
    shutil.copytree(root / "saved", root / "data")
    base, folder = http_root
    monkeypatch.setenv("NOVA_DELTA_URL", f"{base}/delta/index.txt")
    (folder / "delta").mkdir()
    return folder / "delta", world["day"]


def publish(folder: Path, deltas: dict[str, bytes]) -> None:
    """Serve `deltas` (name -> bytes; None: listed, no file) with OFF's index, newest first."""
    (folder / "index.txt").write_text("\n".join(sorted(deltas, reverse=True)) + "\n")
    for name, body in deltas.items():
        if body is not None:
            (folder / name).write_bytes(body)


def launch() -> dg.ExecuteInProcessResult:
    with DagsterInstance.ephemeral() as instance:
        return (
            defs()
            .get_job_def("apply_deltas")
            .execute_in_process(instance=instance, raise_on_error=False)
        )


def tables() -> dict:
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        names = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        return {
            t: con.execute(STATE.format(t)).fetchone()
            for t in ("products", "test_split", "nova_predictions", "deltas")
            if t in names
        }


def served_copy() -> dict:
    """The published read-only copy's tables, as a reader sees them."""
    catalog = data_paths().serving / "nova.duckdb"
    with duckdb.connect(str(catalog), read_only=True) as con:
        names = [
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        ]
        return {t: con.execute(STATE.format(t)).fetchone() for t in sorted(names)}


def rows(table: str) -> dict[str, tuple]:
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        return {r[0]: r for r in con.execute(f"SELECT * FROM {table}").fetchall()}


def older_delta(day) -> str:
    """A delta the tables already hold: it ends before them."""
    return f"products_{day.start - 86_400}_{day.start}.json.gz"


def test_a_delta_applies_once_as_a_full_ingest_of_the_day_later_dump(served, tmp_path):
    folder, day = served
    publish(folder, {day.delta.name: day.delta.read_bytes(), older_delta(day): b"ignored"})
    predicted = rows("nova_predictions")
    splits = rows("test_split")
    result = launch()
    assert result.success, failure_text(result)
    assert result.output_for_node("apply_new_deltas") == 1
    with duckdb.connect(str(tmp_path / "full.duckdb")) as full:
        ingest_products(full, fetch_dump(str(day.later), tmp_path / "raw"))
        expected = full.execute(CONTENT.format("products")).fetchone()
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        assert con.execute(CONTENT.format("products")).fetchone() == expected
        applied = con.execute("SELECT name, products, new_products FROM deltas").fetchall()
    assert applied == [(day.delta.name, 26, 6)]
    touched = set(day.modified + day.new)
    after = rows("nova_predictions")
    assert {c: r for c, r in after.items() if c not in touched} == {
        c: r for c, r in predicted.items() if c not in touched
    }
    assert touched & set(after) and all(after[c] != predicted.get(c) for c in touched & set(after))
    assert {c: r for c, r in rows("test_split").items() if c in splits} == splits
    assert set(rows("test_split")) >= set(day.new)
    assert served_copy()["deltas"][0] == 1
    observed = {
        e.asset_key.path[-1]: e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }
    assert observed["products"]["upserted"].value == 26
    assert observed["nova_predictions"]["rescored"].value == len(touched & set(after))

    before = tables()
    again = launch()
    assert again.success and again.output_for_node("apply_new_deltas") == 0
    assert tables() == before


def test_tables_older_than_every_delta_are_a_gap_and_nothing_is_applied(served):
    folder, day = served
    later = f"products_{day.end + 86_400}_{day.end + 2 * 86_400}.json.gz"
    publish(folder, {later: day.delta.read_bytes()})
    before, copy = tables(), served_copy()
    result = launch()
    assert not result.success
    text = failure_text(result)
    assert "older than the oldest delta listed" in text and "materialize off_dump" in text
    assert tables() == before and served_copy() == copy


def corrupt(body: bytes) -> bytes:
    lines = gzip.decompress(body).splitlines()
    return gzip.compress(b"\n".join([*lines[:3], b'{"code": "1", "product_na', *lines[3:]]))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (corrupt, "not JSON objects"),
        (lambda body: body[: len(body) // 2], "truncated or damaged gzip"),
        (lambda body: b"", "is empty"),
        (lambda body: None, "cannot be downloaded.*404"),
    ],
    ids=["invalid-line", "truncated", "empty", "missing"],
)
def test_a_bad_delta_changes_nothing_and_a_good_one_applies_on_a_later_run(served, bad, message):
    folder, day = served
    good = day.delta.read_bytes()
    publish(folder, {day.delta.name: bad(good)})
    before, copy = tables(), served_copy()
    result = launch()
    assert not result.success
    text = failure_text(result)
    assert day.delta.name in text and re.search(message, text), text
    assert tables() == before and served_copy() == copy
    publish(folder, {day.delta.name: good})
    result = launch()
    assert result.success and result.output_for_node("apply_new_deltas") == 1


def test_a_failure_while_rescoring_rolls_the_whole_delta_back(served, monkeypatch):
    folder, day = served
    publish(folder, {day.delta.name: day.delta.read_bytes()})
    before, copy = tables(), served_copy()

    def failing(*args, **kwargs):
        raise RuntimeError("injected: scoring failed")

    monkeypatch.setattr(predictions, "rescore_codes", failing)
    result = launch()
    assert not result.success and "injected: scoring failed" in failure_text(result)
    assert tables() == before and served_copy() == copy


def tick(cursor: str | None):
    with (
        dg.instance_for_test() as instance,
        dg.build_sensor_context(
            instance=instance, cursor=cursor, resources=defs().resources
        ) as context,
    ):
        result = new_delta_sensor(context)
        if isinstance(result, dg.SkipReason):
            return [], context.cursor
        return result.run_requests, result.cursor


def test_the_sensor_asks_once_for_new_deltas_only(data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "deltas"
    folder.mkdir()
    monkeypatch.setenv("NOVA_DELTA_URL", str(folder))
    first, second, third = (f"products_{t}_{t + 86_400}.json.gz" for t in (1, 86_401, 172_801))
    publish(folder, {first: b"x", second: b"x"})
    requests, cursor = tick(None)
    assert [r.run_key for r in requests] == [second]
    assert tick(cursor)[0] == []
    publish(folder, {second: b"x", third: b"x"})
    requests, cursor = tick(cursor)
    assert [r.run_key for r in requests] == [third]
    assert tick(cursor)[0] == []
    monkeypatch.delenv("NOVA_DELTA_URL")
    assert tick(None)[0] == []
