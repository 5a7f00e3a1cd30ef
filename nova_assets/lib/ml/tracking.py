"""What MLflow keeps of a training and an evaluation: nested runs per trial, the logged and
registered pipelines with their signature, version tags, and the report's figures."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import AnyType, Array, ColSpec, Schema

from nova_assets.lib import builds
from nova_assets.lib.ml.classifiers import TRUSTED_TYPES, predict
from nova_assets.lib.ml.evidence import SLICES
from nova_assets.lib.ml.manifest import FeatureManifest
from nova_assets.lib.ml.model_input import (
    INPUT_COLUMNS,
    NAME_COLUMN,
    NUTRIENT_INPUTS,
    PARTIAL_COLUMN,
    example_input,
)
from nova_assets.lib.ml.registry import (
    CHALLENGER,
    CURRENT_INPUT,
    MODEL_DESCRIPTION,
    MODEL_INPUT,
    MODEL_NAME,
    TRAINING_FINGERPRINT,
)
from nova_assets.lib.ml.training import Trained, Trial
from nova_assets.lib.paths import REPO_ROOT

SIGNATURE = ModelSignature(
    inputs=Schema(
        [ColSpec(Array(DataType.string), column) for column in INPUT_COLUMNS]
        + [
            ColSpec(DataType.string, NAME_COLUMN, required=False),
            # Any, checked by the model (`as_flag`): MLflow would cast any text to true, "no"
            # included, before the model could refuse it.
            ColSpec(AnyType(), PARTIAL_COLUMN, required=False),
        ]
        + [ColSpec(DataType.double, column, required=False) for column in NUTRIENT_INPUTS]
    ),
    outputs=Schema([ColSpec(DataType.long)]),
)
"""Tag lists required (empty lists are fine); the name, the partial flag (true or false) and the
nutrients per 100 g (named as OFF's CSV names them) optional."""


TRAIN_ACCURACY_ROWS = 50_000

MODEL_REQUIREMENTS = [
    f"{package}=={metadata.version(package)}"
    for package in ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
]
"""What a logged model imports, pinned as installed. Said outright: MLflow would otherwise export
this whole project's lock (a hundred and fifty packages, Dagster's among them) into every model.
The model's own classes live in nova_assets, so it is served from this project's environment
(`--env-manager local`)."""


def git_commit() -> str:
    """The code's commit, so a model version says which code trained it."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def log_trial(trial: Trial) -> None:
    """One nested MLflow run per trial, under the active run and in its experiment (MLflow
    would put it in the process's current experiment, whatever that is)."""
    label = " ".join(f"{k}={v}" for k, v in trial.params.items())
    parent = mlflow.active_run()
    experiment_id = parent.info.experiment_id if parent else None
    with mlflow.start_run(
        run_name=f"{trial.kind} {label}".strip(),
        nested=True,
        experiment_id=experiment_id,
        tags={"ran_on": trial.ran_on},
    ):
        mlflow.log_params({"model": trial.kind, **trial.params, "train_rows": trial.train_rows})
        mlflow.log_metrics(
            {
                "validation_macro_f1": trial.macro_f1,
                "validation_accuracy": trial.accuracy,
                "fit_seconds": trial.fit_seconds,
                **{f"validation_macro_f1_{name}": v for name, v in trial.slices.items()},
            }
        )


@dataclass(frozen=True)
class Registered:
    version: str
    run_id: str
    reference_uri: str
    train_accuracy: float


def training_fingerprint(settings: dict[str, Any], manifest: FeatureManifest) -> str:
    """What makes a training what it is: the dump, the features, the settings and the code.
    Two trainings with one fingerprint make the same model, so the second is not done."""
    return builds.fingerprint(
        settings=settings,
        dump_sha256=manifest.dump_sha256,
        min_count=manifest.min_count,
        features=manifest.features,
        slice_weights=manifest.slice_weights,
    )


def register(
    trained: Trained,
    manifest: FeatureManifest,
    train_matrix,
    dagster_run_id: str,
    fingerprint: str,
) -> Registered:
    """Log the chosen model and the reference to the active run, register the model with its
    version tags and the alias `challenger`, and describe the registered model. The version is
    tagged last with `model_input`, so a version cut short by a crash is never taken for a
    whole one."""
    chosen = trained.chosen
    mlflow.log_params({"model": chosen.kind, **{f"model_{k}": v for k, v in chosen.params.items()}})
    mlflow.log_metrics(
        {
            "validation_macro_f1": chosen.macro_f1,
            "validation_accuracy": chosen.accuracy,
            "refit_seconds": trained.refit_seconds,
        }
    )
    example = example_input()
    reference_info = mlflow.sklearn.log_model(
        trained.reference,
        name="reference_model",
        signature=SIGNATURE,
        input_example=example,
        skops_trusted_types=TRUSTED_TYPES,
        pip_requirements=MODEL_REQUIREMENTS,
    )
    info = mlflow.sklearn.log_model(
        trained.model,
        name="model",
        signature=SIGNATURE,
        input_example=example,
        registered_model_name=MODEL_NAME,
        skops_trusted_types=TRUSTED_TYPES,
        pip_requirements=MODEL_REQUIREMENTS,
    )
    # On at most TRAIN_ACCURACY_ROWS training products: a diagnostic, not worth scoring
    # millions for.
    order = np.random.default_rng(0).permutation(len(train_matrix))
    sample = train_matrix.take(np.sort(order[:TRAIN_ACCURACY_ROWS]))
    train_accuracy = float((predict(trained.model, sample).groups == sample.labels).mean())
    mlflow.log_metric("train_accuracy", train_accuracy)
    version = str(info.registered_model_version)
    client = MlflowClient()
    tags = {
        "dump_sha256": manifest.dump_sha256,
        "train_rows": len(train_matrix),
        "fit_rows": trained.fit_rows,
        "features": len(train_matrix.features),
        "model_kind": chosen.kind,
        "model_params": json.dumps(chosen.params),
        "validation_macro_f1": f"{chosen.macro_f1:.6f}",
        "validation_accuracy": f"{chosen.accuracy:.6f}",
        "train_accuracy": f"{train_accuracy:.6f}",
        "git_commit": git_commit(),
        "reference_model_uri": reference_info.model_uri,
        "dagster_run_id": dagster_run_id,
        TRAINING_FINGERPRINT: fingerprint,
        MODEL_INPUT: CURRENT_INPUT,
    }
    for key, value in tags.items():
        client.set_model_version_tag(MODEL_NAME, version, key, str(value))
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
    client.update_registered_model(MODEL_NAME, description=MODEL_DESCRIPTION)
    return Registered(version, info.run_id, reference_info.model_uri, train_accuracy)


def log_evaluation(
    client: MlflowClient, version, report: dict[str, Any], files: dict[str, Path]
) -> None:
    """The report's figures on the model's run and version, its files as artifacts."""
    metrics = {
        "test_macro_f1": report["model"]["macro_f1"],
        "test_accuracy": report["model"]["accuracy"],
        "rules_test_macro_f1": report["rules"]["macro_f1"],
        "reference_test_macro_f1": report["reference"]["macro_f1"],
        "reference_test_accuracy": report["reference"]["accuracy"],
    }
    for name in SLICES:
        entry = report["slices"][name]["model"]
        metrics[f"test_macro_f1_{name}"] = entry["macro_f1"]
        metrics[f"test_accuracy_{name}"] = entry["accuracy"]
        if entry["ece"] is not None:
            metrics[f"test_ece_{name}"] = entry["ece"]
        if entry["at_thresholds"]["coverage"] is not None:
            metrics[f"test_coverage_{name}"] = entry["at_thresholds"]["coverage"]
    for name, value in metrics.items():
        client.log_metric(version.run_id, name, value)
    for name in ("test_macro_f1", "test_accuracy"):
        client.set_model_version_tag(MODEL_NAME, version.version, name, f"{metrics[name]:.6f}")
    for path in files.values():
        client.log_artifact(version.run_id, str(path), artifact_path="evaluation")
