"""What a dead run leaves behind, cleared: a run whose worker process is gone (`kill -9`, a
crash, a full disk) would stay STARTED for ever, keep its `duckdb` pool slot and its MLflow run
RUNNING, and block every later run. Checked when a run takes the run lock and by
dead_run_sensor (sensors.py)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg

from nova_assets.lib.ml.registry import EXPERIMENT, client_for

if TYPE_CHECKING:
    from mlflow import MlflowClient

IN_PROGRESS = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The process that wrote the run's last event: its worker, as this project's runs execute
    in one process (in-process executor) on this machine."""
    records = instance.get_records_for_run(run_id, limit=1, ascending=False).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event is not None else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_runs(
    instance: dg.DagsterInstance, tracking_uri: str | None = None, *, current: str | None = None
) -> list[str]:
    """Mark FAILED each in-progress run (other than `current`) whose worker is gone, free the
    pool slots of every run that is over, and end FAILED the MLflow runs of those that are
    over but still RUNNING. Returns the runs marked failed."""
    reaped = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        pid = worker_pid(instance, run.run_id)
        if run.run_id == current or pid is None or pid == os.getpid() or alive(pid):
            continue
        instance.report_run_failed(
            run, message=f"Its run worker (pid {pid}) is gone; marked failed so later runs go on."
        )
        reaped.append(run.run_id)
    storage = instance.event_log_storage
    for run_id in storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
    if tracking_uri is not None:
        end_orphaned_mlflow_runs(instance, client_for(tracking_uri))
    return reaped


def end_orphaned_mlflow_runs(instance: dg.DagsterInstance, client: MlflowClient) -> list[str]:
    """End FAILED the MLflow runs still RUNNING whose Dagster run is over."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    ended = []
    for run in client.search_runs(
        [experiment.experiment_id], "attributes.status = 'RUNNING'", max_results=1000
    ):
        dagster_run_id = run.data.tags.get("dagster_run_id")
        dagster_run = instance.get_run_by_id(dagster_run_id) if dagster_run_id else None
        if dagster_run is not None and dagster_run.is_finished:
            client.set_terminated(run.info.run_id, status="FAILED")
            ended.append(run.info.run_id)
    return ended
