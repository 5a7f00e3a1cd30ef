"""OFF's Parquet export as a dump: the real sample written in the export's schema gives the very
`products` the TSV gives; bad Parquet is refused by name and the last good table stays."""

import re
import sys
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.database import sql_literal
from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ingest.dump_format import DumpError
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS
from nova_assets.lib.paths import REPO_ROOT, SAMPLE_DUMP
from nova_assets.lib.warehouse.products import ingest_products

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.generate_dump import LANGUAGE_TEXTS, write_parquet  # noqa: E402

# The export holds nutrients as float32: compared at that precision.
TABLE = (
    "SELECT count(*), hash(list(p ORDER BY code)) FROM (SELECT * EXCLUDE (dump_sha256) REPLACE ("
    + ", ".join(f"CAST({c} AS FLOAT) AS {c}" for c in NUTRIENT_COLUMNS)
    + ") FROM products) p"
)


@pytest.fixture(scope="module")
def sample_parquet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("parquet") / "food.parquet"
    assert write_parquet(SAMPLE_DUMP, path) == 1000
    return path


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        yield con


def rewrite(source: Path, out: Path, select: str) -> Path:
    """`source` rewritten through `select` (a SELECT list over `src`, its rows, or a whole
    query naming `src`) as another Parquet file."""
    query = select if select.lstrip().upper().startswith("SELECT") else f"SELECT {select} FROM src"
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet({sql_literal(source)})")
        con.execute(f"COPY ({query}) TO {sql_literal(out)} (FORMAT parquet)")
    return out


def ingest(con, path: Path, raw: Path):
    return ingest_products(con, fetch_dump(str(path), raw))


def test_the_sample_as_parquet_gives_the_same_products_as_the_tsv(con, tmp_path, sample_parquet):
    ingest(con, SAMPLE_DUMP, tmp_path / "raw")
    from_tsv = con.execute(TABLE).fetchone()
    stats = ingest(con, sample_parquet, tmp_path / "raw")
    assert con.execute(TABLE).fetchone() == from_tsv and from_tsv[0] == 1000
    assert (stats.lines_read, stats.skipped_lines, stats.products) == (1000, 0, 1000)
    dump = con.execute("SELECT path FROM dumps ORDER BY ingested_at DESC LIMIT 1").fetchone()[0]
    assert dump.endswith(".parquet") and Path(dump).read_bytes() == sample_parquet.read_bytes()


def test_duplicates_invalid_groups_and_codeless_rows_are_counted_like_the_tsvs(
    con, tmp_path, sample_parquet
):
    messy = rewrite(
        sample_parquet,
        tmp_path / "messy.parquet",
        "SELECT * EXCLUDE (n) REPLACE (CASE WHEN n = 1 THEN '' ELSE code END AS code, "
        "CASE WHEN n = 2 THEN 7 ELSE nova_group END AS nova_group) "
        "FROM (SELECT *, row_number() OVER (ORDER BY code) AS n FROM src) "
        "UNION ALL (SELECT * REPLACE (last_modified_t - 1 AS last_modified_t) FROM src "
        "ORDER BY code DESC LIMIT 1)",
    )
    stats = ingest(con, messy, tmp_path / "raw")
    assert (stats.lines_read, stats.rows_without_code, stats.duplicate_rows) == (1001, 1, 1)
    assert stats.invalid_nova_groups == 1 and stats.products == 999
    assert stats.products == stats.lines_read - stats.rows_without_code - stats.duplicate_rows


def test_the_main_name_wins_and_without_one_the_first_given(con, tmp_path, sample_parquet):
    names = rewrite(
        sample_parquet,
        tmp_path / "names.parquet",
        "* REPLACE (CASE WHEN row_number() OVER (ORDER BY code) = 1 THEN "
        f"CAST([{{'lang': 'fr', 'text': 'Pain'}}, {{'lang': 'main', 'text': 'Bread'}}] AS {LANGUAGE_TEXTS}) "
        "WHEN row_number() OVER (ORDER BY code) = 2 THEN "
        f"CAST([{{'lang': 'de', 'text': ' '}}, {{'lang': 'it', 'text': 'Pane'}}] AS {LANGUAGE_TEXTS}) "
        "ELSE product_name END AS product_name)",
    )
    ingest(con, names, tmp_path / "raw")
    first_two = con.execute("SELECT product_name FROM products ORDER BY code LIMIT 2").fetchall()
    assert first_two == [("Bread",), ("Pane",)]


@pytest.mark.parametrize(
    ("select", "message"),
    [
        ("* EXCLUDE (nova_group)", "lacks required column(s) nova_group"),
        (
            "* REPLACE (CAST(nova_group AS VARCHAR) AS nova_group)",
            "nova_group is VARCHAR (expected TINYINT",
        ),
        (
            "* REPLACE (array_to_string(categories_tags, ',') AS categories_tags)",
            "categories_tags is VARCHAR (expected VARCHAR[])",
        ),
        ("* REPLACE (CAST(code AS BIGINT) AS code)", "code is BIGINT (expected VARCHAR)"),
    ],
)
def test_a_wrong_schema_is_refused_by_name_and_the_table_kept(
    con, tmp_path, sample_parquet, select, message
):
    ingest(con, sample_parquet, tmp_path / "raw")
    before = con.execute(TABLE).fetchone()
    bad = rewrite(sample_parquet, tmp_path / "bad.parquet", select)
    with pytest.raises(DumpError, match=re.escape(message)):
        ingest(con, bad, tmp_path / "raw")
    assert con.execute(TABLE).fetchone() == before


def test_a_truncated_parquet_file_is_refused_before_it_is_copied(tmp_path, sample_parquet):
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(sample_parquet.read_bytes()[: sample_parquet.stat().st_size // 2])
    with pytest.raises(DumpError, match="truncated Parquet file"):
        fetch_dump(str(cut), tmp_path / "raw")
    assert not [p for p in (tmp_path / "raw").iterdir()]


def test_a_truncated_parquet_download_is_refused_and_a_whole_one_taken(
    server, tmp_path, sample_parquet
):
    whole = sample_parquet.read_bytes()
    server.serve(whole[:-100])
    with pytest.raises(DumpError, match="truncated Parquet file"):
        fetch_dump(server.url, tmp_path / "raw", attempts=1, retry_delay=0)
    server.serve(whole)
    dump = fetch_dump(server.url, tmp_path / "raw", attempts=1, retry_delay=0)
    assert dump.path.endswith(".parquet") and not dump.gzipped
    assert Path(dump.path).read_bytes() == whole


def test_a_damaged_footer_is_a_clear_error(con, tmp_path, sample_parquet):
    data = bytearray(sample_parquet.read_bytes())
    data[-40:-8] = b"\xff" * 32  # the footer's metadata, magic bytes left in place
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DumpError, match="not a readable Parquet file"):
        fetch_dump(str(damaged), tmp_path / "raw")
