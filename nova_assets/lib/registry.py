"""MLflow store and registry: the experiment, model versions and the `champion` alias.

Registry stages are deprecated in MLflow 3; aliases and version tags carry the state here.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

EXPERIMENT = "nova"
MODEL_NAME = "nova-group-classifier"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_INPUT = "model_input"
"""Version tag naming the input a version takes, set last when it is registered: a version
without it was cut short, or predates products with names and evidence."""
CURRENT_INPUT = "products-v2"


def takes_current_input(version: ModelVersion) -> bool:
    return version.tags.get(MODEL_INPUT) == CURRENT_INPUT


def ensure_experiment(tracking_uri: str, artifact_root: Path, name: str = EXPERIMENT) -> str:
    """Create the experiment with its artifacts under the data dir (MLflow's default is ./mlruns)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_root.mkdir(parents=True, exist_ok=True)
    return client.create_experiment(name, artifact_location=artifact_root.resolve().as_uri())


def client_for(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def latest_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    """The newest whole version that takes today's input (see MODEL_INPUT)."""
    versions = client.search_model_versions(f"name = '{name}'", max_results=1000)
    whole = [v for v in versions if takes_current_input(v)]
    return max(whole, key=lambda v: int(v.version), default=None)


def champion_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def load_pipeline(tracking_uri: str, model_uri: str):
    """Load a logged sklearn Pipeline from the store at `tracking_uri`."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.sklearn.load_model(model_uri)
