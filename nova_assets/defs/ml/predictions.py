"""`nova_predictions`: the champion's group for every product that has none."""

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ml.champion import champion_model
from nova_assets.defs.resources import MlflowStore, Warehouse
from nova_assets.lib.paths import data_paths
from nova_assets.lib.predictions import write_predictions
from nova_assets.lib.registry import CHAMPION, MODEL_NAME, champion_version, load_pipeline


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
    # By version, not by alias: the rows must carry the version that really scored them, even
    # if someone moves the alias meanwhile.
    pipeline = load_pipeline(mlflow_store.tracking_uri, f"models:/{MODEL_NAME}/{champion.version}")
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
