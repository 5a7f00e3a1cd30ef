"""MLflow store and registry: the experiment, model versions and the `champion` alias.

Registry stages are deprecated in MLflow 3; aliases and version tags carry the state here.
MLflow, skops and scikit-learn are imported where they are used, not with this module: its
names are read by every asset module, and loading the definitions must stay cheap (every run
worker, `dg` command and code server does it).
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from sklearn.pipeline import Pipeline

EXPERIMENT = "nova"
MODEL_NAME = "nova-group-classifier"
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_INPUT = "model_input"
"""Version tag naming the input a version takes, set last when it is registered: a version
without it was cut short, or predates products with names, evidence and nutrients."""
CURRENT_INPUT = "products-v3"
TRAINING_FINGERPRINT = "training_fingerprint"
"""Version tag: the dump, features, settings and code it was trained from (see
tracking.training_fingerprint)."""
EVALUATED_BESIDE = "evaluated_beside"
"""Version tag: the champion a version was scored beside in its evaluation report, so that once
the version is champion itself a rerun scores it beside the same one and rewrites nothing."""


def takes_current_input(version: ModelVersion) -> bool:
    return version.tags.get(MODEL_INPUT) == CURRENT_INPUT


EXPERIMENT_TAGS = {
    # Lists the experiment among model training ones in the MLflow UI (whose start page still
    # opens on GenAI views: the README links the runs page with workflowType=machine_learning).
    "mlflow.experimentKind": "custom_model_development",
    "mlflow.note.content": "nova_assets: one run per training of the NOVA group classifier "
    "(nested runs: the candidates tried), with the evaluation report of the version it "
    "registered. Each run is tagged with the Dagster run that made it.",
}
MODEL_DESCRIPTION = (
    "Predicts a food product's NOVA group (1 unprocessed ... 4 ultra-processed) from its Open "
    "Food Facts ingredients, additives and categories tags, name and partial-ingredients flag; "
    "calibrated per evidence state. Alias 'champion': the version nova_predictions serves."
)


def ensure_experiment(tracking_uri: str, artifact_root: Path | None, name: str = EXPERIMENT) -> str:
    """The experiment, created with its kind, its description and its artifacts under
    `artifact_root` (MLflow's default is ./mlruns); None leaves them where the tracking server
    keeps them (its proxied object store)."""
    client = client_for(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if artifact_root is not None:
            artifact_root.mkdir(parents=True, exist_ok=True)
            location = artifact_root.resolve().as_uri()
        return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    for key, value in EXPERIMENT_TAGS.items():
        if experiment.tags.get(key) != value:
            client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def is_server(tracking_uri: str) -> bool:
    """Whether the store is an MLflow tracking server, which decides where artifacts go."""
    return tracking_uri.startswith(("http://", "https://"))


def client_for(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _newest_whole(client: MlflowClient, search: str) -> ModelVersion | None:
    """The newest version matching `search` that is whole and takes today's input."""
    versions = client.search_model_versions(search, max_results=1000)
    whole = [v for v in versions if takes_current_input(v)]
    return max(whole, key=lambda v: int(v.version), default=None)


def latest_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    """The newest whole version that takes today's input (see MODEL_INPUT)."""
    return _newest_whole(client, f"name = '{name}'")


def version_trained_as(
    client: MlflowClient, fingerprint: str, name: str = MODEL_NAME
) -> ModelVersion | None:
    """The newest whole version trained from the same dump, features, settings and code."""
    return _newest_whole(
        client, f"name = '{name}' and tags.{TRAINING_FINGERPRINT} = '{fingerprint}'"
    )


def champion_version(client: MlflowClient, name: str = MODEL_NAME) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def rival(
    client: MlflowClient, version: ModelVersion, champion: ModelVersion | None
) -> ModelVersion | None:
    """The champion `version` is scored beside: the current one, or, once `version` has become
    champion itself, the one it was scored beside before (EVALUATED_BESIDE); None for the first."""
    from mlflow.exceptions import MlflowException

    if champion is None:
        return None
    if str(champion.version) != str(version.version):
        return champion
    beside = version.tags.get(EVALUATED_BESIDE)
    if not beside:
        return None
    try:
        return client.get_model_version(version.name, beside)
    except MlflowException:
        return None


def artifact_location(client: MlflowClient, model_uri: str) -> str:
    """Where the files of `model_uri` are (models:/NAME/VERSION, models:/NAME@ALIAS, a logged
    model's models:/m-ID, or any artifact URI), asked of `client`'s store: MLflow's own
    resolution of models:/ URIs reads the process-wide registry URI instead."""
    if not model_uri.startswith("models:/"):
        return model_uri
    path = model_uri.removeprefix("models:/").strip("/")
    if "@" in path:
        name, alias = path.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
        return client.get_model_version_download_uri(name, version)
    if "/" in path:
        name, version = path.split("/", 1)
        return client.get_model_version_download_uri(name, version)
    return client.get_logged_model(path).artifact_location


class UntrustedModelError(RuntimeError):
    """A model's files ask for something this code does not load."""


log = logging.getLogger(__name__)


def current_type_names(data: bytes, moved: dict[str, str]) -> tuple[bytes, list[str]]:
    """A skops file's bytes with every type of a module that `moved` (old -> new module)
    renamed to where it lives now, and the old modules found; the bytes as given if none.

    skops finds a class by the `__module__` and `__class__` its schema recorded at saving, so a
    model saved before a class moved would not load (skops has no remapping of its own). Only
    the names change: what is then trusted is still decided by TRUSTED_TYPES alone."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        found: set[str] = set()

        def rename(node: Any) -> Any:
            if isinstance(node, dict):
                module = node.get("__module__")
                if isinstance(module, str) and module in moved:
                    found.add(module)
                    node = {**node, "__module__": moved[module]}
                return {key: rename(value) for key, value in node.items()}
            if isinstance(node, list):
                return [rename(value) for value in node]
            return node

        schema = rename(schema)
        if not found:
            return data, []
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as renamed:
            for item in archive.infolist():
                content = archive.read(item)
                if item.filename == "schema.json":
                    content = json.dumps(schema).encode()
                renamed.writestr(item, content)
    return out.getvalue(), sorted(found)


def load_pipeline(tracking_uri: str, model_uri: str) -> Pipeline:
    """Load a logged sklearn Pipeline from the store at `tracking_uri` with skops, trusting the
    types listed in this code (TRUSTED_TYPES), never those the model's own files list, and
    never unpickling: whoever can write to the store cannot make this run their code."""
    import mlflow
    import skops.io

    from nova_assets.lib.ml.classifiers import MOVED_MODULES, TRUSTED_TYPES
    from nova_assets.lib.ml.nutrient_model import trees_are_sound

    location = artifact_location(client_for(tracking_uri), model_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=location, tracking_uri=tracking_uri)
    )
    flavor = (yaml.safe_load((local / "MLmodel").read_text()).get("flavors") or {}).get(
        "sklearn"
    ) or {}
    if flavor.get("serialization_format") != "skops":
        raise UntrustedModelError(
            f"{model_uri} is serialised as {flavor.get('serialization_format')!r}, not skops: "
            "refusing to unpickle it"
        )
    path = (local / str(flavor.get("pickled_model", ""))).resolve()
    if not path.is_file() or not path.is_relative_to(local.resolve()):
        raise UntrustedModelError(f"{model_uri} names a model file outside its own folder")
    data, moved = current_type_names(path.read_bytes(), MOVED_MODULES)
    if moved:
        log.info(
            "%s was saved when its classes lived in %s: loaded as today's classes",
            model_uri,
            ", ".join(moved),
        )
    unknown = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if unknown:
        raise UntrustedModelError(
            f"{model_uri} holds types this code does not trust: {', '.join(unknown)}"
        )
    pipeline = skops.io.loads(data, trusted=TRUSTED_TYPES)
    classifier = getattr(pipeline, "named_steps", {}).get("classifier")
    if not trees_are_sound(getattr(classifier, "nutrient_model_", None)):
        raise UntrustedModelError(f"{model_uri} holds nutrient trees that point outside themselves")
    return pipeline
