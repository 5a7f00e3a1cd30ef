"""What a dump file is: OFF's tab-separated export with a header naming its columns, and the
one way DuckDB reads it, exactly (a line with more or fewer fields than the header never
becomes a row; a line with invalid UTF-8 does, with its bad bytes replaced).

Errors about a file never quote its content beyond names that look like column names: a path
given by mistake (or on purpose, `/etc/shadow`) must not end up in logs and run history.
"""

from __future__ import annotations

import gzip
import re
import threading
from pathlib import Path

from isal import isal_zlib

from nova_assets.lib import nutrients
from nova_assets.lib.database import sql_literal, sql_name


class DumpError(ValueError):
    """The dump cannot be used; the message says why."""


REQUIRED_COLUMNS = (
    "code",
    "last_modified_t",
    "ingredients_tags",
    "additives_tags",
    "categories_tags",
    "nova_group",
)
OPTIONAL_COLUMNS = ("product_name", "brands", "countries_tags", "created_t", "ingredients_text")
TAG_COLUMNS = ("ingredients_tags", "additives_tags", "categories_tags", "countries_tags")

# Fields of a line past the header's: a line that has one is broken, even when DuckDB would
# take its empty last field for a trailing delimiter.
EXTRA_FIELD = "__extra_field"
# No field is this string, so an empty field reads as '' and a field the line lacks as NULL.
NO_NULL = "\x01no-null\x01"
HEADER_LIMIT = 1 << 20
COLUMN_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
GZIP_MAGIC = b"\x1f\x8b"
INFLATE_CHUNK = 1 << 20


class GzipCheck:
    """Inflates a gzip stream as it arrives, keeping nothing, to prove it is whole and
    undamaged (every member's CRC and length). DuckDB's reader notices a stream that ends early
    but not a damaged one: it reads on and loses rows without a word.

    Handles multi-member files (concatenated gzip streams), which `gzip -c a b` writes.
    """

    def __init__(self) -> None:
        self._inflater = isal_zlib.decompressobj(wbits=31)

    def feed(self, chunk: bytes) -> None:
        data = chunk
        try:
            while data:
                self._inflater.decompress(data, INFLATE_CHUNK)
                data = self._inflater.unconsumed_tail
                if self._inflater.eof:
                    data = self._inflater.unused_data + data
                    if data:
                        self._inflater = isal_zlib.decompressobj(wbits=31)
        except isal_zlib.error as exc:
            raise DumpError(f"dump is not a valid gzip file: {exc}") from exc

    @property
    def complete(self) -> bool:
        return self._inflater.eof


def check_gzip_file(path: str | Path, stop: threading.Event | None = None) -> None:
    """Raise DumpError unless the gzip file at `path` is whole and undamaged; return early,
    unchecked, once `stop` is set."""
    check = GzipCheck()
    with open(path, "rb") as file:
        while chunk := file.read(INFLATE_CHUNK):
            if stop is not None and stop.is_set():
                return
            try:
                check.feed(chunk)
            except DumpError as exc:
                raise DumpError(f"dump {path} is damaged: {exc}") from exc
    if not check.complete:
        raise DumpError(
            f"dump {path} is a truncated gzip file: it ends before its gzip stream does"
        )


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts like a gzip stream."""
    with open(path, "rb") as file:
        return file.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def dump_header(path: str) -> list[str]:
    """The header's column names, read by us (no sniffing, so a long or odd line further down
    cannot make the dump unreadable)."""
    try:
        with (gzip.open if is_gzip(path) else open)(path, "rb") as file:
            line = file.readline(HEADER_LIMIT)
    except gzip.BadGzipFile as exc:
        raise DumpError(f"dump {path} is not a valid gzip file") from exc
    except EOFError as exc:
        raise DumpError(f"dump {path} is a truncated gzip file (it ends in its header)") from exc
    except OSError as exc:
        raise DumpError(
            f"dump {path} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from exc
    if not line:
        raise DumpError(f"dump {path} is empty: no header line, no bytes once inflated")
    if not line.endswith(b"\n"):
        raise DumpError(
            f"dump {path} has no header line (no line end in its first {HEADER_LIMIT:,} bytes)"
        )
    try:
        names = line.rstrip(b"\r\n").decode("utf-8").split("\t")
    except UnicodeDecodeError as exc:
        raise DumpError(f"dump {path} has a header that is not UTF-8 text") from exc
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DumpError(f"dump {path} repeats header column(s) {_shown(repeated)}")
    return names


def check_columns(columns: list[str], path: str = "") -> None:
    """Raise DumpError unless the header has every required column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if not missing:
        return
    named = f"dump {path + ' ' if path else ''}"
    for name, delimiter in (("comma", ","), ("semicolon", ";")):
        if names := _separated_by(columns, delimiter):
            raise DumpError(
                f"{named}looks {name}-separated (its header splits on '{delimiter}' into "
                f"{len(names)} names: {_shown(names)}); OFF's CSV export is tab-separated: give "
                "the file as OFF publishes it, not one re-saved by a spreadsheet"
            )
    raise DumpError(
        f"{named}lacks required column(s) {', '.join(missing)}; "
        f"its header has {len(columns)} tab-separated field(s): {_shown(columns)}"
    )


def _separated_by(columns: list[str], delimiter: str) -> list[str]:
    """The header's names split on `delimiter` if, read as one tab-separated field, it holds
    every required column that way (a CSV file with another separator than OFF's tab); else []."""
    if len(columns) != 1:
        return []
    names = [n.strip().strip('"') for n in columns[0].split(delimiter)]
    return names if all(c in names for c in REQUIRED_COLUMNS) else []


def check_is_dump(path: str) -> None:
    """Raise DumpError unless `path` starts with a dump's header: checked before a local file
    is copied, so no other file is ever taken in."""
    check_columns(dump_header(path), path)


def _shown(names: list[str]) -> str:
    """The first names, if they look like column names; else only that they do not."""
    if all(COLUMN_NAME.fullmatch(n) for n in names[:5]):
        return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    return "not column names (not shown)"


def read_csv_sql(path: str, columns: list[str], *, rejects: bool = False) -> str:
    """The one `read_csv` call for OFF dumps: tab-separated, no quoting, every field text, the
    header's `columns` plus `EXTRA_FIELD`; lines short of fields are padded with NULL (see
    `broken_line_sql`)."""
    types = "{" + ", ".join(f"{sql_literal(c)}: 'VARCHAR'" for c in [*columns, EXTRA_FIELD]) + "}"
    extra = ", store_rejects=true, rejects_table='dump_rejects', rejects_scan='dump_scans'"
    return (
        f"read_csv({sql_literal(path)}, delim='\\t', quote='', escape='', header=true, "
        f"auto_detect=false, columns={types}, ignore_errors=true, null_padding=true, "
        f"nullstr={sql_literal(NO_NULL)}{extra if rejects else ''})"
    )


def broken_line_sql(columns: list[str]) -> str:
    """Whether a row of `read_csv_sql` came from a line with more or fewer fields than the
    header: something in the extra field, or nothing at all in the last one."""
    return f"({EXTRA_FIELD} IS NOT NULL OR {sql_name(columns[-1])} IS NULL)"


def invalid_utf8_sql(columns: list[str]) -> str:
    """The lines `read_csv_sql` rejected only for invalid UTF-8, as DuckDB keeps them (bad
    bytes replaced by '?'), split into the header's columns: they are products like any other."""
    used = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *nutrients.SOURCE_COLUMNS, columns[-1]]
    fields = ", ".join(
        f"fields[{i + 1}] AS {sql_name(c)}" for i, c in enumerate(columns) if c in used
    )
    return f"""(
        SELECT {fields}, fields[{len(columns) + 1}] AS {EXTRA_FIELD}
        FROM (
            SELECT string_split(any_value(csv_line), chr(9)) AS fields
            FROM dump_rejects GROUP BY scan_id, file_id, line
            HAVING bool_and(error_type = 'INVALID ENCODING')
        )
    )"""
