"""The platform's resources: the data dir, the DuckDB warehouse, the dump source and the MLflow
store. Settings reach the code only through them, built once when the definitions load."""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from nova_assets.defs.operations.dead_runs import end_orphaned_mlflow_runs, reap_dead_runs
from nova_assets.lib import builds, run_lock
from nova_assets.lib import database as wh
from nova_assets.lib.ingest.delta_files import Delta, DeltaFile, fetch_delta, list_deltas
from nova_assets.lib.ingest.dump import Dump, fetch_dump, remove_partial_downloads
from nova_assets.lib.ml.cluster import Cluster
from nova_assets.lib.ml.registry import client_for, ensure_experiment, is_server, load_pipeline
from nova_assets.lib.paths import DataPaths, data_paths, dump_source, layout
from nova_assets.lib.progress import ProgressCallback
from nova_assets.lib.publishing import read_only_copy as serving
from nova_assets.lib.publishing.object_store import ObjectStore
from nova_assets.lib.settings import Settings
from nova_assets.lib.warehouse.products import IngestedDump, ingested_dump

if TYPE_CHECKING:
    import mlflow
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline


class RunLocked(dg.ConfigurableResource):
    """A resource that makes its run the only one on the data dir: the first such resource a run
    starts takes `run_lock` (waiting while another run holds it), the last one ends gives it
    back, so runs started together by any means run one after the other. Taking it also clears
    what dead runs left (see dead_runs.py). `run_lock` "" (a resource built by hand) takes none.
    """

    run_lock: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self._locks(context):
            return
        run_id = context.run.run_id
        log = context.log.info if context.log else None
        took = run_lock.hold(Path(self.run_lock), f"run {run_id}", log)
        if context.instance is None:
            return
        if took:
            reaped = reap_dead_runs(context.instance, current=run_id)
            if reaped and log:
                log(f"marked failed, their workers being gone: {', '.join(reaped)}")
        self.clear_after_dead_runs(context.instance)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._locks(context):
            run_lock.let_go(Path(self.run_lock))

    def _locks(self, context: dg.InitResourceContext) -> bool:
        """Only runs take the lock: a sensor or schedule given this resource only reads."""
        return bool(self.run_lock) and context.run is not None

    def clear_after_dead_runs(self, instance: dg.DagsterInstance) -> None:
        """What else a dead run left in this resource's own store, cleared once the lock is held."""


class DataDir(dg.ConfigurableResource):
    """The data dir (NOVA_DATA_DIR): dump pointers, features, reports, and the folder
    new_dump_sensor watches (`incoming_dir`, NOVA_INCOMING_DIR; default `<root>/incoming`)."""

    root: str
    incoming_dir: str = ""

    @property
    def paths(self) -> DataPaths:
        return layout(self.root, self.incoming_dir or None)


class ObjectStoreCopies(dg.ConfigurableResource):
    """Where a resource copies what it writes for readers on other machines: the object store
    `object_store` (NOVA_OBJECT_STORE, `s3://bucket/prefix`) at `object_store_endpoint`
    (AWS_ENDPOINT_URL, for an S3-compatible server). Unset: everything stays on local disk."""

    object_store: str = ""
    object_store_endpoint: str = ""

    def copies(self) -> ObjectStore | None:
        return (
            ObjectStore(self.object_store, self.object_store_endpoint)
            if self.object_store
            else None
        )


class Warehouse(RunLocked, ObjectStoreCopies):
    """The DuckDB warehouse file. Connections close however a step ends, open read-only where
    a step only reads, and fail at once with a clear message if another process holds the file.

    `serving_dir` holds the published read-only copy users query (default: `serving/` beside
    the warehouse file). `memory_limit` is DuckDB's where a step builds tables from the dump,
    `scan_memory_limit` where it reads them into Python (warehouse.MEMORY_LIMIT and
    SCAN_MEMORY_LIMIT say why).
    """

    path: str
    temp_directory: str
    serving_dir: str = ""
    memory_limit: str = wh.MEMORY_LIMIT
    scan_memory_limit: str = wh.SCAN_MEMORY_LIMIT
    threads: int = 0

    @contextmanager
    def connect(
        self, read_only: bool = False, publish: Sequence[str] = (), scan: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; when the block ends without an error, `publish` tables are copied to
        the served catalog from the same connection, so users never see a failed step's data,
        and then to the object store, if any. `scan`: the step reads the tables into Python
        (matrices, scores), so DuckDB gets `scan_memory_limit`.
        """
        if publish and read_only:
            raise ValueError("publish needs a read-write connection")
        with wh.connect(
            Path(self.path),
            read_only=read_only,
            memory_limit=self.scan_memory_limit if scan else self.memory_limit,
            temp_directory=Path(self.temp_directory),
            threads=self.threads or None,
        ) as con:
            yield con
            if publish:
                serving.publish(con, publish, self.serving_path)
        # Uploads need no connection: the warehouse file is let go first.
        if publish and (store := self.copies()):
            store.publish(serving.read_manifest(self.serving_path)["tables"])

    def built_as(self, step: str) -> str | None:
        """The fingerprint `step` last built (lib/builds.py); None before its first build."""
        if not Path(self.path).exists():
            return None
        with self.connect(read_only=True) as con:
            return builds.built_as(con, step)

    def ingested(self, sha256: str) -> IngestedDump | None:
        """The dump `sha256` as the warehouse recorded it, if it ever accepted it."""
        if not Path(self.path).exists():
            return None
        with self.connect(read_only=True) as con:
            return ingested_dump(con, sha256)

    @property
    def serving_path(self) -> Path:
        return Path(self.serving_dir) if self.serving_dir else Path(self.path).parent / "serving"


class DumpSource(RunLocked, ObjectStoreCopies):
    """Where the dump comes from (`NOVA_DUMP_URL`: http(s) URL or local path) and goes to.

    `keep`: dumps kept in raw_dir (the newest, plus the one in use). `attempts`: failed requests
    in a row without a new byte before a download gives up, waiting `retry_delay` seconds,
    doubling, between them. `timeout`: seconds a socket may stay silent. `deadline`: seconds a
    whole download may take, retries included.
    """

    url: str
    raw_dir: str
    keep: int = 3
    attempts: int = 6
    retry_delay: float = 2.0
    timeout: float = 60.0
    deadline: float = 6 * 3600.0
    url_check_seconds: int = 3600
    """How often new_dump_sensor asks an http(s) `url` whether it changed (a HEAD request)."""

    def fetch(
        self,
        previous: Dump | None = None,
        progress: ProgressCallback | None = None,
        log: Callable[[str], None] | None = None,
        source: str | None = None,
        in_use: Dump | None = None,
    ) -> Dump:
        """The dump at `source` (default `url`); `previous` itself when the server says it has
        not changed (304). Pruning spares `previous` and `in_use` (the tables' dump). Holding the
        run lock, it first deletes what downloads of dead runs left: no other can be running."""
        if self.run_lock:
            for path in remove_partial_downloads(Path(self.raw_dir)):
                if log is not None:
                    log(f"deleted {path.name}, a download a dead run left")
        return fetch_dump(
            source or self.url,
            Path(self.raw_dir),
            previous=previous,
            in_use=in_use,
            progress=progress,
            log=log,
            attempts=self.attempts,
            retry_delay=self.retry_delay,
            timeout=self.timeout,
            deadline=self.deadline,
            keep=self.keep,
        )

    def archive(self, dump: Dump) -> str:
        """Copy `dump` to the object store's `raw/` (once: an object of its size is kept); its
        URI there, or "" without an object store."""
        store = self.copies()
        if store is None:
            return ""
        return store.put_file(Path(dump.path), f"raw/{Path(dump.path).name}")


class DeltaSource(RunLocked, ObjectStoreCopies):
    """OFF's daily deltas (`NOVA_DELTA_URL`: an `index.txt` URL or a local folder; "" for none)
    and `raw_dir`, where each is brought in before it is applied (lib/ingest/delta_files.py), and copied to
    the object store, if any, as dumps are."""

    url: str = ""
    raw_dir: str
    attempts: int = 6
    retry_delay: float = 2.0
    timeout: float = 60.0

    def deltas(self) -> list[Delta]:
        """The deltas the index lists, oldest first."""
        return list_deltas(self.url, timeout=self.timeout)

    def fetch(self, delta: Delta, log: Callable[[str], None] | None = None) -> DeltaFile:
        return fetch_delta(
            self.url,
            delta,
            Path(self.raw_dir),
            log=log,
            attempts=self.attempts,
            retry_delay=self.retry_delay,
            timeout=self.timeout,
        )

    def archive(self, file: DeltaFile) -> str:
        """Copy the delta to the object store's `raw/deltas/`, under OFF's name (once: an object
        of its size is kept); its URI there, or "" without an object store. OFF keeps about 14
        days of deltas: the store keeps them all."""
        store = self.copies()
        if store is None:
            return ""
        return store.put_file(Path(file.path), f"raw/deltas/{file.delta.name}")


class MlflowStore(RunLocked):
    """The MLflow tracking store and model registry: the training's run, and the versions steps
    read or move. `ui_url` and `dagster_ui_url` make the links between the two UIs."""

    tracking_uri: str
    artifact_location: str = ""
    ui_url: str = "http://127.0.0.1:5000"
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def client(self) -> "MlflowClient":
        return client_for(self.tracking_uri)

    def pipeline(self, model_uri: str) -> "Pipeline":
        """A logged model, loaded safely (registry.load_pipeline)."""
        return load_pipeline(self.tracking_uri, model_uri)

    def clear_after_dead_runs(self, instance: dg.DagsterInstance) -> None:
        end_orphaned_mlflow_runs(instance, self.client())

    @contextmanager
    def training_run(self, context: dg.AssetExecutionContext) -> Iterator["mlflow.ActiveRun"]:
        """This step's MLflow run, active for MLflow's fluent API (nested trial runs, logged
        models): named after the asset and the Dagster run, tagged with a link back to it, and
        ended FINISHED, or FAILED on any error. Only a step that trains starts one, so a launch
        that fails before leaves no empty run."""
        import mlflow

        artifacts = None if is_server(self.tracking_uri) else Path(self.artifact_location)
        experiment_id = ensure_experiment(self.tracking_uri, artifacts)
        # Each model's requirements are given (tracking.MODEL_REQUIREMENTS), so what MLflow
        # says of this folder being a uv project applies to nothing we log.
        logging.getLogger("mlflow.utils.uv_utils").setLevel(logging.WARNING)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        run_id = context.run.run_id
        tags = {
            "dagster_run_id": run_id,
            "dagster_run_url": f"{self.dagster_ui_url}/runs/{run_id}",
            "dagster_asset": context.asset_key.to_user_string(),
        }
        name = f"{context.asset_key.to_user_string()} {run_id[:8]}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=tags) as run:
            yield run

    def run_url(self, run: "mlflow.entities.Run") -> str:
        """The run's page in the MLflow UI."""
        return f"{self.ui_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


class ModelCluster(dg.ConfigurableResource):
    """Where `nova_model` fits its trials and experts: the Ray cluster at `ray_address`
    (RAY_ADDRESS; each node must be able to import this package), or this machine's cores."""

    ray_address: str = ""

    def cluster(self) -> Cluster:
        return Cluster(self.ray_address)


def _setting(settings: Settings, name: str, default: str, kind: type = str):
    """`dg.EnvVar(name)` when the variable is set (resolved in the run, and shown in the UI by
    its name, never its value: a URL may hold a token), else the default."""
    if not settings.is_set(name):
        return kind(default)
    return dg.EnvVar.int(name) if kind is int else dg.EnvVar(name)


@dg.definitions
def resources() -> dg.Definitions:
    settings = Settings.from_env()
    paths = data_paths(settings)
    lock = str(paths.run_lock)
    copies = {
        "object_store": _setting(settings, "NOVA_OBJECT_STORE", ""),
        "object_store_endpoint": _setting(settings, "AWS_ENDPOINT_URL", ""),
    }
    return dg.Definitions(
        resources={
            "data_dir": DataDir(
                root=str(paths.root), incoming_dir=_setting(settings, "NOVA_INCOMING_DIR", "")
            ),
            "warehouse": Warehouse(
                path=str(paths.warehouse),
                temp_directory=str(paths.duckdb_temp),
                serving_dir=str(paths.serving),
                run_lock=lock,
                **copies,
            ),
            "dump_source": DumpSource(
                url=_setting(settings, "NOVA_DUMP_URL", dump_source(settings)),
                raw_dir=str(paths.raw),
                url_check_seconds=_setting(settings, "NOVA_URL_CHECK_SECONDS", "3600", int),
                run_lock=lock,
                **copies,
            ),
            "delta_source": DeltaSource(
                url=_setting(settings, "NOVA_DELTA_URL", ""),
                raw_dir=str(paths.raw_deltas),
                run_lock=lock,
                **copies,
            ),
            "model_cluster": ModelCluster(ray_address=_setting(settings, "RAY_ADDRESS", "")),
            "mlflow_store": MlflowStore(
                tracking_uri=_setting(settings, "MLFLOW_TRACKING_URI", paths.mlflow_tracking_uri),
                artifact_location=str(paths.mlflow_artifacts),
                ui_url=_setting(settings, "NOVA_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
                dagster_ui_url=_setting(settings, "NOVA_DAGSTER_UI_URL", "http://127.0.0.1:3000"),
                run_lock=lock,
            ),
        }
    )
