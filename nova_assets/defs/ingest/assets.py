"""`off_dump`: the raw OFF products dump, brought into the data dir and identified by sha256."""

import sys

import dagster as dg

from nova_assets.defs.failures import refusing
from nova_assets.defs.resources import DataDir, DumpSource
from nova_assets.lib.files import write_atomically
from nova_assets.lib.ingest.dump_format import DumpError
from nova_assets.lib.ingest.dump_pointers import accepted_dump, previous_dump
from nova_assets.lib.progress import progress_reporter


class OffDumpConfig(dg.Config):
    source: str = ""
    """A dump to ingest instead of NOVA_DUMP_URL: new_dump_sensor sets it for dropped files."""


@dg.asset(
    group_name="ingest",
    kinds={"file"},
    description="The raw Open Food Facts products dump (the TSV, plain or gzip, the Parquet "
    "export or the JSONL export, told apart by their content) from NOVA_DUMP_URL, "
    "stored under data/raw/ by sha256 (and copied to NOVA_OBJECT_STORE's raw/, if set). Its "
    "data version is that sha256. It becomes the current dump only once products accepts it.",
)
def off_dump(
    context: dg.AssetExecutionContext,
    config: OffDumpConfig,
    dump_source: DumpSource,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    paths = data_dir.paths
    previous = previous_dump(paths)
    progress = progress_reporter(
        context.log.info, every_percent=5, bar=sys.stderr if sys.stderr.isatty() else None
    )
    with refusing("off_dump", DumpError, source=config.source or "NOVA_DUMP_URL"):
        dump = dump_source.fetch(
            previous=previous,
            in_use=accepted_dump(paths),
            progress=progress,
            log=context.log.info,
            source=config.source or None,
        )
    unchanged = dump is previous
    archived = dump_source.archive(dump)
    write_atomically(paths.fetched_dump, dump.to_json())
    context.log.info(
        f"dump {dump.sha256[:12]} ({dump.bytes:,} bytes) from {dump.source} at {dump.path}"
        + (" unchanged (HTTP 304)" if unchanged else "")
    )
    return dg.MaterializeResult(
        metadata={
            "status": "unchanged (HTTP 304)" if unchanged else "fetched",
            "source": dump.source,
            "path": dg.MetadataValue.path(dump.path),
            "bytes": dump.bytes,
            "sha256": dump.sha256,
            "gzipped": dump.gzipped,
            "etag": dump.etag or "",
            "last_modified": dump.last_modified or "",
            "archived": archived,
        },
        data_version=dg.DataVersion(dump.sha256),
    )
