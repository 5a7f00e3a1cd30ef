"""Real OFF products from many public sources (`data/real/`), as a `products`-shaped table with
the source of each: for judging a model on sources, countries and languages it never saw, and
as a corpus of labelled real products the model learns from beside the dump's own."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from nova_assets.lib.database import sql_literal
from nova_assets.lib.nutrients import NUTRIENTS, clean_sql

TAGS = ("ingredients_tags", "additives_tags", "categories_tags", "countries_tags")


def load_real_products(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: str = "products",
    *,
    temporary: bool = False,
) -> int:
    """`table` (the warehouse's columns that models read, plus `source`: the repository the
    product came from) from the JSONL of `data/real/`; one row per code (the first). Nutrients
    are cleaned as `products` cleans a dump's. `temporary`: a table of this connection only.
    Returns the row count."""
    # The file names each nutrient as `products` does, less `_100g`.
    fields = {n.column: n.column.removesuffix("_100g") for n in NUTRIENTS}
    nutriments = ", ".join(f"nutriments.{f} AS raw_{c}" for c, f in fields.items())
    struct = ", ".join(f"{f} DOUBLE" for f in fields.values())
    tags = ", ".join(f"CAST(nullif({t}, []) AS VARCHAR[]) AS {t}" for t in TAGS)
    con.execute(
        f"""
        CREATE OR REPLACE {"TEMP " if temporary else ""}TABLE {table} AS
        SELECT code, nullif(trim(product_name), '') AS product_name, {tags},
            CAST(nova_group AS TINYINT) AS nova_group, {clean_sql()},
            split_part(source, '@', 1) AS source
        FROM (
            SELECT *, {nutriments} FROM read_json({sql_literal(str(path))}, format='newline_delimited',
                columns={{code: 'VARCHAR', product_name: 'VARCHAR', nova_group: 'INTEGER',
                    ingredients_tags: 'VARCHAR[]', additives_tags: 'VARCHAR[]',
                    categories_tags: 'VARCHAR[]', countries_tags: 'VARCHAR[]',
                    nutriments: 'STRUCT({struct})', source: 'VARCHAR'}})
        )
        WHERE nullif(trim(code), '') IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY code ORDER BY source) = 1
        """
    )
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def file_sha256(path: str | Path) -> str:
    """The sha256 of the file's bytes: what a build made from it is made of."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
