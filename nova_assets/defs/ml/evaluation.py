"""`evaluation_report`: the newest model on the fixed test split as it is and with evidence
hidden, beside OFF's rules, the reference, the majority baseline and the champion."""

from typing import TYPE_CHECKING

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.metadata import rounded, unchanged
from nova_assets.defs.ml.model import nova_model
from nova_assets.defs.resources import DataDir, MlflowStore, Warehouse
from nova_assets.lib.builds import Build
from nova_assets.lib.evaluation.report_files import report_files
from nova_assets.lib.markdown import interval
from nova_assets.lib.ml.manifest import FeatureManifest
from nova_assets.lib.ml.registry import (
    EVALUATED_BESIDE,
    MODEL_NAME,
    champion_version,
    latest_version,
    rival,
    takes_current_input,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from nova_assets.lib.evaluation.evaluate import Contender


def _contenders(
    store: MlflowStore, version: "ModelVersion", champion: "ModelVersion | None"
) -> tuple[list["Contender"], str | None]:
    """The model, its reference and the champion it is scored beside (`registry.rival`), unless
    that takes an input of older code and cannot be scored: then the second value says so."""
    from nova_assets.lib.evaluation.evaluate import Contender

    def registered(key: str, v: "ModelVersion") -> Contender:
        return Contender(
            key,
            f"{key} v{v.version}",
            store.pipeline(f"models:/{MODEL_NAME}/{v.version}"),
            str(v.version),
        )

    contenders = [
        registered("model", version),
        Contender(
            "reference",
            "reference (ingredients + BernoulliNB)",
            store.pipeline(version.tags["reference_model_uri"]),
        ),
    ]
    if champion is None:
        return contenders, None
    if not takes_current_input(champion):
        return contenders, f"champion v{champion.version}, which takes an older input"
    return [*contenders, registered("champion", champion)], None


@dg.asset(
    deps=[nova_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    pool="duckdb",
    description="The newest model on the fixed test split as it is and with evidence hidden as "
    "OFF's blank products lack it (categories, ingredients, half the ingredients, additives, all "
    "but the name): accuracy, macro-F1, per-group F1 with bootstrap intervals, calibration "
    "error, coverage and precision at the thresholds, beside OFF's rules, the reference, the "
    "majority and the champion; the mix weighted like the unlabelled products. Written to "
    "data/reports/ and logged to the model's MLflow run.",
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    mlflow_store: MlflowStore,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    from nova_assets.lib.evaluation import report as rp
    from nova_assets.lib.evaluation.evaluate import build_report, in_vocabulary
    from nova_assets.lib.ml.feature_matrix import ProductMatrix
    from nova_assets.lib.ml.metrics import majority_baseline
    from nova_assets.lib.ml.tracking import log_evaluation

    client = mlflow_store.client()
    version = latest_version(client)
    if version is None:
        raise RuntimeError(
            f"no version of {MODEL_NAME} is registered: materialize nova_model first"
        )
    # Once the model is champion, still the one it was first scored beside: an unchanged rerun
    # after a promotion keeps the report, its comparison row included.
    beside = rival(client, version, champion_version(client))
    features, reports = data_dir.paths.features, data_dir.paths.reports
    manifest = FeatureManifest.read(features)
    build = Build.of(
        "evaluation_report",
        warehouse.built_as,
        outputs=report_files(reports),
        model=version.version,
        champion=beside and beside.version,  # the champion scored beside the model
        features=[manifest.dump_sha256, manifest.min_count],
    )
    if build.done:
        return unchanged(f"v{version.version} already evaluated against the same champion")
    test = ProductMatrix.load(features / "test.npz")
    if len(test) == 0:
        raise ValueError("the test split has no labelled product: cannot evaluate")
    majority = majority_baseline(ProductMatrix.load_labels(features / "train.npz"))
    contenders, skipped = _contenders(mlflow_store, version, beside)
    with warehouse.connect(read_only=True, scan=True) as con:
        matrices = {c.key: in_vocabulary(con, c.pipeline, test) for c in contenders}
        report = build_report(contenders, matrices, majority, manifest.slice_weights, con)
    report.update(dump_sha256=version.tags.get("dump_sha256", ""), champion_skipped=skipped)
    files = rp.write_report(report, reports)
    log_evaluation(client, version, report, files)
    if beside is not None:
        client.set_model_version_tag(MODEL_NAME, version.version, EVALUATED_BESIDE, beside.version)
    with warehouse.connect() as con:
        build.record(con)
    model, rules = report["model"], report["rules"]
    context.log.info(
        f"model v{version.version}: mix macro-F1 {model['macro_f1']:.4f} (OFF's rules "
        f"{rules['macro_f1']:.4f}, reference {report['reference']['macro_f1']:.4f}); "
        + "; ".join(f"{n} {e['model']['macro_f1']:.3f}" for n, e in report["slices"].items())
        + f". Report in {files['md'].parent}"
    )
    return dg.MaterializeResult(metadata=_metadata(report, files))


def _metadata(report: dict, files: dict) -> dict:
    from nova_assets.lib.evaluation.report import report_markdown

    images = {k: files[k].read_bytes() for k in ("png", "reliability")}
    as_is = report["slices"]["as_is"]["model"]
    return rounded(
        {
            "status": "evaluated",
            "report": dg.MetadataValue.md(report_markdown(report, images)),
            "model_version": report["model"]["version"],
            "macro_f1": report["model"]["macro_f1"],
            "accuracy": report["model"]["accuracy"],
            "rules_macro_f1": report["rules"]["macro_f1"],
            "reference_macro_f1": report["reference"]["macro_f1"],
            "majority_macro_f1": report["majority"]["macro_f1"],
            **{f"macro_f1_{n}": e["model"]["macro_f1"] for n, e in report["slices"].items()},
            **{f"ece_{n}": e["model"]["ece"] for n, e in report["slices"].items()},
            "as_is_macro_f1_ci": interval((as_is.get("ci") or {}).get("macro_f1"), 4),
            "test_rows": report["test_rows"],
            "slice_weights": dg.MetadataValue.json(report["weights"]),
            "path": dg.MetadataValue.path(str(files["md"])),
        }
    )
