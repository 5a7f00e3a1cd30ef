"""OFF's JSONL export (`openfoodfacts-products.jsonl.gz`, one MongoDB product document a line)
as a dump: recognised by its content, read by DuckDB as a stream with the few fields `products`
needs named and typed up front (no schema sniffing of a 13 GB file), and staged as the same
columns the TSV gives, so `products` applies one contract to every dump.

Every field is read as text (tags as lists of text) and typed as the TSV's fields are: OFF writes
`nova_group`, the timestamps and the nutrients as numbers or as strings, depending on the
product's age. A line that is not a JSON object is skipped and counted; OFF's own reason for a
blank `nova_group` (`nova_group_error`) is kept where it wrote one.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from nova_assets.lib import nutrients
from nova_assets.lib.database import sql_literal, sql_name
from nova_assets.lib.ingest.dump_format import TAG_COLUMNS, DumpError, is_gzip
from nova_assets.lib.ingest.parquet_dump import tags_sql

SNIFF_LIMIT = 1 << 20
"""Bytes of content looked at for the first non-blank one: past that, it is no JSONL dump."""
FIRST_LINE_LIMIT = 16 << 20
"""DuckDB's default `maximum_object_size`: a first line longer than this is refused."""
BLANK = b" \t\r\n"
OFF_BLANK_REASONS = ("missing_ingredients", "missing_category", "too_many_unknown_ingredients")
"""The `nova_group_error` values OFF writes, each one of `nova_rules.BLANK_REASONS`."""
TEXT_FIELDS = (
    "code",
    "_id",
    "product_name",
    "brands",
    "ingredients_text",
    "nova_group",
    "nova_group_error",
    "created_t",
    "last_modified_t",
)


@dataclass(frozen=True)
class JsonlLayout:
    """A JSONL dump checked for reading: where it is and whether DuckDB must inflate it."""

    path: str
    gzipped: bool


def _first_byte(path: str | Path) -> bytes:
    """The content's first non-blank byte (inflated if gzip), b"" when there is none within
    SNIFF_LIMIT or the stream cannot be inflated (the TSV path then says what is wrong)."""
    inflater = zlib.decompressobj(wbits=31) if is_gzip(path) else None
    seen = 0
    with open(path, "rb") as file:
        while seen < SNIFF_LIMIT and (chunk := file.read(1 << 16)):
            if inflater is not None:
                try:
                    chunk = inflater.decompress(chunk, SNIFF_LIMIT)
                except zlib.error:
                    return b""
            seen += len(chunk)
            text = chunk.lstrip(BLANK)
            if text:
                return text[:1]
    return b""


def is_jsonl(path: str | Path) -> bool:
    """Whether the file (plain or gzip) starts like newline-delimited JSON: with `{`, whatever
    its name."""
    return _first_byte(path) == b"{"


def check_jsonl(path: str | Path) -> JsonlLayout:
    """A JSONL dump ready to read, or DumpError unless its first line is a JSON object with a
    `code` or an `_id`: checked before a local file is copied, so no other JSON file is taken
    in. Later lines are judged as they are read (skipped and counted when broken)."""
    gzipped = is_gzip(path)
    try:
        with (gzip.open if gzipped else open)(path, "rb") as file:
            line = file.readline(FIRST_LINE_LIMIT)
            while line and not line.strip(BLANK):
                line = file.readline(FIRST_LINE_LIMIT)
    except EOFError as exc:
        raise DumpError(
            f"dump {path} is a truncated gzip file (it ends in its first line)"
        ) from exc
    except OSError as exc:
        raise DumpError(f"dump {path} cannot be read as JSONL ({type(exc).__name__})") from exc
    if not line.endswith(b"\n") and len(line) >= FIRST_LINE_LIMIT:
        raise DumpError(
            f"dump {path} has no line end in its first {FIRST_LINE_LIMIT:,} bytes: not JSONL"
        )
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise DumpError(
            f"dump {path} starts with '{{' but its first line is not a JSON object: not "
            "newline-delimited JSON (one product document a line)"
        )
    if "code" not in document and "_id" not in document:
        raise DumpError(
            f"dump {path} is JSONL but its first document has neither `code` nor `_id`: "
            "not an Open Food Facts products export"
        )
    return JsonlLayout(str(path), gzipped)


def _options(layout: JsonlLayout) -> str:
    compression = "gzip" if layout.gzipped else "none"
    return f"format='newline_delimited', compression='{compression}', ignore_errors=true"


def read_json_sql(layout: JsonlLayout) -> str:
    """The one `read_json` call for JSONL dumps: only the fields `products` uses, as text (the
    nutrients inside `nutriments` by their CSV names); a line that is not a JSON object gives a
    row of NULLs (`ignore_errors`) that `not_objects_sql` tells from an empty document."""
    text = [f"{sql_literal(name)}: 'VARCHAR'" for name in TEXT_FIELDS]
    tags = [f"{sql_literal(name)}: 'VARCHAR[]'" for name in TAG_COLUMNS]
    struct = ", ".join(f"{sql_name(c)} VARCHAR" for c in nutrients.SOURCE_COLUMNS)
    nutriments = f"'nutriments': {sql_literal(f'STRUCT({struct})')}"
    columns = "{" + ", ".join([*text, *tags, nutriments]) + "}"
    return f"read_json({sql_literal(layout.path)}, {_options(layout)}, columns={columns})"


def not_objects_sql(layout: JsonlLayout) -> str:
    """How many lines are not a JSON object (invalid JSON, an array, a number, `null`): a
    second pass, needed only when the first read gave rows with nothing in them."""
    return (
        f"SELECT count(*) FROM read_json({sql_literal(layout.path)}, {_options(layout)}, "
        "records=false, columns={'json': 'JSON'}) "
        "WHERE json IS NULL OR json_type(json) <> 'OBJECT'"
    )


def _text(field: str) -> str:
    return f"nullif(trim({sql_name(field)}), '')"


def _epoch(field: str) -> str:
    """Unix seconds, as a number or a string, as the TSV's are read."""
    return f"CAST(to_timestamp(TRY_CAST({sql_name(field)} AS BIGINT)) AS TIMESTAMP)"


def staged_sql(layout: JsonlLayout) -> str:
    """The documents typed and flagged like `products._staged_sql` types a TSV's lines:
    `code` (else `_id`), `nova_group` 1..4 from a number or a string, `off_blank_reason` OFF's
    `nova_group_error` where it is one OFF writes; `broken_line` marks rows with no field at
    all (each a line that is not a JSON object, or an empty document: `products` tells which)."""
    present = set(TAG_COLUMNS)
    fields = [*TEXT_FIELDS, *TAG_COLUMNS, "nutriments"]
    nothing = " AND ".join(f"{sql_name(f)} IS NULL" for f in fields)
    flattened = ", ".join(
        f"nutriments.{sql_name(c)} AS {sql_name(c)}" for c in nutrients.SOURCE_COLUMNS
    )
    reasons = ", ".join(sql_literal(r) for r in OFF_BLANK_REASONS)
    return f"""
        SELECT * EXCLUDE (nova_raw, nova_num),
            nova_raw IS NOT NULL AND nova_group IS NULL AS nova_invalid,
            false AS repaired_line
        FROM (
            SELECT
                coalesce({_text("code")}, {_text("_id")}) AS code,
                {_text("product_name")} AS product_name,
                {_text("brands")} AS brands,
                {", ".join(tags_sql(c, present) for c in TAG_COLUMNS)},
                {_text("nova_group")} AS nova_raw,
                TRY_CAST(nova_raw AS DOUBLE) AS nova_num,
                CASE WHEN nova_num IN (1, 2, 3, 4) THEN CAST(nova_num AS TINYINT) END
                    AS nova_group,
                {_text("ingredients_text")} IS NOT NULL AS has_ingredients_text,
                {_epoch("created_t")} AS created_t,
                {_epoch("last_modified_t")} AS last_modified_t,
                {nutrients.raw_tsv_sql(set(nutrients.SOURCE_COLUMNS))},
                CASE WHEN trim(nova_group_error) IN ({reasons}) THEN trim(nova_group_error) END
                    AS off_blank_reason,
                nothing_read AS broken_line
            FROM (
                SELECT *, {flattened}, ({nothing}) AS nothing_read
                FROM {read_json_sql(layout)}
            )
        )
    """
