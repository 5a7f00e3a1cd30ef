"""`nova_model`: the tracked, registered classifier."""

from typing import TYPE_CHECKING

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.metadata import rounded, unchanged
from nova_assets.defs.ml.features import feature_matrix
from nova_assets.defs.resources import DataDir, MlflowStore, ModelCluster
from nova_assets.lib.ml.calibration import GROUP_1_PRECISION, PRECISION_TARGET
from nova_assets.lib.ml.manifest import FeatureManifest
from nova_assets.lib.ml.registry import CHALLENGER, MODEL_NAME, version_trained_as
from nova_assets.lib.warehouse.split import validation_mask

if TYPE_CHECKING:
    from nova_assets.lib.ml.feature_matrix import ProductMatrix
    from nova_assets.lib.ml.tracking import Registered
    from nova_assets.lib.ml.training import Trained

DEFAULT_CANDIDATES = [
    "reference_bernoulli_nb",
    "marker_logistic_regression",
    "evidence_logistic_regression",
]


class ModelConfig(dg.Config):
    candidates: list[str] = DEFAULT_CANDIDATES
    """Model kinds to compare on the validation rows; the best becomes the model."""
    C: list[float] = [0.3, 1.0]
    """Inverse regularisation strengths tried for the logistic regressions."""
    alpha: list[float] = [0.1, 1.0]
    """Smoothing tried for the naive Bayes reference."""
    max_depth: list[int] = [12, 24]
    """Depths tried for the decision tree."""
    validation_percent: int = 20
    """Share of the training rows (by a stable hash of the code; the real products of
    data/real/ too) held out to choose, calibrate and set the thresholds of the model."""
    tuning_rows: int = 30_000
    """At most this many rows fit each trial (a fixed random subset of the training rows)."""
    fit_rows: int = 150_000
    """At most this many rows fit the chosen setting afterwards: past a hundred thousand or so,
    more rows change the answers little and cost minutes."""
    validation_rows: int = 60_000
    """At most this many validation rows (a fixed random subset) calibrate and score each trial
    and calibrate the chosen model: a thousand of the rarest group, at OFF's shares."""
    max_iter: int = 2000
    """Iterations allowed to the logistic regressions' solver."""
    workers: int = 0
    """Processes fitting the trials (and the two refits) side by side, one core each; 0: one
    per core of the machine. The choice is the same for any number. With RAY_ADDRESS set, the
    fits are tasks of that Ray cluster instead, as many at a time as it has cores."""
    precision_target: float = PRECISION_TARGET
    """An answer is `confident` when its probability clears its group's threshold, chosen on
    validation rows so that such answers are right this often, 95 % surely (the lower bound of
    their precision reaches it)."""
    group_1_precision: float = GROUP_1_PRECISION
    """Group 1 ("unprocessed") is only answered where, on validation rows with the same
    evidence, such answers were right this often; 0 (default): wherever the experts say it."""


@dg.asset(
    deps=[feature_matrix],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"sklearn", "mlflow"},
    description="A scikit-learn Pipeline (raw products in, NOVA group out): the best candidate "
    "(reference naive Bayes, a logistic regression with OFF's markers, one logistic regression "
    "per evidence state trained with evidence hidden, reading product names too) on validation "
    "rows with evidence hidden like the unlabelled products; calibrated there with per-group "
    f"thresholds; logged with every trial to MLflow and registered as {MODEL_NAME} "
    f"('{CHALLENGER}').",
)
def nova_model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    mlflow_store: MlflowStore,
    data_dir: DataDir,
    model_cluster: ModelCluster,
) -> dg.MaterializeResult:
    from nova_assets.lib.ml.candidates import MODEL_KINDS
    from nova_assets.lib.ml.feature_matrix import ProductMatrix
    from nova_assets.lib.ml.tracking import log_trial, register, training_fingerprint
    from nova_assets.lib.ml.training import Calibration, train

    unknown = sorted(set(config.candidates) - set(MODEL_KINDS))
    if unknown or not config.candidates:
        raise ValueError(
            f"unknown or no candidate model(s) {unknown}; choose from {', '.join(MODEL_KINDS)}"
        )
    matrix = ProductMatrix.load(data_dir.paths.features / "train.npz")
    manifest = FeatureManifest.read(data_dir.paths.features)
    grids = {"C": config.C, "alpha": config.alpha, "max_depth": config.max_depth}
    fingerprint = training_fingerprint(config.model_dump(), manifest)
    same = version_trained_as(mlflow_store.client(), fingerprint)
    if same is not None:
        context.log.info(
            f"{MODEL_NAME} v{same.version} was trained from the same dump, "
            "features, settings and code: nothing to train"
        )
        return unchanged(
            f"same dump, settings and code as v{same.version}",
            model_version=same.version,
            model_uri=f"models:/{MODEL_NAME}/{same.version}",
        )
    with mlflow_store.training_run(context) as run, model_cluster.cluster().session() as cluster:
        mlflow_params(config, grids, manifest, len(matrix))
        trained = train(
            config.candidates,
            {**grids, "max_iter": [config.max_iter]},
            matrix,
            validation_mask(matrix.codes, config.validation_percent),
            manifest.slice_weights,
            tuning_rows=config.tuning_rows,
            fit_rows=config.fit_rows,
            validation_rows=config.validation_rows,
            calibration=Calibration(config.precision_target, config.group_1_precision),
            on_trial=log_trial,
            workers=config.workers or cluster.cores(),
            cluster=cluster,
        )
        registered = register(trained, manifest, matrix, context.run.run_id, fingerprint)
    chosen = trained.chosen
    context.log.info(
        f"registered {MODEL_NAME} v{registered.version} ({chosen.kind} {chosen.params}, "
        f"validation mix macro-F1 {chosen.macro_f1:.4f}; MLflow run {run.info.run_id})"
    )
    return dg.MaterializeResult(
        metadata=_trained_metadata(trained, registered, matrix, mlflow_store.run_url(run), run)
    )


def _trained_metadata(
    trained: "Trained", registered: "Registered", matrix: "ProductMatrix", run_url: str, run
) -> dict:
    from nova_assets.lib.ml.training import trials_table

    chosen = trained.chosen
    return rounded(
        {
            "status": "trained",
            "model_version": registered.version,
            "model_kind": chosen.kind,
            "model_params": chosen.params,
            "validation_macro_f1": chosen.macro_f1,
            "validation_accuracy": chosen.accuracy,
            "refit_seconds": round(trained.refit_seconds, 2),
            "fit_rows": trained.fit_rows,
            "trials": dg.MetadataValue.md(trials_table(trained)),
            "mlflow_run_id": run.info.run_id,
            "mlflow_run": dg.MetadataValue.url(run_url),
            "model_uri": f"models:/{MODEL_NAME}/{registered.version}",
            "reference_model_uri": registered.reference_uri,
            "train_rows": len(matrix),
            "features": len(matrix.features),
        }
    )


def mlflow_params(config: ModelConfig, grids: dict, manifest: FeatureManifest, rows: int) -> None:
    import mlflow

    mlflow.log_params(
        {
            "candidates": ",".join(config.candidates),
            **{f"grid_{k}": ",".join(map(str, v)) for k, v in grids.items()},
            "validation_percent": config.validation_percent,
            "tuning_rows": config.tuning_rows,
            "fit_rows": config.fit_rows,
            "validation_rows": config.validation_rows,
            "precision_target": config.precision_target,
            "group_1_precision": config.group_1_precision,
            "min_count": manifest.min_count,
            "features": manifest.features,
            "train_rows": rows,
            "dump_sha256": manifest.dump_sha256,
            **{f"weight_{k}": round(v, 4) for k, v in manifest.slice_weights.items()},
        }
    )
