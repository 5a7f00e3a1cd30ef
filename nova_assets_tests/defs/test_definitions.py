"""The definitions load cleanly, agree with the project config, and keep the intended graph."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from nova_assets.definitions import defs
from nova_assets.lib.paths import REPO_ROOT

SNAPSHOT = Path(__file__).parents[1] / "snapshots" / "asset_graph.json"


def graph_snapshot(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    snapshot = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        snapshot[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "pool": sorted(node.pools or []),
            "checks": sorted(c.name for c in node.check_keys),
            "has_description": bool(node.description),
            "automation": node.automation_condition.get_label()
            if node.automation_condition
            else None,
        }
    return snapshot


def test_asset_graph_matches_its_snapshot(data_dir):
    current = graph_snapshot(defs())
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text()), (
        "graph changed: rerun with UPDATE_SNAPSHOTS=1 if intended"
    )


def test_the_asset_graph_picture_shows_every_asset(data_dir):
    """docs/asset_graph.png is taken with docs/asset_graph.json listing what it shows."""
    shown = json.loads((REPO_ROOT / "docs" / "asset_graph.json").read_text())["assets"]
    current = sorted(key.path[-1] for key in defs().resolve_all_asset_keys())
    assert shown == current, (
        "docs/asset_graph.png is stale: UPDATE_SCREENSHOTS=1 uv run pytest "
        "nova_assets_tests/e2e/test_browser.py"
    )


def test_every_asset_is_described_grouped_and_typed(data_dir):
    for key, node in graph_snapshot(defs()).items():
        assert node["has_description"] and node["group"] != "default" and node["kinds"], key


def test_warehouse_writers_share_the_duckdb_pool(data_dir):
    snapshot = graph_snapshot(defs())
    for key in (
        "products",
        "test_split",
        "feature_matrix",
        "evaluation_report",
        "nova_predictions",
    ):
        assert snapshot[key]["pool"] == ["duckdb"], key


def test_sensors_and_schedule_run_by_default(data_dir):
    definitions = defs()
    sensors = {s.name: s for s in definitions.sensors}
    # Deltas only bring OFF's full export up to date: their sensor is started by hand.
    assert sensors.pop("new_delta_sensor").default_status == dg.DefaultSensorStatus.STOPPED
    assert set(sensors) == {"new_dump_sensor", "nova_automation_sensor", "dead_run_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    (schedule,) = definitions.schedules
    assert schedule.name == "refresh_schedule"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 4 * * 1"


def test_instance_settings_allow_one_run_and_one_warehouse_step_and_no_dialog(tmp_path):
    settings = REPO_ROOT / "data" / "dagster_home" / "dagster.yaml"
    (tmp_path / "dagster.yaml").write_text(settings.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 1
        assert config.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert not instance.nux_enabled  # no community dialog over a newcomer's first page


def test_both_instance_settings_agree_but_for_where_the_files_go():
    """./dagster.yaml (no DAGSTER_HOME: the first command and `dg dev` from the repo root) and
    data/dagster_home/dagster.yaml (DAGSTER_HOME there) are one instance, set up the same way."""
    root = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    home = yaml.safe_load((REPO_ROOT / "data" / "dagster_home" / "dagster.yaml").read_text())
    storage = ("storage", "local_artifact_storage", "compute_logs")
    assert {k: v for k, v in root.items() if k not in storage} == home
    assert root["storage"]["sqlite"]["base_dir"] == {"env": "NOVA_DAGSTER_STORAGE"}
    env = (REPO_ROOT / ".env").read_text()
    assert "NOVA_DAGSTER_STORAGE=${NOVA_DATA_DIR:-data}/dagster_home" in env.splitlines()


def test_executor_is_in_process(data_dir):
    job = defs().resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "in_process"


def test_workspace_and_dg_config_agree():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    root_module = pyproject["tool"]["dg"]["project"]["root_module"]
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    modules = [entry["python_module"]["module_name"] for entry in workspace["load_from"]]
    assert modules == [f"{root_module}.definitions"]
    assert pyproject["tool"]["dg"]["project"]["defs_module"] == f"{root_module}.defs"
    # One name for the code location, whether `dg` or `dagster dev` loads it.
    names = [entry["python_module"]["location_name"] for entry in workspace["load_from"]]
    assert names == [pyproject["tool"]["dg"]["project"]["code_location_name"]]


def test_resources_follow_the_data_dir(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("NOVA_DUMP_URL", "http://user:secret@127.0.0.1:9/dump.csv")
    monkeypatch.setenv("NOVA_INCOMING_DIR", str(tmp_path / "drop"))
    monkeypatch.setenv("NOVA_URL_CHECK_SECONDS", "60")
    monkeypatch.setenv("NOVA_DELTA_URL", "http://127.0.0.1:9/data/delta/index.txt")
    definitions = defs()
    # A setting given by the environment stays an EnvVar: the UI shows its name, not a token.
    assert definitions.resources["dump_source"].url == dg.EnvVar("NOVA_DUMP_URL")
    assert definitions.resources["delta_source"].url == dg.EnvVar("NOVA_DELTA_URL")
    with dg.build_resources(definitions.resources) as resources:
        assert resources.delta_source.url == "http://127.0.0.1:9/data/delta/index.txt"
        assert resources.delta_source.raw_dir == str(data_dir / "raw" / "deltas")
        assert resources.warehouse.path == str(data_dir / "warehouse.duckdb")
        assert resources.dump_source.url == "http://user:secret@127.0.0.1:9/dump.csv"
        assert resources.dump_source.url_check_seconds == 60
        assert resources.data_dir.paths.incoming == tmp_path / "drop"
        assert resources.data_dir.paths.features == data_dir / "features"
        assert (
            resources.mlflow_store.tracking_uri == f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
        )


def test_a_sensor_given_a_run_locked_resource_never_takes_the_run_lock(data_dir):
    from nova_assets.lib import run_lock

    with dg.build_resources(defs().resources) as resources:
        assert resources.dump_source.run_lock
        assert run_lock.holder(data_dir / "run.lock") == ""


@pytest.mark.parametrize("module", ["nova_assets.definitions"])
def test_loading_raises_no_deprecation_warning_from_our_code(module, tmp_path):
    script = f"""
import json, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from {module} import defs
    d = defs()
    d.resolve_implicit_global_asset_job_def()
    d.resolve_asset_graph()
print(json.dumps([f"{{w.filename}}:{{w.lineno}} {{w.category.__name__}} {{w.message}}" for w in caught
    if issubclass(w.category, (DeprecationWarning, FutureWarning)) and "/nova_assets/" in w.filename]))
"""
    env = {**os.environ, "NOVA_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_loading_the_definitions_imports_no_heavy_library(tmp_path):
    """Every run worker, code server and `dg` command loads the definitions: scikit-learn,
    MLflow, skops and pandas (seconds of imports) wait for the step that uses them."""
    script = """
import json, sys
from nova_assets.definitions import defs
defs().resolve_asset_graph()
print(json.dumps(sorted(m for m in ("sklearn", "mlflow", "skops", "pandas", "matplotlib", "ray")
    if m in sys.modules)))
"""
    env = {**os.environ, "NOVA_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
