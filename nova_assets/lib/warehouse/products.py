"""Turn a raw OFF dump into the `products` table, set-wise in DuckDB, replacing it atomically.

The dump is read straight from its file: the TSV (plain or gzip) with quoting off, columns
picked by name, broken lines skipped and counted; OFF's Parquet export, columns by name and
type (parquet_dump.py); or OFF's JSONL export, fields by name, lines that are not JSON objects
skipped and counted (jsonl_dump.py). The new table and its `dumps` row are written in one
transaction that is rolled back if anything looks wrong, so the last good table survives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime

import duckdb

from nova_assets.lib import nutrients
from nova_assets.lib.database import sql_list, sql_literal, table_exists, transaction
from nova_assets.lib.ingest import jsonl_dump, parquet_dump
from nova_assets.lib.ingest.dump import Dump
from nova_assets.lib.ingest.dump_format import (
    TAG_COLUMNS,
    DumpError,
    broken_line_sql,
    check_columns,
    check_gzip_file,
    dump_header,
    invalid_utf8_sql,
    read_csv_sql,
)
from nova_assets.lib.warehouse.nova_rules import (
    FLAVOURED_WATERS_CATEGORIES,
    NON_FOOD_CATEGORY,
    WATERS_CATEGORY,
    markers_of,
    with_additive_variants,
)

Layout = list[str] | dict[str, str] | jsonl_dump.JsonlLayout
"""What a dump's check found: a TSV's header, a Parquet export's schema, or a JSONL dump."""

_NUTRIENT_DDL = ",\n    ".join(f"{c} DOUBLE" for c in nutrients.NUTRIENT_COLUMNS)
PRODUCTS_DDL = f"""
CREATE OR REPLACE TABLE products (
    code VARCHAR PRIMARY KEY,
    product_name VARCHAR,
    brands VARCHAR,
    ingredients_tags VARCHAR[],
    additives_tags VARCHAR[],
    categories_tags VARCHAR[],
    countries_tags VARCHAR[],
    nova_group TINYINT CHECK (nova_group BETWEEN 1 AND 4),
    has_ingredients_text BOOLEAN,
    nova_blank_reason VARCHAR,
    {_NUTRIENT_DDL},
    created_t TIMESTAMP,
    last_modified_t TIMESTAMP,
    dump_sha256 VARCHAR NOT NULL
)
"""

DUMPS_DDL = """
CREATE TABLE IF NOT EXISTS dumps (
    dump_sha256 VARCHAR PRIMARY KEY,
    source VARCHAR,
    path VARCHAR,
    bytes BIGINT,
    lines_read BIGINT,
    skipped_lines BIGINT,
    rows_without_code BIGINT,
    duplicate_rows BIGINT,
    invalid_nova_groups BIGINT,
    products BIGINT,
    ingested_at TIMESTAMP DEFAULT current_timestamp,
    repaired_lines BIGINT,
    invalid_nutrients BIGINT,
    max_shrink DOUBLE
)
"""
# Warehouses made before these columns existed gain them.
DUMPS_MIGRATIONS = (
    "ALTER TABLE dumps ADD COLUMN IF NOT EXISTS repaired_lines BIGINT",
    "ALTER TABLE dumps ADD COLUMN IF NOT EXISTS invalid_nutrients BIGINT",
    "ALTER TABLE dumps ADD COLUMN IF NOT EXISTS max_shrink DOUBLE",
)
MAX_SHRINK = 0.5
"""The fall of the product count a new dump may bring, by default: more is refused."""


class ShrinkError(DumpError):
    """A dump with far fewer products than the current table: more likely cut or filtered than
    right, so refused unless the caller allows a fall that large."""

    def __init__(self, source: str, products: int, previous: int, max_shrink: float) -> None:
        super().__init__(
            f"dump {source} has {products:,} products against {previous:,} in the current "
            f"table, a fall of more than {max_shrink:.0%}; refusing to replace it"
        )
        self.products, self.previous, self.max_shrink = products, previous, max_shrink


@dataclass(frozen=True)
class IngestedDump:
    """A dump the warehouse accepted once (its `dumps` row): the tables held it, or still do."""

    sha256: str
    source: str
    products: int
    ingested_at: datetime

    def describe(self) -> str:
        return (
            f"dump {self.sha256[:12]} ({self.products:,} products from {self.source}, "
            f"ingested {self.ingested_at:%Y-%m-%d %H:%M})"
        )


def allowed_shrink(con: duckdb.DuckDBPyConnection, sha256: str) -> float:
    """The fall of the product count accepted when dump `sha256` was ingested (MAX_SHRINK for a
    dump ingested before it was recorded)."""
    recorded = con.execute(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'dumps' AND column_name = 'max_shrink'"
    ).fetchone()[0]
    row = (
        con.execute("SELECT max_shrink FROM dumps WHERE dump_sha256 = ?", [sha256]).fetchone()
        if recorded
        else None
    )
    return row[0] if row and row[0] is not None else MAX_SHRINK


def ingested_dump(con: duckdb.DuckDBPyConnection, sha256: str) -> IngestedDump | None:
    """The `dumps` row of the dump `sha256`, if the warehouse ever accepted it."""
    if not table_exists(con, "dumps"):
        return None
    row = con.execute(
        "SELECT dump_sha256, source, products, ingested_at FROM dumps WHERE dump_sha256 = ?",
        [sha256],
    ).fetchone()
    return IngestedDump(*row) if row else None


@dataclass(frozen=True)
class IngestStats:
    """What one ingest read, dropped and kept."""

    lines_read: int
    skipped_lines: int
    rows_without_code: int
    duplicate_rows: int
    invalid_nova_groups: int
    products: int
    previous_products: int | None
    repaired_lines: int = 0
    """Lines kept with their invalid UTF-8 bytes replaced."""
    invalid_nutrients: int = 0
    """Nutrient values of the products kept that were impossible, and so made NULL."""


def _tags(column: str, present: set[str]) -> str:
    """A comma-separated tag field as a list; empty items (from ',,' or a trailing ',') dropped.

    The filter only runs on the rare lists that hold an empty item: it is the costly part.
    """
    if column not in present:
        return f"CAST(NULL AS VARCHAR[]) AS {column}"
    split = f"string_split(nullif(trim({column}), ''), ',')"
    return (
        f"CASE WHEN list_contains({split}, '') THEN list_filter({split}, lambda t: t <> '') "
        f"ELSE {split} END AS {column}"
    )


def _text(column: str, present: set[str]) -> str:
    return f"nullif(trim({column}), '')" if column in present else "CAST(NULL AS VARCHAR)"


def _has_text(present: set[str]) -> str:
    """Whether the product has an ingredients text (OFF's test); a dump without the column
    counts a product with ingredient tags as having one."""
    if "ingredients_text" in present:
        return "nullif(trim(ingredients_text), '') IS NOT NULL"
    return "coalesce(len(ingredients_tags), 0) > 0"


# The marker sets a blank reason reads: (family, group) → does the product hold one? A hash
# join of the unlabelled products' tags against them all costs a fraction of one list lookup
# per product per set (measured: 0.15 s against 3.5 s on a million products).
VOTES = (
    ("ingredients", 4),
    ("additives", 4),
    ("ingredients", 3),
    ("additives", 3),
    ("categories", 3),
    ("categories", 2),
)


def markers_table_sql() -> str:
    """`nova_markers(family, tag, grp)`: the VOTES sets, additives with their variants."""
    rows = []
    for family, group in VOTES:
        markers = markers_of(family, group)
        if family == "additives":
            markers = with_additive_variants(markers)
        rows += [f"({sql_literal(family)}, {sql_literal(tag)}, {group})" for tag in markers]
    return (
        "CREATE OR REPLACE TEMP TABLE nova_markers AS SELECT * FROM (VALUES "
        + ", ".join(rows)
        + ") AS t(family, tag, grp)"
    )


def marker_votes_sql() -> str:
    """`marker_votes(staged_row, has_4, has_3, has_2)`: for each unlabelled staged product that
    holds a marker, which groups its markers vote for (has_4 from ingredients and additives,
    has_3 from any family, has_2 from categories, as OFF's rules read them)."""
    families = " UNION ALL ".join(
        f"SELECT rowid AS staged_row, '{family}' AS family, unnest({family}_tags) AS tag "
        "FROM staged_products WHERE nova_group IS NULL"
        for family in ("ingredients", "additives", "categories")
    )
    return f"""
        CREATE OR REPLACE TEMP TABLE marker_votes AS
        SELECT staged_row, bool_or(grp = 4) AS has_4, bool_or(grp = 3) AS has_3,
            bool_or(grp = 2) AS has_2
        FROM ({families}) JOIN nova_markers USING (family, tag)
        GROUP BY staged_row
    """


def blank_reason_sql() -> str:
    """`nova_blank_reason` of a `products` row, given its `marker_votes` (NULL: no marker): the
    SQL twin of `nova_rules.blank_reason` (a test holds them equal on every row of the real
    sample), NULL for a labelled product."""
    has_4, has_3, has_2 = (f"coalesce(has_{g}, false)" for g in (4, 3, 2))
    plain_water = (
        f"coalesce(list_contains(categories_tags, {sql_literal(WATERS_CATEGORY)}), false) AND NOT "
        f"coalesce(list_has_any(categories_tags, {sql_list(sorted(FLAVOURED_WATERS_CATEGORIES))}), false)"
    )
    return f"""CASE
        WHEN nova_group IS NOT NULL THEN NULL
        WHEN coalesce(list_contains(categories_tags, {sql_literal(NON_FOOD_CATEGORY)}), false) THEN 'non_food'
        WHEN NOT has_ingredients_text THEN CASE
            WHEN NOT {has_4} AND ({has_2} OR (NOT {has_3} AND {plain_water})) THEN 'unexplained'
            ELSE 'missing_ingredients' END
        WHEN {has_4} THEN 'unexplained'
        WHEN coalesce(len(categories_tags), 0) = 0 THEN 'missing_category'
        ELSE 'too_many_unknown_ingredients'
    END"""


def _epoch(column: str, present: set[str]) -> str:
    if column not in present:
        return "CAST(NULL AS TIMESTAMP)"
    return f"CAST(to_timestamp(TRY_CAST({column} AS BIGINT)) AS TIMESTAMP)"


# The bulk load goes into a table without the key, which is added once the rows are final:
# building the index in one go is cheaper than checking every appended row against it.
LOAD_DDL = PRODUCTS_DDL.replace("code VARCHAR PRIMARY KEY", "code VARCHAR")

# Rows of codes that occur more than once, except the one to keep: the latest `last_modified_t`,
# ties broken by content so that every ingest of a dump keeps the same row.
# Only duplicated codes are windowed, instead of partitioning and sorting every row to find
# the ~1% that repeat. Kept in a small table so the insert is a parallel hash anti-join (a
# `rowid NOT IN (subquery)` there ran on one thread).
_RAW_NUTRIENTS = ", ".join(f"raw_{c}" for c in nutrients.NUTRIENT_COLUMNS)
LOSING_ROWS_DDL = f"""
    CREATE OR REPLACE TEMP TABLE losing_rows AS
    SELECT rowid AS staged_row FROM staged_products
    WHERE code IN (
        SELECT code FROM staged_products WHERE code IS NOT NULL GROUP BY code HAVING count(*) > 1
    )
    QUALIFY row_number() OVER (
        PARTITION BY code
        ORDER BY last_modified_t DESC NULLS LAST, created_t DESC NULLS LAST, product_name,
            brands, ingredients_tags, additives_tags, categories_tags, countries_tags,
            nova_group, has_ingredients_text, {_RAW_NUTRIENTS}, off_blank_reason
    ) > 1
"""


def _staged_sql(source: str, columns: list[str], *, repaired: bool = False) -> str:
    """The rows of `source` (a relation with the header's columns) typed as in `products`, with
    flags for a broken line, a non-empty invalid nova_group and a line whose bad bytes were
    replaced."""
    present = set(columns)
    return f"""
        SELECT * EXCLUDE (nova_raw, nova_num),
            nova_raw IS NOT NULL AND nova_group IS NULL AS nova_invalid,
            {repaired} AS repaired_line, CAST(NULL AS VARCHAR) AS off_blank_reason
        FROM (
            SELECT
                nullif(trim(code), '') AS code,
                {_text("product_name", present)} AS product_name,
                {_text("brands", present)} AS brands,
                {", ".join(_tags(c, present) for c in TAG_COLUMNS)},
                nullif(trim(nova_group), '') AS nova_raw,
                TRY_CAST(nova_raw AS DOUBLE) AS nova_num,
                CASE WHEN nova_num IN (1, 2, 3, 4) THEN CAST(nova_num AS TINYINT) END
                    AS nova_group,
                {_has_text(present)} AS has_ingredients_text,
                {_epoch("created_t", present)} AS created_t,
                {_epoch("last_modified_t", present)} AS last_modified_t,
                {nutrients.raw_tsv_sql(present)},
                {broken_line_sql(columns)} AS broken_line
            FROM {source}
        )
    """


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> object:
    """A setting's current value, to put it back as it was."""
    return con.execute("SELECT current_setting(?)", [name]).fetchone()[0]


def ingest_products(
    con: duckdb.DuckDBPyConnection, dump: Dump, *, max_shrink: float = MAX_SHRINK
) -> IngestStats:
    """Replace `products` with the dump's rows, one per code (latest `last_modified_t` wins).

    Raises DumpError, leaving the previous table and `dumps` untouched, when the dump has no
    product or no labelled one, lacks a required column, or would shrink the table by more
    than `max_shrink` (ShrinkError; an accepted dump's `dumps` row records the `max_shrink` it
    passed). Lines with more or fewer fields than the header are skipped and counted; lines
    with invalid UTF-8 are kept with the bad bytes replaced, and counted.
    """
    dump.check_on_disk()
    columns: Layout
    if parquet_dump.is_parquet(dump.path):
        columns = parquet_dump.check_parquet(dump.path)
    elif jsonl_dump.is_jsonl(dump.path):
        columns = jsonl_dump.check_jsonl(dump.path)
    else:
        columns = dump_header(dump.path)
        check_columns(columns, dump.path)

    con.execute(DUMPS_DDL)
    for migration in DUMPS_MIGRATIONS:
        con.execute(migration)
    previous = None
    if con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'products'"
    ).fetchone()[0]:
        previous = con.execute("SELECT count(*) FROM products").fetchone()[0]

    # Row order in `products` means nothing (it used to come out of a window in any order), so
    # let the scan and the inserts run without keeping it; the caller's setting comes back after.
    insertion_order = _setting(con, "preserve_insertion_order")
    con.execute("SET preserve_insertion_order = false")
    try:
        with transaction(con), _gzip_checked_alongside(dump):
            stats = _replace_products(con, dump, columns, previous, max_shrink)
            dump.check_on_disk()  # a linked dump's source rewritten while it was read
            return stats
    finally:
        con.execute(f"SET preserve_insertion_order = {insertion_order}")


@contextmanager
def _gzip_checked_alongside(dump: Dump) -> Iterator[None]:
    """For a gzip dump, inflate it a second time in a thread while DuckDB reads it (DuckDB reads
    a gzip file on one core), so a damaged stream, which DuckDB reads on without a word, fails
    the step before anything is replaced. Where DuckDB fails to read the file, the check says
    whether the stream is truncated or damaged."""
    if not dump.gzipped:
        yield
        return
    stop = threading.Event()
    with ThreadPoolExecutor(1, thread_name_prefix="gzip-check") as pool:
        checked = pool.submit(check_gzip_file, dump.path, stop)
        try:
            yield
        except duckdb.IOException:
            checked.result()
            raise
        except BaseException:
            stop.set()
            raise
        checked.result()


def _stage(con: duckdb.DuckDBPyConnection, dump: Dump, columns: Layout) -> int:
    """The dump's rows into `staged_products`; the lines DuckDB could not read at all."""
    if isinstance(columns, dict):
        sql = parquet_dump.staged_sql(dump.path, columns)
        con.execute("CREATE OR REPLACE TEMP TABLE staged_products AS " + sql)
        return 0
    if isinstance(columns, jsonl_dump.JsonlLayout):
        stage_jsonl(con, columns)
        return 0
    source = read_csv_sql(dump.path, columns, rejects=True)
    con.execute("CREATE OR REPLACE TEMP TABLE staged_products AS " + _staged_sql(source, columns))
    con.execute(
        "INSERT INTO staged_products "
        + _staged_sql(invalid_utf8_sql(columns), columns, repaired=True)
    )
    return con.execute(
        "SELECT count(*) FROM (SELECT line FROM dump_rejects GROUP BY scan_id, file_id, line "
        "HAVING NOT bool_and(error_type = 'INVALID ENCODING'))"
    ).fetchone()[0]


def stage_jsonl(con: duckdb.DuckDBPyConnection, layout: jsonl_dump.JsonlLayout) -> None:
    """A JSONL dump's documents into `staged_products`. A row with no field read is a line that
    is not a JSON object, or a document with none of the fields: only a second read tells how
    many of each (OFF's dump has neither, so it is not paid there). The documents stay, as rows
    without a code; the broken lines stay flagged, to be skipped and counted."""
    con.execute("CREATE OR REPLACE TEMP TABLE staged_products AS " + jsonl_dump.staged_sql(layout))
    nothing_read = con.execute("SELECT count(*) FROM staged_products WHERE broken_line").fetchone()
    if not nothing_read[0]:
        return
    not_objects = con.execute(jsonl_dump.not_objects_sql(layout)).fetchone()[0]
    # The rows are all NULL, so which of them stand for the documents does not matter.
    con.execute(
        "UPDATE staged_products SET broken_line = false WHERE rowid IN "
        "(SELECT rowid FROM staged_products WHERE broken_line LIMIT ?)",
        [max(nothing_read[0] - not_objects, 0)],
    )


def prepare_staged(con: duckdb.DuckDBPyConnection) -> None:
    """What `products_rows_sql` reads beside `staged_products`: the rows that lose to a newer
    one of the same code, and the markers each unlabelled row holds."""
    con.execute(LOSING_ROWS_DDL)
    con.execute(markers_table_sql())
    con.execute(marker_votes_sql())


def products_rows_sql() -> str:
    """The staged rows as `products` rows, one per code (a parameter: the dump's sha256): the
    blank reason OFF wrote, else the one its rules give, and the nutrients cleaned. A full
    ingest and a delta write their rows with it."""
    return f"""
        SELECT code, product_name, brands, ingredients_tags, additives_tags, categories_tags,
               countries_tags, nova_group, has_ingredients_text,
               CASE WHEN nova_group IS NULL THEN coalesce(off_blank_reason, {blank_reason_sql()}) END
                   AS nova_blank_reason,
               {nutrients.clean_sql()}, created_t, last_modified_t, ? AS dump_sha256
        FROM staged_products
        ANTI JOIN losing_rows ON losing_rows.staged_row = staged_products.rowid
        LEFT JOIN marker_votes ON marker_votes.staged_row = staged_products.rowid
        WHERE code IS NOT NULL
    """


def drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    for table in ("staged_products", "losing_rows", "nova_markers", "marker_votes"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _replace_products(
    con: duckdb.DuckDBPyConnection,
    dump: Dump,
    columns: Layout,
    previous: int | None,
    max_shrink: float,
) -> IngestStats:
    """Stage the dump's rows, repair or skip what is broken, and swap `products` and the dump's
    `dumps` row in (inside the caller's transaction)."""
    rejected = _stage(con, dump, columns)
    lines_read, broken, rows_without_code, invalid, repaired = con.execute(
        """
        SELECT count(*) FILTER (NOT broken_line), count(*) FILTER (broken_line),
            count(*) FILTER (code IS NULL AND NOT broken_line),
            count(*) FILTER (nova_invalid AND NOT broken_line),
            count(*) FILTER (repaired_line AND NOT broken_line)
        FROM staged_products
        """
    ).fetchone()
    if broken:
        con.execute("DELETE FROM staged_products WHERE broken_line")
    skipped = rejected + broken
    prepare_staged(con)
    con.execute(LOAD_DDL)
    con.execute(f"INSERT INTO products {products_rows_sql()}", [dump.sha256])
    con.execute("ALTER TABLE products ADD PRIMARY KEY (code)")
    products, labelled = con.execute("SELECT count(*), count(nova_group) FROM products").fetchone()
    if products == 0:
        raise DumpError(
            f"dump {dump.source} has no product rows ({lines_read} data lines read, "
            f"{skipped} broken lines skipped)"
        )
    if not labelled:
        raise DumpError(
            f"dump {dump.source} has {products} products and not one with a NOVA group "
            f"(column nova_group empty or invalid in every line): nothing to train or evaluate "
            "on; refusing to replace the current table"
        )
    if previous and products < previous * (1 - max_shrink):
        raise ShrinkError(dump.source, products, previous, max_shrink)
    invalid_nutrients = con.execute(
        f"SELECT coalesce(sum({nutrients.invalid_count_sql()}), 0) FROM staged_products "
        "ANTI JOIN losing_rows ON losing_rows.staged_row = staged_products.rowid "
        "WHERE code IS NOT NULL"
    ).fetchone()[0]
    stats = IngestStats(
        lines_read=lines_read,
        skipped_lines=skipped,
        rows_without_code=rows_without_code,
        duplicate_rows=lines_read - rows_without_code - products,
        invalid_nova_groups=invalid,
        products=products,
        previous_products=previous,
        repaired_lines=repaired,
        invalid_nutrients=int(invalid_nutrients),
    )
    recorded = [f for f in fields(IngestStats) if f.name != "previous_products"]
    con.execute(
        "INSERT OR REPLACE INTO dumps BY NAME SELECT ? AS dump_sha256, ? AS source, ? AS path, "
        "? AS bytes, current_timestamp AS ingested_at, ? AS max_shrink, "
        + ", ".join(f"? AS {f.name}" for f in recorded),
        [dump.sha256, dump.source, dump.path, dump.bytes, max_shrink]
        + [getattr(stats, f.name) for f in recorded],
    )
    drop_staging(con)
    return stats
