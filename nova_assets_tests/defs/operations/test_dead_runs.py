"""A run whose worker is killed must not block the platform: real Dagster instance (sqlite in a
temp DAGSTER_HOME with the project's dagster.yaml), a real worker process killed with SIGKILL,
a real MLflow sqlite store."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import mlflow
import pytest

from nova_assets.definitions import defs
from nova_assets.defs.operations.dead_runs import reap_dead_runs
from nova_assets.defs.operations.sensors import dead_run_sensor
from nova_assets.lib.ml.registry import EXPERIMENT, client_for

REPO_ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import time
import dagster as dg

@dg.op(pool="duckdb")
def hold_the_warehouse():
    time.sleep(120)

@dg.job(executor_def=dg.in_process_executor)
def stuck():
    hold_the_warehouse()

with dg.DagsterInstance.get() as instance:
    stuck.execute_in_process(instance=instance)
"""


@dg.op(pool="duckdb")
def quick():
    return 1


@dg.job(executor_def=dg.in_process_executor)
def later():
    quick()


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "data" / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_run_is_marked_failed_its_slot_and_mlflow_run_freed(home, tmp_path):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = client_for(tracking_uri)
    experiment = client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "a").as_uri())
    # The instance's sqlite tables are created before the worker opens the same home: two
    # processes creating them at once race ("table job_ticks already exists").
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        instance.schedule_storage.all_instigator_state()
        worker = subprocess.Popen([sys.executable, "-c", WORKER], env=os.environ.copy())
        try:
            run_id = wait_for(
                lambda: next(iter(storage.get_concurrency_run_ids()), None), 60, "the slot claim"
            )
            orphan = client.create_run(experiment, tags={"dagster_run_id": run_id}).info.run_id
            assert reap_dead_runs(instance, tracking_uri) == []  # alive: left alone
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

            assert reap_dead_runs(instance, tracking_uri) == [run_id]
            assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
            assert storage.get_concurrency_run_ids() == set()
            assert client.get_run(orphan).info.status == "FAILED"

            started = time.monotonic()
            assert later.execute_in_process(instance=instance).success
            assert time.monotonic() - started < 30
        finally:
            worker.kill()
            worker.wait()
            mlflow.set_tracking_uri(None)


def test_the_sensor_reaps_without_a_run(home, data_dir):
    with (
        dg.DagsterInstance.get() as instance,
        dg.build_sensor_context(instance=instance, resources=defs().resources) as context,
    ):
        result = dead_run_sensor(context)
    assert isinstance(result, dg.SkipReason) and "0 dead run(s)" in result.skip_message
