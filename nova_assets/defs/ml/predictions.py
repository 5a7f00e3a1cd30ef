"""`nova_predictions`: the champion's group for every food product OFF left without one."""

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.metadata import rounded, unchanged
from nova_assets.defs.ml.champion import champion_model
from nova_assets.defs.resources import DataDir, MlflowStore, Warehouse
from nova_assets.lib.builds import Build
from nova_assets.lib.ingest.dump_pointers import latest_dump
from nova_assets.lib.markdown import table
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, champion_version


@dg.asset(
    deps=[champion_model],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "sklearn"},
    pool="duckdb",
    description="For every food product OFF left without a nova_group that has ingredients, "
    "categories or a name: the champion's group, its calibrated probability, whether it clears "
    "the precision threshold (confident), the evidence it had, why OFF left it blank, the model "
    "version and the tags behind the answer.",
)
def nova_predictions(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    mlflow_store: MlflowStore,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    from nova_assets.lib.ml.batch_predictions import coverage_by_reason, write_predictions

    paths = data_dir.paths
    champion = champion_version(mlflow_store.client())
    if champion is None:
        raise RuntimeError(
            f"{MODEL_NAME} has no '{CHAMPION}' alias: materialize champion_model first"
        )
    build = Build.of(
        "nova_predictions",
        warehouse.built_as,
        model=champion.version,
        dump_sha256=latest_dump(paths).sha256,
    )
    if build.done:
        return unchanged(f"this dump's products already scored by champion v{champion.version}")
    # By version, not by alias: the rows must carry the version that really scored them, even
    # if someone moves the alias meanwhile.
    pipeline = mlflow_store.pipeline(f"models:/{MODEL_NAME}/{champion.version}")
    with warehouse.connect(publish=["nova_predictions"], scan=True) as con:
        stats = write_predictions(con, pipeline, int(champion.version))
        build.record(con)
        coverage = coverage_by_reason(con)
    context.log.info(
        f"{stats.rows:,} predictions by champion v{champion.version}, {stats.confident:,} "
        f"confident, in {stats.batches} batches ({stats.rows_per_second:,.0f} rows/s). Results: "
        f"warehouse {paths.warehouse} (tables products, test_split, feature_vocabulary, "
        f"nova_predictions, dumps), published read-only for queries in "
        f"{paths.serving / 'nova.duckdb'}; report {paths.reports / 'evaluation.md'}; MLflow store "
        f"{mlflow_store.tracking_uri}"
    )
    rows = [[reason, f"{n:,}", f"{share:.0%}", f"{p:.2f}"] for reason, n, share, p in coverage]
    return dg.MaterializeResult(
        metadata=rounded(
            {
                "status": "scored",
                "dagster/row_count": stats.rows,
                "model_version": str(champion.version),
                **{f"predicted_group_{g}": n for g, n in stats.by_group.items()},
                "confident": stats.confident,
                "mean_probability": stats.mean_probability,
                "coverage_by_reason": dg.MetadataValue.md(
                    "\n".join(
                        table(
                            ["why OFF left it blank", "products", "confident", "mean probability"],
                            rows,
                        )
                    )
                ),
                "rows_per_second": round(stats.rows_per_second),
                "warehouse": dg.MetadataValue.path(str(paths.warehouse)),
            }
        )
    )
