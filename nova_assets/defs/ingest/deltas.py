"""`apply_deltas` and `new_delta_sensor`: OFF's daily deltas applied on top of the full dump.

A delta updates `products`, `test_split` and `nova_predictions` in place (lib/warehouse/delta_apply.py);
it is not a new dump, so nothing downstream is retrained: the job reports what each delta did
as observations of `products` and `nova_predictions`, which start no automation, and retraining
stays with the full dump and its schedule.
"""

import json

import dagster as dg

from nova_assets.defs.resources import DeltaSource, MlflowStore, Warehouse
from nova_assets.lib.ingest.delta_files import DeltaError, choose_deltas, utc
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, champion_version
from nova_assets.lib.paths import sensor_interval_seconds
from nova_assets.lib.warehouse.delta_apply import DeltaStats, Rescorer, apply_delta, tables_state

PUBLISHED = ["products", "test_split", "nova_predictions", "deltas"]
"""Swapped into the served copy once per delta applied."""


def _champion_rescorer(mlflow_store: MlflowStore) -> tuple[Rescorer, str]:
    """Rescoring with the current champion, by version (the rows carry the version that scored
    them even if the alias moves meanwhile)."""
    from nova_assets.lib.ml.batch_predictions import rescore_codes

    champion = champion_version(mlflow_store.client())
    if champion is None:
        raise dg.Failure(
            f"{MODEL_NAME} has no '{CHAMPION}' alias: materialize champion_model first"
        )
    pipeline = mlflow_store.pipeline(f"models:/{MODEL_NAME}/{champion.version}")
    version = int(champion.version)
    return (lambda con, codes: rescore_codes(con, pipeline, version, codes)), str(version)


def _observations(
    stats: DeltaStats, model_version: str, archived: str
) -> list[dg.AssetObservation]:
    """What one delta did, on the assets it changed in place (not materializations: the model
    and features follow full dumps only)."""
    common = {"delta": stats.name, "as_of": utc(stats.as_of)}
    return [
        dg.AssetObservation(
            asset_key="products",
            metadata={
                **common,
                "delta_documents": stats.documents,
                "upserted": stats.products,
                "new_products": stats.new_products,
                "stale_documents": stats.stale_documents,
                "archived": archived,
            },
        ),
        dg.AssetObservation(
            asset_key="nova_predictions",
            metadata={**common, "rescored": stats.predictions, "model_version": model_version},
        ),
    ]


@dg.op(
    pool="duckdb",
    description="Applies every OFF delta NOVA_DELTA_URL lists that is newer than the tables, "
    "oldest first, each exactly once and whole: products upserted by code, new codes split, "
    "their predictions recomputed by the champion, the served copy swapped once per delta. "
    "Fails, applying nothing, when the tables are older than every delta listed (take the full "
    "export), and stops at the first bad delta. Each delta brought in is copied to "
    "NOVA_OBJECT_STORE's raw/deltas/, if set.",
)
def apply_new_deltas(
    context: dg.OpExecutionContext,
    delta_source: DeltaSource,
    warehouse: Warehouse,
    mlflow_store: MlflowStore,
) -> dg.Output[int]:
    if not delta_source.url:
        raise dg.Failure(
            "NOVA_DELTA_URL is not set: set it to OFF's delta index.txt URL or a folder"
        )
    listed = delta_source.deltas()
    with warehouse.connect(read_only=True) as con:
        state = tables_state(con)
    chosen = choose_deltas(listed, state.as_of, state.applied)
    context.log.info(
        f"{len(listed)} deltas listed, tables as of {utc(state.as_of or 0)}: "
        f"{len(chosen)} to apply" + "".join(f"\n  {d.name} ({d.window})" for d in chosen)
    )
    applied: list[DeltaStats] = []
    if chosen:
        rescore, version = _champion_rescorer(mlflow_store)
        for delta in chosen:
            file = delta_source.fetch(delta, log=context.log.info)
            # Archived before it is applied, as off_dump archives a dump before products takes it.
            archived = delta_source.archive(file)
            with warehouse.connect(publish=PUBLISHED) as con:
                stats = apply_delta(con, file, rescore)
            for observation in _observations(stats, version, archived):
                context.log_event(observation)
            context.log.info(
                f"applied {stats.name}: {stats.products:,} products upserted "
                f"({stats.new_products:,} new), {stats.predictions:,} predictions recomputed"
            )
            applied.append(stats)
    as_of = applied[-1].as_of if applied else state.as_of
    return dg.Output(
        len(applied),
        metadata={
            "applied": dg.MetadataValue.json([s.name for s in applied]),
            "upserted": sum(s.products for s in applied),
            "new_products": sum(s.new_products for s in applied),
            "rescored": sum(s.predictions for s in applied),
            "as_of": utc(as_of or 0),
        },
    )


@dg.job(
    description="Apply OFF's daily deltas newer than the tables (`dg launch --job apply_deltas`)."
)
def apply_deltas() -> None:
    apply_new_deltas()


# By name: a sensor given the job object is rebuilt when Definitions binds the job's resources,
# and Dagster's rebuild warns that a beta parameter (`owners`) is in use.
@dg.sensor(
    job_name="apply_deltas",
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=sensor_interval_seconds(),
    description="Starts apply_deltas when NOVA_DELTA_URL lists a delta it has not seen (run key: "
    "the newest such delta). Stopped by default: deltas only bring a warehouse built from OFF's "
    "full export up to date (on the sample or a generated dump every delta is a gap); start it "
    "once NOVA_DELTA_URL is set and the full export ingested.",
)
def new_delta_sensor(
    context: dg.SensorEvaluationContext, delta_source: DeltaSource
) -> dg.SensorResult | dg.SkipReason:
    if not delta_source.url:
        return dg.SkipReason("NOVA_DELTA_URL is not set")
    try:
        listed = delta_source.deltas()
    except DeltaError as exc:
        context.log.warning(f"{exc}; next tick will try again")
        return dg.SkipReason(str(exc))
    seen = set(json.loads(context.cursor)) if context.cursor else set()
    new = [d for d in listed if d.name not in seen]
    # The names listed now: a delta dropped from the index never comes back.
    cursor = json.dumps(sorted({d.name for d in listed} or seen))
    if not new:
        context.update_cursor(cursor)
        return dg.SkipReason(f"no new delta ({len(listed)} listed)")
    request = dg.RunRequest(run_key=new[-1].name, tags={"nova/delta": new[-1].name[:63]})
    return dg.SensorResult(run_requests=[request], cursor=cursor)
