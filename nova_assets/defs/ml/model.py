"""`nova_model`: the tracked, registered classifier."""

import json

import dagster as dg
import mlflow
import numpy as np
from mlflow.models import infer_signature

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.features import feature_matrix, features_dir
from nova_assets.defs.resources import tracked_run
from nova_assets.lib.features import TagMatrix
from nova_assets.lib.models import TRUSTED_TYPES, example_input, fit_pipeline, predict_matrix
from nova_assets.lib.registry import MODEL_NAME


class ModelConfig(dg.Config):
    C: float = 1.0
    """Inverse regularisation strength of the logistic regression."""
    max_iter: int = 2000


@dg.asset(
    deps=[feature_matrix],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    required_resource_keys={"mlflow"},
    description="A scikit-learn Pipeline (raw tag lists in, NOVA group out): class-weighted "
    "logistic regression over all three tag families, trained on train rows beside the "
    "reference model (ingredients + BernoulliNB); logged to MLflow and registered as "
    f"{MODEL_NAME}.",
)
def nova_model(context: dg.AssetExecutionContext, config: ModelConfig) -> dg.MaterializeResult:
    train = TagMatrix.load(features_dir() / "train.npz")
    manifest = json.loads((features_dir() / "manifest.json").read_text())
    with tracked_run(context.resources.mlflow) as run:
        mlflow.log_params(
            {
                "model": "logistic_regression",
                "C": config.C,
                "max_iter": config.max_iter,
                "class_weight": "balanced",
                "min_count": manifest["min_count"],
                "features": len(train.features),
                "train_rows": train.X.shape[0],
                "dump_sha256": manifest["dump_sha256"],
            }
        )
        model = fit_pipeline(
            "logistic_regression",
            train.X,
            train.labels,
            train.features,
            C=config.C,
            max_iter=config.max_iter,
        )
        reference = fit_pipeline("reference_bernoulli_nb", train.X, train.labels, train.features)
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
        train_predicted, _ = predict_matrix(model, train.X)
        mlflow.log_metric("train_accuracy", float(np.mean(train_predicted == train.labels)))
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for key, value in {
            "dump_sha256": manifest["dump_sha256"],
            "train_rows": train.X.shape[0],
            "features": len(train.features),
            "reference_model_uri": reference_info.model_uri,
            "dagster_run_id": context.run.run_id,
        }.items():
            client.set_model_version_tag(MODEL_NAME, version, key, str(value))
        run_id = run.info.run_id
    context.log.info(f"registered {MODEL_NAME} v{version} (MLflow run {run_id})")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "mlflow_run_id": run_id,
            "model_uri": f"models:/{MODEL_NAME}/{version}",
            "reference_model_uri": reference_info.model_uri,
            "train_rows": int(train.X.shape[0]),
            "features": len(train.features),
        }
    )
