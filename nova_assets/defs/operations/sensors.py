"""`dead_run_sensor`: clears what dead runs left even while no run starts."""

import dagster as dg

from nova_assets.defs.operations.dead_runs import reap_dead_runs
from nova_assets.defs.resources import MlflowStore
from nova_assets.lib.paths import sensor_interval_seconds


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=sensor_interval_seconds(),
    description="Marks FAILED a run whose worker process died, frees the pool slots of runs "
    "that are over and ends their MLflow runs, so queued runs go on (see dead_runs.py).",
)
def dead_run_sensor(
    context: dg.SensorEvaluationContext, mlflow_store: MlflowStore
) -> dg.SkipReason:
    reaped = reap_dead_runs(context.instance, mlflow_store.tracking_uri)
    if reaped:
        context.log.warning(f"marked failed, their workers being gone: {', '.join(reaped)}")
    return dg.SkipReason(f"{len(reaped)} dead run(s) marked failed")
