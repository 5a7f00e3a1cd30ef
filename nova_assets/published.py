"""Query the published tables: this machine's published copy, or from any machine that
reaches the team's object store, as DuckDB views over Arrow datasets (DuckDB's own S3
extension cannot be installed everywhere; pyarrow reads S3).

    uv run python -m nova_assets.published "SELECT nova_group, count(*) FROM products GROUP BY 1"

or in Python:

    from nova_assets.published import connect
    con = connect()   # or connect("s3://nova/platform", endpoint_url="http://127.0.0.1:6403")
    con.sql("SELECT * FROM nova_predictions LIMIT 5").show()

The store is `NOVA_OBJECT_STORE`, its server `AWS_ENDPOINT_URL` (unset for AWS itself), the
credentials AWS's usual ones; without a store, the data dir's `serving/nova.duckdb`. A
connection reads the tables of the publish current when it opened: later publishes never change
what it sees, and what it reads stays for ten minutes after it was replaced.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from nova_assets.lib.paths import data_paths
from nova_assets.lib.publishing.object_store import ObjectStore, ObjectStoreError
from nova_assets.lib.publishing.read_only_copy import MATERIALIZE_FIRST, catalog_path
from nova_assets.lib.settings import Settings


def connect(url: str = "", endpoint_url: str = "") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to the published tables, plus `published` (table, rows,
    published_at). `url` "": NOVA_OBJECT_STORE (at AWS_ENDPOINT_URL) if set, else this
    machine's published copy, `<data dir>/serving/nova.duckdb`, opened read-only; the same code
    then reads the embedded platform and a team's object store alike."""
    settings = Settings.from_env()
    if not url and settings.object_store:
        url, endpoint_url = settings.object_store, settings.object_store_endpoint
    if not url:
        catalog = catalog_path(data_paths(settings).serving)
        if not catalog.exists():
            raise FileNotFoundError(f"nothing published at {catalog} yet: {MATERIALIZE_FIRST}")
        return duckdb.connect(str(catalog), read_only=True)
    store = ObjectStore(url, endpoint_url)
    tables = store.read_manifest()["tables"]
    if not tables:
        raise ObjectStoreError(f"nothing published in {url} yet: {MATERIALIZE_FIRST}")
    con = duckdb.connect()
    for name, entry in tables.items():
        dataset = pads.dataset(
            store.path(entry["key"]), filesystem=store.filesystem, format="parquet"
        )
        con.register(name, dataset)
    names = sorted(tables)
    summary = {
        "table": names,
        "rows": [tables[name]["rows"] for name in names],
        "published_at": [tables[name]["published_at"] for name in names],
    }
    con.register("published", pa.table(summary))
    return con


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nova_assets.published", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("sql", help="a query over the published tables")
    parser.add_argument(
        "--store", default="", help="s3://bucket/prefix (default NOVA_OBJECT_STORE)"
    )
    parser.add_argument(
        "--endpoint-url", default="", help="its S3 server (default AWS_ENDPOINT_URL)"
    )
    args = parser.parse_args(argv)
    try:
        con = connect(args.store, args.endpoint_url)
        con.sql(args.sql).show(max_rows=50)
    except (ObjectStoreError, FileNotFoundError, duckdb.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
