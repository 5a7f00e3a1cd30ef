"""OFF's Parquet export (`food.parquet` of the `openfoodfacts/product-database` dataset) as a
dump: recognised by its magic bytes, its schema checked by name and type, and read as the same
columns the TSV gives, so `products` applies one contract to both.

In the export tags are already `list<string>`, `nova_group` is an int32, the timestamps are
epoch seconds (int64), and names and ingredient texts are `list<struct<lang, text>>` whose
`main` entry is the product's own language (see openfoodfacts-exports, exports/parquet/).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from nova_assets.lib import nutrients
from nova_assets.lib.database import sql_literal
from nova_assets.lib.ingest.dump_format import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TAG_COLUMNS,
    DumpError,
)

MAGIC = b"PAR1"
"""A Parquet file starts and ends with these four bytes."""

TAGS = "VARCHAR[]"
LANGUAGE_TEXTS = 'STRUCT(lang VARCHAR, "text" VARCHAR)[]'
INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
EPOCH = (*INTEGERS, "UBIGINT", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")

TYPES: dict[str, tuple[str, ...]] = {
    "code": ("VARCHAR",),
    "last_modified_t": EPOCH,
    "created_t": EPOCH,
    "ingredients_tags": (TAGS,),
    "additives_tags": (TAGS,),
    "categories_tags": (TAGS,),
    "countries_tags": (TAGS,),
    "nova_group": INTEGERS,
    "product_name": (LANGUAGE_TEXTS, "VARCHAR"),
    "ingredients_text": (LANGUAGE_TEXTS, "VARCHAR"),
    "brands": ("VARCHAR", TAGS),
}
"""The types each column may have (the export's first): a column of another type is refused
by name, as a TSV dump missing it would be."""


def is_parquet(path: str | Path) -> bool:
    """Whether the file starts like a Parquet file."""
    with open(path, "rb") as file:
        return file.read(len(MAGIC)) == MAGIC


def ends_whole(path: str | Path) -> bool:
    """Whether the file ends with Parquet's magic bytes too (a cut file does not)."""
    with open(path, "rb") as file:
        file.seek(0, 2)
        if file.tell() < 2 * len(MAGIC):
            return False
        file.seek(-len(MAGIC), 2)
        return file.read() == MAGIC


def schema(path: str | Path) -> dict[str, str]:
    """The file's columns and their DuckDB types, read from its footer."""
    if not ends_whole(path):
        raise DumpError(f"dump {path} is a truncated Parquet file (it lacks its footer)")
    try:
        with duckdb.connect() as con:
            rows = con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({sql_literal(path)})"
            ).fetchall()
    except duckdb.Error as exc:
        raise DumpError(
            f"dump {path} is not a readable Parquet file ({type(exc).__name__})"
        ) from exc
    return {name: kind for name, kind, *_ in rows}


def check_parquet(path: str | Path) -> dict[str, str]:
    """The schema of a Parquet dump, or DumpError naming each required column missing and each
    column of a type the export never has."""
    columns = schema(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DumpError(
            f"Parquet dump {path} lacks required column(s) {', '.join(missing)} "
            f"({len(columns)} columns)"
        )
    wrong = [
        f"{name} is {columns[name]} (expected {' or '.join(TYPES[name])})"
        for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
        if name in columns and columns[name] not in TYPES[name]
    ]
    if wrong:
        raise DumpError(f"Parquet dump {path} has column(s) of the wrong type: {'; '.join(wrong)}")
    return columns


def _main_text(column: str, columns: dict[str, str]) -> str:
    """The product's own-language text: the `main` entry, else the first one given."""
    if column not in columns:
        return "CAST(NULL AS VARCHAR)"
    if columns[column] == "VARCHAR":
        return f"nullif(trim({column}), '')"
    # The export puts the main entry first; the lambdas only run where it did not.
    main = f"list_filter({column}, lambda x: x.lang = 'main')[1].text"
    first = f"list_filter({column}, lambda x: nullif(trim(x.text), '') IS NOT NULL)[1].text"
    text = (
        f"CASE WHEN {column}[1].lang = 'main' THEN {column}[1].text "
        f"ELSE coalesce({main}, {first}) END"
    )
    return f"nullif(trim({text}), '')"


def tags_sql(column: str, columns: dict[str, str] | set[str]) -> str:
    """A list of tags (Parquet's or JSONL's) without empty tags, as the TSV's ',,' gives none;
    an empty list is no tags (NULL), as an empty TSV field. The filter only runs on the rare
    lists with an empty tag."""
    if column not in columns:
        return f"CAST(NULL AS VARCHAR[]) AS {column}"
    kept = f"list_filter({column}, lambda t: t <> '')"
    return (
        f"CASE WHEN len({column}) = 0 THEN NULL WHEN list_contains({column}, '') THEN "
        f"nullif({kept}, []) ELSE {column} END AS {column}"
    )


def _epoch(column: str, columns: dict[str, str]) -> str:
    if column not in columns:
        return "CAST(NULL AS TIMESTAMP)"
    if columns[column].startswith("TIMESTAMP"):
        return f"CAST({column} AS TIMESTAMP)"
    return f"CAST(to_timestamp({column}) AS TIMESTAMP)"


def staged_sql(path: str | Path, columns: dict[str, str]) -> str:
    """The rows of the Parquet dump typed and flagged like `products._staged_sql` types a TSV's
    lines (a Parquet row is never a broken line, nor a repaired one)."""
    brands = (
        "nullif(array_to_string(brands, ','), '')"
        if columns.get("brands") == TAGS
        else _main_text("brands", columns)
    )
    ingredients = _main_text("ingredients_text", columns)
    has_text = (
        f"{ingredients} IS NOT NULL"
        if "ingredients_text" in columns
        else "coalesce(len(ingredients_tags), 0) > 0"
    )
    return f"""
        SELECT * EXCLUDE (nova_raw),
            nova_raw IS NOT NULL AND nova_group IS NULL AS nova_invalid,
            false AS repaired_line, CAST(NULL AS VARCHAR) AS off_blank_reason
        FROM (
            SELECT
                nullif(trim(code), '') AS code,
                {_main_text("product_name", columns)} AS product_name,
                {brands} AS brands,
                {", ".join(tags_sql(c, columns) for c in TAG_COLUMNS)},
                nova_group AS nova_raw,
                CASE WHEN nova_group IN (1, 2, 3, 4) THEN CAST(nova_group AS TINYINT) END
                    AS nova_group,
                {has_text} AS has_ingredients_text,
                {_epoch("created_t", columns)} AS created_t,
                {_epoch("last_modified_t", columns)} AS last_modified_t,
                {nutrients.raw_parquet_sql(columns)},
                false AS broken_line
            FROM read_parquet({sql_literal(path)})
        )
    """
