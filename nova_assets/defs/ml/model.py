"""`nova_model`: the tracked, registered classifier."""

import json
import subprocess
import time

import dagster as dg
import mlflow
import numpy as np
from mlflow.models import infer_signature

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.features import feature_matrix, features_dir
from nova_assets.defs.resources import tracked_run
from nova_assets.lib.features import TagMatrix
from nova_assets.lib.models import (
    MODEL_KINDS,
    TRUSTED_TYPES,
    Trial,
    best_trial,
    columns_for,
    example_input,
    fit_pipeline,
    predict_matrix,
    tune,
)
from nova_assets.lib.paths import REPO_ROOT
from nova_assets.lib.registry import CHALLENGER, MODEL_NAME
from nova_assets.lib.split import validation_mask

REFERENCE = "reference_bernoulli_nb"


DEFAULT_CANDIDATES = [
    "reference_bernoulli_nb",
    "logistic_regression",
    "marker_logistic_regression",
    "marker_decision_tree",
]


class ModelConfig(dg.Config):
    candidates: list[str] = DEFAULT_CANDIDATES
    """Model kinds to compare on the validation rows; the best becomes the model."""
    C: list[float] = [0.3, 1.0, 3.0]
    """Inverse regularisation strengths tried for the logistic regressions."""
    alpha: list[float] = [0.1, 1.0]
    """Smoothing tried for the naive Bayes reference."""
    max_depth: list[int] = [12, 24]
    """Depths tried for the decision tree."""
    validation_percent: int = 20
    """Share of the training rows (by a stable hash of the code) held out to choose the model."""
    tuning_rows: int = 300_000
    """At most this many rows fit each trial; the chosen setting is refitted on all of them."""
    max_iter: int = 2000
    """Iterations allowed to the logistic regressions' solver."""


def git_commit() -> str:
    """The code's commit, so a model version says which code trained it."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _log_trial(trial: Trial) -> None:
    """One nested MLflow run per trial, under the Dagster run's MLflow run."""
    label = " ".join(f"{k}={v}" for k, v in trial.params.items())
    with mlflow.start_run(run_name=f"{trial.kind} {label}".strip(), nested=True):
        mlflow.log_params({"model": trial.kind, **trial.params, "train_rows": trial.train_rows})
        mlflow.log_metrics(
            {
                "validation_accuracy": trial.accuracy,
                "validation_macro_f1": trial.macro_f1,
                "fit_seconds": trial.fit_seconds,
                **{f"validation_f1_group_{g}": v for g, v in trial.f1_per_class.items()},
            }
        )


@dg.asset(
    deps=[feature_matrix],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    required_resource_keys={"mlflow"},
    description="A scikit-learn Pipeline (raw tag lists in, NOVA group out): the best of the "
    "candidate models (reference naive Bayes, logistic regressions with and without OFF's NOVA "
    "markers, a decision tree), each tuned on validation rows carved from the train rows and "
    "logged as a nested MLflow run; refitted on all train rows, logged beside the reference "
    f"model and registered as {MODEL_NAME} with the alias '{CHALLENGER}'.",
)
def nova_model(context: dg.AssetExecutionContext, config: ModelConfig) -> dg.MaterializeResult:
    unknown = sorted(set(config.candidates) - set(MODEL_KINDS))
    if unknown or not config.candidates:
        raise ValueError(
            f"unknown or no candidate model(s) {unknown}; choose from {', '.join(MODEL_KINDS)}"
        )
    train = TagMatrix.load(features_dir() / "train.npz")
    manifest = json.loads((features_dir() / "manifest.json").read_text())
    grids = {"C": config.C, "alpha": config.alpha, "max_depth": config.max_depth}
    with tracked_run(context.resources.mlflow) as run:
        mlflow.log_params(
            {
                "candidates": ",".join(config.candidates),
                **{f"grid_{k}": ",".join(map(str, v)) for k, v in grids.items()},
                "validation_percent": config.validation_percent,
                "tuning_rows": config.tuning_rows,
                "min_count": manifest["min_count"],
                "features": len(train.features),
                "train_rows": train.X.shape[0],
                "dump_sha256": manifest["dump_sha256"],
            }
        )
        validation = validation_mask(train.codes, config.validation_percent)
        trials = tune(
            list(dict.fromkeys([*config.candidates, REFERENCE])),
            {**grids, "max_iter": [config.max_iter]},
            train.X,
            train.labels,
            train.features,
            validation,
            max_rows=config.tuning_rows,
            on_trial=_log_trial,
        )
        chosen = best_trial([t for t in trials if t.kind in config.candidates])
        reference_trial = best_trial(trials, REFERENCE)
        context.log.info(
            "validation macro-F1: "
            + "; ".join(f"{t.kind} {t.params}: {t.macro_f1:.4f}" for t in trials)
            + f". Chosen: {chosen.kind} {chosen.params}"
        )
        start = time.perf_counter()
        model = fit_pipeline(chosen.kind, train.X, train.labels, train.features, **chosen.params)
        fit_seconds = time.perf_counter() - start
        reference = fit_pipeline(
            REFERENCE, train.X, train.labels, train.features, **reference_trial.params
        )
        mlflow.log_params(
            {"model": chosen.kind, **{f"model_{k}": v for k, v in chosen.params.items()}}
        )
        mlflow.log_metrics(
            {
                "validation_accuracy": chosen.accuracy,
                "validation_macro_f1": chosen.macro_f1,
                "fit_seconds": fit_seconds,
            }
        )
        example = example_input()
        signature = infer_signature(example, model.predict(example))
        reference_info = mlflow.sklearn.log_model(
            reference,
            name="reference_model",
            signature=signature,
            input_example=example,
            skops_trusted_types=TRUSTED_TYPES,
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=MODEL_NAME,
            skops_trusted_types=TRUSTED_TYPES,
        )
        train_predicted, _ = predict_matrix(model, columns_for(model, train.X, train.features))
        train_accuracy = float(np.mean(train_predicted == train.labels))
        mlflow.log_metric("train_accuracy", train_accuracy)
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for key, value in {
            "dump_sha256": manifest["dump_sha256"],
            "train_rows": train.X.shape[0],
            "features": len(train.features),
            "model_kind": chosen.kind,
            "model_params": json.dumps(chosen.params),
            "validation_macro_f1": f"{chosen.macro_f1:.6f}",
            "validation_accuracy": f"{chosen.accuracy:.6f}",
            "train_accuracy": f"{train_accuracy:.6f}",
            "git_commit": git_commit(),
            "reference_model_uri": reference_info.model_uri,
            "dagster_run_id": context.run.run_id,
        }.items():
            client.set_model_version_tag(MODEL_NAME, version, key, str(value))
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER, version)
        run_id = run.info.run_id
    context.log.info(
        f"registered {MODEL_NAME} v{version} ({chosen.kind}, refitted in {fit_seconds:.1f} s; "
        f"MLflow run {run_id}), alias '{CHALLENGER}'"
    )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "model_kind": chosen.kind,
            "model_params": chosen.params,
            "validation_macro_f1": chosen.macro_f1,
            "validation_accuracy": chosen.accuracy,
            "fit_seconds": round(fit_seconds, 2),
            "trials": dg.MetadataValue.md(_trials_markdown(trials, chosen)),
            "mlflow_run_id": run_id,
            "model_uri": f"models:/{MODEL_NAME}/{version}",
            "reference_model_uri": reference_info.model_uri,
            "train_rows": int(train.X.shape[0]),
            "features": len(train.features),
        }
    )


def _trials_markdown(trials: list[Trial], chosen: Trial) -> str:
    lines = [
        "| candidate | params | val. accuracy | val. macro-F1 | F1 g1 | F1 g2 | F1 g3 | F1 g4 | fit s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        mark = " **(chosen)**" if t is chosen else ""
        f1 = " | ".join(
            f"{t.f1_per_class[g]:.3f}" if g in t.f1_per_class else "-" for g in (1, 2, 3, 4)
        )
        lines.append(
            f"| {t.kind}{mark} | {json.dumps(t.params)} | {t.accuracy:.4f} | {t.macro_f1:.4f} "
            f"| {f1} | {t.fit_seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"
