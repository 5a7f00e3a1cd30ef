"""The platform's resources: the DuckDB warehouse, the dump source and MLflow tracking."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
from dagster_mlflow import mlflow_tracking
from mlflow import MlflowClient

from nova_assets.defs.operations.dead_runs import reap_dead_runs
from nova_assets.lib import run_lock, serving
from nova_assets.lib import warehouse as wh
from nova_assets.lib.dump import Dump, ProgressCallback, fetch_dump
from nova_assets.lib.paths import data_paths, dump_source
from nova_assets.lib.registry import EXPERIMENT, client_for, ensure_experiment


class RunLocked(dg.ConfigurableResource):
    """A resource that makes its run the only one on the data dir: the first such resource a run
    starts takes `run_lock` (waiting while another run holds it), the last one ends gives it
    back, so runs started together by any means run one after the other. Taking it also clears
    what dead runs left (see dead_runs.py). `run_lock` "" (a resource built by hand) takes none.
    """

    run_lock: str = ""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.run_lock:
            return
        run_id = context.run.run_id if context.run else None
        log = context.log.info if context.log else None
        run_lock.hold(Path(self.run_lock), f"run {run_id}", log)
        if context.instance is not None:
            reaped = reap_dead_runs(context.instance, self.tracking_store(), current=run_id)
            if reaped and log:
                log(f"marked failed, their workers being gone: {', '.join(reaped)}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self.run_lock:
            run_lock.let_go(Path(self.run_lock))

    def tracking_store(self) -> str | None:
        """The MLflow store whose orphaned runs to end, if this resource knows it."""
        return None


class Warehouse(RunLocked):
    """The DuckDB warehouse file. Connections close however a step ends, open read-only where
    a step only reads, and fail at once with a clear message if another process holds the file.

    `serving_dir` holds the published read-only copy users query (default: `serving/` beside
    the warehouse file).
    """

    path: str
    temp_directory: str
    serving_dir: str = ""
    memory_limit: str = "4GB"
    threads: int = 0

    @contextmanager
    def connect(
        self, read_only: bool = False, publish: Sequence[str] = ()
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection; when the block ends without an error, `publish` tables are copied to
        the served catalog from the same connection, so users never see a failed step's data.
        """
        if publish and read_only:
            raise ValueError("publish needs a read-write connection")
        with wh.connect(
            Path(self.path),
            read_only=read_only,
            memory_limit=self.memory_limit,
            temp_directory=Path(self.temp_directory),
            threads=self.threads or None,
        ) as con:
            yield con
            if publish:
                serving.publish(con, publish, self.serving_path)

    @property
    def serving_path(self) -> Path:
        return Path(self.serving_dir) if self.serving_dir else Path(self.path).parent / "serving"


class DumpSource(RunLocked):
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

    def fetch(
        self,
        previous: Dump | None = None,
        progress: ProgressCallback | None = None,
        log: Callable[[str], None] | None = None,
        source: str | None = None,
        in_use: Dump | None = None,
    ) -> Dump:
        """The dump at `source` (default `url`); `previous` itself when the server says it has
        not changed (304). Pruning spares `previous` and `in_use` (the tables' dump)."""
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


class MlflowStore(RunLocked):
    """The MLflow tracking store and model registry, for steps that read or move versions."""

    tracking_uri: str

    def tracking_store(self) -> str | None:
        return self.tracking_uri

    def client(self) -> MlflowClient:
        return client_for(self.tracking_uri)


@dg.resource(
    config_schema={
        "experiment_name": str,
        "mlflow_tracking_uri": str,
        "artifact_location": str,
    },
    description="dagster-mlflow's mlflow_tracking, with the experiment's artifacts under the data "
    "dir, and a run that never stays RUNNING after the Dagster run.",
)
def mlflow_tracking_run(init_context: dg.InitResourceContext):
    config = init_context.resource_config
    ensure_experiment(
        config["mlflow_tracking_uri"], Path(config["artifact_location"]), config["experiment_name"]
    )
    with contextmanager(mlflow_tracking.resource_fn)(init_context) as tracking:
        try:
            yield tracking
        finally:
            if mlflow.active_run() is not None:
                mlflow.end_run(status="FAILED")
            run_id = tracking.mlflow_run_id
            if run_id and tracking.tracking_client.get_run(run_id).info.status == "RUNNING":
                tracking.tracking_client.set_terminated(run_id, status="FAILED")


@contextmanager
def tracked_run(tracking) -> Iterator[mlflow.ActiveRun]:
    """Make this Dagster run's MLflow run active, and end it FINISHED, or FAILED on an error."""
    run = mlflow.active_run() or mlflow.start_run(run_id=tracking.mlflow_run_id)
    try:
        yield run
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


@dg.definitions
def resources() -> dg.Definitions:
    paths = data_paths()
    return dg.Definitions(
        resources={
            "warehouse": Warehouse(
                path=str(paths.warehouse),
                temp_directory=str(paths.duckdb_temp),
                serving_dir=str(paths.serving),
                run_lock=str(paths.run_lock),
            ),
            "dump_source": DumpSource(
                url=dump_source(), raw_dir=str(paths.raw), run_lock=str(paths.run_lock)
            ),
            "mlflow_store": MlflowStore(
                tracking_uri=paths.mlflow_tracking_uri, run_lock=str(paths.run_lock)
            ),
            "mlflow": mlflow_tracking_run.configured(
                {
                    "experiment_name": EXPERIMENT,
                    "mlflow_tracking_uri": paths.mlflow_tracking_uri,
                    "artifact_location": str(paths.mlflow_artifacts),
                }
            ),
        }
    )
