"""`nova_drift`: what changed between the newest dump and the previous one, and its check."""

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump, runs_with_its_asset
from nova_assets.defs.metadata import rounded, setting, unchanged
from nova_assets.defs.ml.champion import champion_model
from nova_assets.defs.resources import DataDir, MlflowStore, Warehouse
from nova_assets.defs.warehouse.assets import products
from nova_assets.lib.builds import Build
from nova_assets.lib.drift.history import history, measured
from nova_assets.lib.drift.report import Thresholds, breaches, drift_markdown, summary
from nova_assets.lib.ingest.dump_pointers import latest_dump
from nova_assets.lib.ml.registry import MODEL_NAME, champion_version


class DriftConfig(dg.Config):
    min_count: int = 2
    """A tag is vocabulary when at least this many products carry it (as in feature_matrix)."""


class DriftThresholds(dg.Config):
    """Past any of these the check warns; each is a share from 0 to 1."""

    max_class_share_distance: float = Thresholds.class_share_distance
    """Total variation distance between the two dumps' class shares among labelled products."""
    max_vocabulary_change_share: float = Thresholds.vocabulary_change_share
    """New plus vanished tags, over the tags of either dump's vocabulary."""
    max_changed_label_share: float = Thresholds.changed_label_share
    """Products whose group changed, over those labelled in both dumps."""


# Numeric figures logged when a dump is measured (again only if the champion or min_count
# changed): Dagster's Plots tab draws them across dumps.
PLOTTED = (
    "labelled_share",
    "share_1",
    "share_2",
    "share_3",
    "share_4",
    "vocabulary",
    "class_share_distance",
    "labelled_share_change",
    "new_vocabulary",
    "vanished_vocabulary",
    "vocabulary_change_share",
    "changed_labels",
    "changed_label_share",
    "champion_accuracy",
    "champion_test_accuracy",
)


@dg.asset(
    # After champion_model, so the model scored on changed labels is a defined one: the
    # champion that serves this dump's predictions, once the promotion decision is made.
    deps=[products, champion_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "mlflow"},
    pool="duckdb",
    description="The newest dump against the previous one measured: class shares among "
    "labelled products (total variation distance), new and vanished ingredients/additives/"
    "categories tags, products whose NOVA group changed and the champion's accuracy on them. "
    "One row per dump in DuckDB nova_drift (published); plots across dumps in the metadata.",
)
def nova_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    warehouse: Warehouse,
    mlflow_store: MlflowStore,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    from nova_assets.lib.drift import measure as dr

    version = champion_version(mlflow_store.client())
    sha256 = latest_dump(data_dir.paths).sha256
    build = Build.of(
        "nova_drift",
        warehouse.built_as,
        dump_sha256=sha256,
        min_count=config.min_count,
        champion=version and version.version,
    )
    if build.done:
        return unchanged(f"dump {sha256[:12]} already measured", sha256)

    def champion() -> dr.Champion | None:
        if version is None:
            return None
        uri = f"models:/{MODEL_NAME}/{version.version}"
        return dr.Champion(str(version.version), mlflow_store.pipeline(uri))

    with warehouse.connect(publish=["nova_drift"], scan=True) as con:
        drift = dr.update_drift(con, min_count=config.min_count, champion=champion)
        build.record(con)
        past = history(con)
    figures = drift.figures()
    previous = figures["previous_sha256"]
    text = summary(drift)
    context.log.info(f"drift of {drift.current.dump_sha256[:12]}: {text}")
    return dg.MaterializeResult(
        metadata=rounded(
            {
                "status": "measured",
                "summary": text,
                "dump_sha256": drift.current.dump_sha256,
                "previous_dump_sha256": previous or "none",
                "champion": drift.champion_note
                or f"v{figures['champion_version']} on {figures['champion_rows']:,} changed labels",
                **{k: figures[k] for k in PLOTTED if figures[k] is not None},
                "min_count": setting(config.min_count),
                "drift": dg.MetadataValue.md(drift_markdown(drift, past)),
            }
        ),
        data_version=dg.DataVersion(drift.current.dump_sha256),
    )


@dg.asset_check(
    asset=nova_drift,
    automation_condition=runs_with_its_asset(),
    blocking=False,
    pool="duckdb",
    description="Warns when the newest dump drifts from the previous one past a threshold: class "
    "shares (total variation distance > 0.05), vocabulary (> 20% of tags new or vanished) or "
    "labels (> 5% of products labelled in both changed group). Passes on the first dump.",
)
def nova_drift_within_threshold(
    config: DriftThresholds, warehouse: Warehouse
) -> dg.AssetCheckResult:
    thresholds = Thresholds(
        config.max_class_share_distance,
        config.max_vocabulary_change_share,
        config.max_changed_label_share,
    )
    limits = {f"max_{k}": v for k, v in thresholds.__dict__.items()}
    with warehouse.connect(read_only=True) as con:
        figures = measured(con)
    if figures is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="nova_drift has not measured the dump products holds: materialize it",
            metadata=limits,
        )
    past = breaches(figures, thresholds)
    if figures["previous_sha256"] is None:
        description = "no previous dump: nothing to compare"
    else:
        description = (
            "drift past threshold: " + "; ".join(past) if past else "within every threshold"
        )
    return dg.AssetCheckResult(
        passed=not past,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=rounded(
            {
                "dump_sha256": figures["dump_sha256"],
                "previous_dump_sha256": figures["previous_sha256"] or "none",
                **{
                    k: figures[k]
                    for k in (
                        "class_share_distance",
                        "vocabulary_change_share",
                        "new_vocabulary",
                        "vanished_vocabulary",
                        "changed_label_share",
                        "changed_labels",
                    )
                    if figures[k] is not None
                },
                **limits,
            }
        ),
    )
