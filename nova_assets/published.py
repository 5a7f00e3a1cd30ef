"""Query the published tables from any machine that reaches the object store: DuckDB over
Arrow datasets (DuckDB's own S3 extension cannot be installed everywhere; pyarrow reads S3).

    uv run python -m nova_assets.published "SELECT nova_group, count(*) FROM products GROUP BY 1"

or in Python:

    from nova_assets.published import connect
    con = connect("s3://nova/platform", endpoint_url="http://127.0.0.1:6403")
    con.sql("SELECT * FROM nova_predictions LIMIT 5").show()

The store is `NOVA_OBJECT_STORE`, its server `AWS_ENDPOINT_URL` (unset for AWS itself), the
credentials AWS's usual ones. A connection reads the tables of the publish current when it
opened: later publishes never change what it sees, and its objects stay for ten minutes after
they were replaced.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from nova_assets.lib.object_store import ObjectStore, ObjectStoreError


def connect(url: str, endpoint_url: str = "") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per published table, plus `published`
    (table, rows, published_at)."""
    store = ObjectStore(url, endpoint_url)
    tables = store.read_manifest()["tables"]
    if not tables:
        raise ObjectStoreError(f"nothing published in {url} yet: materialize the assets first")
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
    parser.add_argument("--store", default=os.environ.get("NOVA_OBJECT_STORE", ""))
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL", ""))
    args = parser.parse_args(argv)
    if not args.store:
        parser.error("no object store: set NOVA_OBJECT_STORE or give --store s3://bucket/prefix")
    try:
        con = connect(args.store, args.endpoint_url)
        con.sql(args.sql).show(max_rows=50)
    except (ObjectStoreError, duckdb.Error) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
