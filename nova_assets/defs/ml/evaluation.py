"""`evaluation_report`: the newest model on the fixed test split, beside its baselines."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import dagster as dg
import duckdb
import numpy as np
import pyarrow as pa
from scipy import sparse
from sklearn.pipeline import Pipeline

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.features import features_dir
from nova_assets.defs.ml.model import nova_model
from nova_assets.defs.resources import MlflowStore, Warehouse
from nova_assets.lib import evaluation as ev
from nova_assets.lib.features import FAMILIES, TagMatrix, labelled_rows_sql, tag_matrix
from nova_assets.lib.models import predict_matrix, reasons
from nova_assets.lib.paths import data_paths
from nova_assets.lib.registry import MODEL_NAME, champion_version, latest_version, load_pipeline

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


@dataclass
class Scored:
    """One pipeline's answers on the test rows, in its own vocabulary."""

    pipeline: Pipeline
    X: sparse.csr_matrix
    predicted: np.ndarray
    probability: np.ndarray


def _score(pipeline: Pipeline, test: TagMatrix, connect: Connect) -> Scored:
    """Predictions of one pipeline on the test rows, built in its own vocabulary."""
    features = list(pipeline.named_steps["tags"].features)
    if features == test.features:
        X = test.X
    else:
        with connect() as con:
            matrix = tag_matrix(con, labelled_rows_sql("test"), features)
        if not np.array_equal(matrix.codes, test.codes):
            raise RuntimeError(
                "the test rows in the warehouse differ from feature_matrix's: rematerialize it"
            )
        X = matrix.X
    predicted, probability = predict_matrix(pipeline, X)
    return Scored(pipeline, X, predicted, probability)


def _test_products(con: duckdb.DuckDBPyConnection, codes: np.ndarray) -> dict[str, np.ndarray]:
    """For the test rows (in `codes` order): their tag counts and (row, country) pairs."""
    con.register("eval_codes", pa.table({"row_id": np.arange(len(codes)), "code": codes}))
    try:
        counts = " + ".join(f"len(coalesce(p.{f}_tags, []))" for f in FAMILIES)
        tag_counts = con.execute(
            f"SELECT {counts} AS n FROM eval_codes c LEFT JOIN products p USING (code) "
            "ORDER BY c.row_id"
        ).fetchnumpy()["n"]
        pairs = con.execute(
            "SELECT row_id, country FROM ("
            "  SELECT c.row_id, unnest(p.countries_tags) AS country"
            "  FROM eval_codes c JOIN products p USING (code))"
            "WHERE country IS NOT NULL AND country <> ''"
        ).fetchnumpy()
    finally:
        con.unregister("eval_codes")
    return {
        "tag_counts": np.asarray(tag_counts, dtype=np.int64),
        "country_rows": np.asarray(pairs["row_id"], dtype=np.int64),
        "countries": np.asarray(pairs["country"], dtype=object),
    }


def _misclassified(
    con: duckdb.DuckDBPyConnection, test: TagMatrix, model: Scored
) -> dict[str, object]:
    """A few mistakes with the product's name, tags and the tags that pushed the model."""
    rows = ev.pick_misclassified(test.labels, model.predicted, model.probability)
    total = int(np.sum(test.labels != model.predicted))
    if len(rows) == 0:
        return {"total": total, "examples": []}
    codes = [str(test.codes[r]) for r in rows]
    found = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT code, product_name, ingredients_tags, additives_tags, categories_tags "
            "FROM products WHERE list_contains(?, code)",
            [codes],
        ).fetchall()
    }
    offsets, cols = reasons(model.pipeline, model.X[rows], model.predicted[rows])
    features = model.pipeline.named_steps["tags"].features
    examples = []
    for i, (row, code) in enumerate(zip(rows, codes, strict=True)):
        name, *tags = found.get(code, (None, [], [], []))
        examples.append(
            {
                "code": code,
                "product_name": name,
                "true": int(test.labels[row]),
                "predicted": int(model.predicted[row]),
                "probability": float(model.probability[row]),
                "reasons": [features[c] for c in cols[offsets[i] : offsets[i + 1]]],
                "tags": {f: ev.shorten_tags(t) for f, t in zip(FAMILIES, tags, strict=True)},
                "tag_counts": {f: len(t or []) for f, t in zip(FAMILIES, tags, strict=True)},
            }
        )
    return {"total": total, "examples": examples}


@dg.asset(
    deps=[nova_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    pool="duckdb",
    description="The newest model on the fixed test split: accuracy, macro-F1 and per-class "
    "metrics with bootstrap intervals, confusion matrix, beside the reference model, the "
    "majority baseline and the champion; accuracy by country and by number of tags; the tags "
    "that weigh most per group beside OFF's markers; misclassified examples. Written to "
    "data/reports/evaluation.{md,json,png} and logged to the model's MLflow run.",
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

    def score(model_uri: str) -> Scored:
        return _score(load_pipeline(mlflow_store.tracking_uri, model_uri), test, connect)

    majority = ev.majority_class(train.labels)
    scored = {
        "model": score(f"models:/{MODEL_NAME}/{version.version}"),
        "reference": score(tags["reference_model_uri"]),
    }
    predictions = {k: s.predicted for k, s in scored.items()}
    predictions["majority"] = np.full(len(test.labels), majority, dtype=np.int8)
    report = {
        "test_rows": int(test.X.shape[0]),
        "dump_sha256": tags.get("dump_sha256", ""),
        "model": {"name": f"model v{version.version}", "version": str(version.version)},
        "reference": {"name": "reference (ingredients + BernoulliNB)"},
        "majority": {"name": f"majority (always {majority})"},
        "champion": None,
    }
    champion = champion_version(client)
    if champion is not None and str(champion.version) != str(version.version):
        predictions["champion"] = score(f"models:/{MODEL_NAME}/{champion.version}").predicted
        report["champion"] = {
            "name": f"champion v{champion.version}",
            "version": str(champion.version),
        }
    bootstrap = ev.bootstrap_intervals(test.labels, predictions)
    for key, predicted in predictions.items():
        report[key].update(ev.classification_metrics(test.labels, predicted))
        report[key]["ci"] = bootstrap["models"][key]
    report["bootstrap"] = {k: v for k, v in bootstrap.items() if k != "models"}
    correct = {k: predictions[k] == test.labels for k in ("model", "reference")}
    with connect() as con:
        products = _test_products(con, test.codes)
        report["misclassified"] = _misclassified(con, test, scored["model"])
    report["by_country"] = {
        "top": ev.TOP_COUNTRIES,
        "rows": ev.accuracy_by_country(
            products["country_rows"], products["countries"], correct, ev.TOP_COUNTRIES
        ),
    }
    report["by_tag_count"] = {
        "edges": list(ev.TAG_COUNT_EDGES),
        "rows": ev.accuracy_by_bucket(products["tag_counts"], correct, ev.TAG_COUNT_EDGES),
    }
    report["top_features"] = ev.top_features(scored["model"].pipeline)

    directory = data_paths().reports
    files = ev.write_report(report, directory)
    model_ci = report["model"]["ci"]
    for name, value in (
        ("test_accuracy", report["model"]["accuracy"]),
        ("test_macro_f1", report["model"]["macro_f1"]),
    ):
        client.log_metric(version.run_id, name, value)
        client.set_model_version_tag(MODEL_NAME, version.version, name, f"{value:.6f}")
    for name, value in (
        ("reference_test_accuracy", report["reference"]["accuracy"]),
        ("reference_test_macro_f1", report["reference"]["macro_f1"]),
        ("test_macro_f1_ci_low", model_ci["macro_f1"][0]),
        ("test_macro_f1_ci_high", model_ci["macro_f1"][1]),
        ("test_accuracy_ci_low", model_ci["accuracy"][0]),
        ("test_accuracy_ci_high", model_ci["accuracy"][1]),
    ):
        client.log_metric(version.run_id, name, value)
    for path in files.values():
        client.log_artifact(version.run_id, str(path), artifact_path="evaluation")
    png = files["png"].read_bytes()
    context.log.info(
        f"model v{version.version}: accuracy {report['model']['accuracy']:.4f}, macro-F1 "
        f"{report['model']['macro_f1']:.4f} (95% CI {ev.format_interval(model_ci['macro_f1'], 4)}); "
        f"reference {report['reference']['accuracy']:.4f} / "
        f"{report['reference']['macro_f1']:.4f}; report in {directory}"
    )
    markers = {
        g: entry["markers"]
        for g, entry in report["top_features"]["groups"].items()
        if entry["predicted"]
    }
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(ev.report_markdown(report, png)),
            "model_version": str(version.version),
            "accuracy": report["model"]["accuracy"],
            "macro_f1": report["model"]["macro_f1"],
            "macro_f1_ci": ev.format_interval(model_ci["macro_f1"], 4),
            "reference_accuracy": report["reference"]["accuracy"],
            "reference_macro_f1": report["reference"]["macro_f1"],
            "majority_accuracy": report["majority"]["accuracy"],
            "test_rows": report["test_rows"],
            "misclassified": report["misclassified"]["total"],
            "top10_known_markers": dg.MetadataValue.json(markers),
            "path": dg.MetadataValue.path(str(files["md"])),
        }
    )
