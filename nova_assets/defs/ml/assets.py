"""The model side: features, the tracked classifier, its evaluation, the champion, predictions."""

import json
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
from mlflow.models import infer_signature

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ingest.assets import latest_dump
from nova_assets.defs.resources import MlflowStore, Warehouse, tracked_run
from nova_assets.defs.warehouse.assets import products, test_split
from nova_assets.lib import evaluation as ev
from nova_assets.lib.features import (
    FAMILIES,
    TagMatrix,
    build_vocabulary,
    labelled_rows_sql,
    tag_matrix,
)
from nova_assets.lib.models import TRUSTED_TYPES, example_input, fit_pipeline, predict_matrix
from nova_assets.lib.paths import data_paths
from nova_assets.lib.predictions import write_predictions
from nova_assets.lib.registry import (
    CHAMPION,
    MODEL_NAME,
    champion_version,
    latest_version,
    load_pipeline,
)


def _features_dir() -> Path:
    return data_paths().features


class FeatureConfig(dg.Config):
    min_count: int = 2
    """A tag becomes a feature only if at least this many training products carry it."""


@dg.asset(
    deps=[products, test_split],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "numpy"},
    pool="duckdb",
    description="Vocabulary of ingredients/additives/categories tags learned on train rows only "
    "(DuckDB feature_vocabulary), and sparse multi-hot train and test matrices in data/features/.",
)
def feature_matrix(
    context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    dump = latest_dump()
    with warehouse.connect(publish=["feature_vocabulary"]) as con:
        features = build_vocabulary(con, config.min_count)
        train = tag_matrix(con, labelled_rows_sql("train"), features)
        test = tag_matrix(con, labelled_rows_sql("test"), features)
    if train.X.shape[0] == 0 or not features:
        raise ValueError("no labelled training products with tags: cannot build features")
    directory = _features_dir()
    train.save(directory / "train.npz")
    test.save(directory / "test.npz")
    per_family = {f: sum(1 for x in features if x.startswith(f + ":")) for f in FAMILIES}
    manifest = {
        "dump_sha256": dump.sha256,
        "min_count": config.min_count,
        "features": len(features),
        "features_per_family": per_family,
        "train_rows": int(train.X.shape[0]),
        "test_rows": int(test.X.shape[0]),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    context.log.info(
        f"features: {len(features)} ({per_family}); train {train.X.shape[0]}, test {test.X.shape[0]}"
    )
    return dg.MaterializeResult(
        metadata={
            **{f"features_{k}": v for k, v in per_family.items()},
            "features": len(features),
            "train_rows": int(train.X.shape[0]),
            "test_rows": int(test.X.shape[0]),
            "train_nonzeros": int(train.X.nnz),
            "min_count": config.min_count,
            "path": dg.MetadataValue.path(str(directory)),
        },
        data_version=dg.DataVersion(f"{dump.sha256}-{config.min_count}"),
    )


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
    train = TagMatrix.load(_features_dir() / "train.npz")
    manifest = json.loads((_features_dir() / "manifest.json").read_text())
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


def _evaluate(pipeline, test: TagMatrix, con_factory) -> dict:
    """Metrics of one pipeline on the test rows, built in its own vocabulary."""
    features = list(pipeline.named_steps["tags"].features)
    if features == test.features:
        X = test.X
    else:
        with con_factory() as con:
            matrix = tag_matrix(con, labelled_rows_sql("test"), features)
        if not np.array_equal(matrix.codes, test.codes):
            raise RuntimeError(
                "the test rows in the warehouse differ from feature_matrix's: rematerialize it"
            )
        X = matrix.X
    predicted, _ = predict_matrix(pipeline, X)
    return ev.classification_metrics(test.labels, predicted)


@dg.asset(
    deps=[nova_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    pool="duckdb",
    description="The newest model on the fixed test split: accuracy, macro-F1, per-class metrics "
    "and confusion matrix, beside the reference model, the majority baseline and the champion. "
    "Written to data/reports/evaluation.{md,json,png} and logged to the model's MLflow run.",
)
def evaluation_report(
    context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore
) -> dg.MaterializeResult:
    client = mlflow_store.client()
    version = latest_version(client)
    if version is None:
        raise RuntimeError(
            f"no version of {MODEL_NAME} is registered: materialize nova_model first"
        )
    train = TagMatrix.load(_features_dir() / "train.npz")
    test = TagMatrix.load(_features_dir() / "test.npz")
    if test.X.shape[0] == 0:
        raise ValueError("the test split has no labelled product: cannot evaluate")
    tags = version.tags

    def connect():
        return warehouse.connect(read_only=True)

    def evaluate(model_uri: str) -> dict:
        return _evaluate(load_pipeline(mlflow_store.tracking_uri, model_uri), test, connect)

    majority = ev.majority_class(train.labels)
    report = {
        "test_rows": int(test.X.shape[0]),
        "dump_sha256": tags.get("dump_sha256", ""),
        "model": {
            "name": f"model v{version.version}",
            "version": str(version.version),
            **evaluate(f"models:/{MODEL_NAME}/{version.version}"),
        },
        "reference": {
            "name": "reference (ingredients + BernoulliNB)",
            **evaluate(tags["reference_model_uri"]),
        },
        "majority": {
            "name": f"majority (always {majority})",
            **ev.classification_metrics(test.labels, np.full(len(test.labels), majority)),
        },
        "champion": None,
    }
    champion = champion_version(client)
    if champion is not None and str(champion.version) != str(version.version):
        report["champion"] = {
            "name": f"champion v{champion.version}",
            "version": str(champion.version),
            **evaluate(f"models:/{MODEL_NAME}/{champion.version}"),
        }
    directory = data_paths().reports
    files = ev.write_report(report, directory)
    for name, value in (
        ("test_accuracy", report["model"]["accuracy"]),
        ("test_macro_f1", report["model"]["macro_f1"]),
    ):
        client.log_metric(version.run_id, name, value)
        client.set_model_version_tag(MODEL_NAME, version.version, name, f"{value:.6f}")
    client.log_metric(version.run_id, "reference_test_accuracy", report["reference"]["accuracy"])
    client.log_metric(version.run_id, "reference_test_macro_f1", report["reference"]["macro_f1"])
    for path in files.values():
        client.log_artifact(version.run_id, str(path), artifact_path="evaluation")
    png = files["png"].read_bytes()
    context.log.info(
        f"model v{version.version}: accuracy {report['model']['accuracy']:.4f}, macro-F1 "
        f"{report['model']['macro_f1']:.4f}; reference {report['reference']['accuracy']:.4f} / "
        f"{report['reference']['macro_f1']:.4f}; report in {directory}"
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(ev.report_markdown(report, png)),
            "model_version": str(version.version),
            "accuracy": report["model"]["accuracy"],
            "macro_f1": report["model"]["macro_f1"],
            "reference_accuracy": report["reference"]["accuracy"],
            "reference_macro_f1": report["reference"]["macro_f1"],
            "majority_accuracy": report["majority"]["accuracy"],
            "test_rows": report["test_rows"],
            "path": dg.MetadataValue.path(str(files["md"])),
        }
    )


@dg.asset(
    deps=[evaluation_report],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"mlflow"},
    description=f"The MLflow alias '{CHAMPION}' on {MODEL_NAME}: moved to the newest version only "
    "if it beats the current champion's macro-F1 on the same test split (the first model wins).",
)
def champion_model(
    context: dg.AssetExecutionContext, mlflow_store: MlflowStore
) -> dg.MaterializeResult:
    client = mlflow_store.client()
    report = ev.read_report(data_paths().reports)
    newest = latest_version(client)
    if newest is None or str(newest.version) != report["model"]["version"]:
        raise RuntimeError(
            f"the evaluation report is for v{report['model']['version']} but the newest version is "
            f"v{newest.version if newest else 'none'}: rematerialize evaluation_report"
        )
    promote, reason = ev.promotion_decision(report)
    if promote:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, newest.version)
    champion = champion_version(client)
    context.log.info(("promoted: " if promote else "kept: ") + reason)
    return dg.MaterializeResult(
        metadata={
            "action": "promoted" if promote else "kept",
            "reason": reason,
            "champion_version": str(champion.version) if champion else "none",
            "candidate_version": str(newest.version),
            "candidate_macro_f1": report["model"]["macro_f1"],
        }
    )


@dg.asset(
    deps=[champion_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "sklearn"},
    pool="duckdb",
    description="The champion's NOVA group and its probability for every product that has "
    "ingredients but no nova_group, with the model version that made it.",
)
def nova_predictions(
    context: dg.AssetExecutionContext, warehouse: Warehouse, mlflow_store: MlflowStore
) -> dg.MaterializeResult:
    champion = champion_version(mlflow_store.client())
    if champion is None:
        raise RuntimeError(
            f"{MODEL_NAME} has no '{CHAMPION}' alias: materialize champion_model first"
        )
    pipeline = load_pipeline(mlflow_store.tracking_uri, f"models:/{MODEL_NAME}@{CHAMPION}")
    with warehouse.connect(publish=["nova_predictions"]) as con:
        stats = write_predictions(con, pipeline, int(champion.version))
    paths = data_paths()
    context.log.info(
        f"{stats.rows:,} predictions by champion v{champion.version} in {stats.batches} batches "
        f"({stats.rows_per_second:,.0f} rows/s). Results: warehouse "
        f"{paths.warehouse} (tables products, test_split, feature_vocabulary, nova_predictions, dumps), "
        f"published read-only for queries in {paths.serving / 'nova.duckdb'}; "
        f"report {paths.reports / 'evaluation.md'}; MLflow store {mlflow_store.tracking_uri}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stats.rows,
            "model_version": str(champion.version),
            **{f"predicted_group_{g}": n for g, n in stats.by_group.items()},
            "mean_probability": stats.mean_probability,
            "rows_per_second": round(stats.rows_per_second),
            "warehouse": dg.MetadataValue.path(str(paths.warehouse)),
        }
    )
