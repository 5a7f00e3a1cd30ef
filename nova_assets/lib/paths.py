"""Where every file of the platform lives, all derived from `NOVA_DATA_DIR`.

One place decides the layout so that no asset, test or script writes outside the data dir, from
the settings (settings.py, the one reader of the environment): Dagster code gets the layout from
the `DataDir` resource built from them once, never from the environment in a step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from nova_assets.lib.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DUMP = REPO_ROOT / "data" / "sample" / "off_products_sample_1000.tsv.gz"
SAMPLE_JSONL = REPO_ROOT / "data" / "sample" / "off_products_sample_100.jsonl.gz"
"""100 real OFF product documents with OFF's own NOVA markers and `nova_group_error`."""
REAL_PRODUCTS = REPO_ROOT / "data" / "real" / "products.jsonl.gz"
"""7,414 real products from 18 public sources, each with its source: for judging the model
across sources (data/real/README.md)."""


@dataclass(frozen=True)
class DataPaths:
    """The data directory's layout; every path is absolute."""

    root: Path
    incoming_dir: Path | None = None
    """The folder new_dump_sensor watches (default `<root>/incoming`)."""
    tracking_uri: str | None = None
    """The MLflow store (default the sqlite file under `<root>/mlflow`)."""

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def raw_deltas(self) -> Path:
        """Where OFF's daily deltas are brought in, under their own names."""
        return self.raw / "deltas"

    @property
    def fetched_dump(self) -> Path:
        """Pointer to the dump `off_dump` brought in last, whole: the one `products` ingests."""
        return self.raw / "fetched.json"

    @property
    def latest_dump(self) -> Path:
        """Pointer to the dump the tables come from: written by `products` once it accepted the
        dump, so a refused dump never becomes current."""
        return self.raw / "latest.json"

    @property
    def run_lock(self) -> Path:
        """Held by the one run at work on this data dir (see lib/run_lock.py)."""
        return self.root / "run.lock"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def serving(self) -> Path:
        """The published read-only copy users query (`nova.duckdb` + Parquet), never locked."""
        return self.root / "serving"

    @property
    def duckdb_temp(self) -> Path:
        return self.root / "tmp" / "duckdb"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def incoming(self) -> Path:
        return (self.incoming_dir or self.root / "incoming").resolve()

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"


def layout(root: str | Path, incoming: str | Path | None = None) -> DataPaths:
    """The layout of the data dir `root` (`incoming`: the watched folder, if not its own)."""
    return DataPaths(
        Path(root).expanduser().resolve(),
        incoming_dir=Path(incoming).expanduser() if incoming else None,
    )


def data_paths(settings: Settings | None = None) -> DataPaths:
    """The layout the settings (default: the environment now) give: `NOVA_DATA_DIR` (default
    `<repo>/data`), `NOVA_INCOMING_DIR` and `MLFLOW_TRACKING_URI`."""
    settings = settings or Settings.from_env()
    paths = layout(settings.data_dir or REPO_ROOT / "data", settings.incoming_dir or None)
    return replace(paths, tracking_uri=settings.tracking_uri or None)


def sensor_interval_seconds(settings: Settings | None = None) -> int:
    """How often the sensors look (`NOVA_SENSOR_SECONDS`, default 30)."""
    return (settings or Settings.from_env()).sensor_seconds


def refresh_cron(settings: Settings | None = None) -> str:
    """When refresh_schedule asks NOVA_DUMP_URL for a new dump (`NOVA_REFRESH_CRON`, default
    Monday 04:00)."""
    return (settings or Settings.from_env()).refresh_cron


def dump_source(settings: Settings | None = None) -> str:
    """`NOVA_DUMP_URL`: an http(s) URL or a local path; the embedded real sample by default."""
    return (settings or Settings.from_env()).dump_url or str(SAMPLE_DUMP)
