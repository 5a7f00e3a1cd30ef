"""`evaluation_report`: the newest model on the fixed test split, beside its baselines."""

import dagster as dg
import numpy as np

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.features import features_dir
from nova_assets.defs.ml.model import nova_model
from nova_assets.defs.resources import MlflowStore, Warehouse
from nova_assets.lib import evaluation as ev
from nova_assets.lib.features import TagMatrix, labelled_rows_sql, tag_matrix
from nova_assets.lib.models import predict_matrix
from nova_assets.lib.paths import data_paths
from nova_assets.lib.registry import MODEL_NAME, champion_version, latest_version, load_pipeline


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
    train = TagMatrix.load(features_dir() / "train.npz")
    test = TagMatrix.load(features_dir() / "test.npz")
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
