"""Helpers for tests that run the real asset graph on a real (ephemeral) Dagster instance."""

import warnings
from pathlib import Path

import dagster as dg
import duckdb
from dagster import DagsterInstance
from mlflow import MlflowClient

from nova_assets.definitions import defs
from nova_assets.lib.ml.registry import CHAMPION, EXPERIMENT, MODEL_NAME
from nova_assets.lib.paths import data_paths

OUR_CODE = str(Path(__file__).resolve().parents[2] / "nova_assets")
FAST_MODEL = {
    "candidates": ["reference_bernoulli_nb", "evidence_logistic_regression"],
    "C": [1.0],
    "alpha": [1.0],
}
"""`nova_model`'s config for tests of what follows it: two candidates, one setting each."""


def run_graph(
    instance: DagsterInstance, selection: list[str] | None = None, run_config: dict | None = None
):
    """Materialize every asset (or `selection`) with the definitions as the environment sets them.

    Returns the result and the deprecation warnings raised from the project's own code.
    """
    job = defs().resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in selection] if selection else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=keys, run_config=run_config
        )
    ours = [
        f"{w.filename}:{w.lineno} {w.message}"
        for w in caught
        if issubclass(w.category, (DeprecationWarning, FutureWarning))
        and w.filename.startswith(OUR_CODE)
    ]
    return result, ours


def failure_text(result) -> str:
    return "\n".join(
        e.step_failure_data.error.to_string() for e in result.get_step_failure_events()
    )


def warehouse_state() -> dict:
    """What a bad run must not change: the tables' contents, summarised."""
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        state = {}
        for table in ("products", "test_split", "feature_vocabulary", "nova_predictions", "dumps"):
            state[table] = con.execute(
                f"SELECT count(*), hash(list(t ORDER BY t)) FROM {table} t"
            ).fetchone()
        return state


def registry_state() -> dict:
    uri = data_paths().mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = sorted(
        int(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")
    )
    try:
        champion = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except Exception:
        champion = None
    return {"versions": versions, "champion": champion}


def mlflow_runs(nested: bool = False) -> list:
    """The experiment's runs: one per Dagster run, or with `nested` also the candidates' runs."""
    uri = data_paths().mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return runs if nested else [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
