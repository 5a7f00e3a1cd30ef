from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.dump import DumpError, fetch_dump
from nova_assets.lib.products import PRODUCTS_DDL, REQUIRED_COLUMNS, ingest_products
from nova_assets_tests.conftest import get_field, set_field, write_dump


def ingest(con, tmp_path: Path, lines: list[str], name: str = "dump.tsv", **kwargs):
    dump = fetch_dump(str(write_dump(tmp_path / name, lines)), tmp_path / "raw")
    return dump, ingest_products(con, dump, **kwargs)


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def test_sample_is_ingested_with_typed_columns(con, tmp_path, sample_lines):
    dump, stats = ingest(con, tmp_path, sample_lines)
    assert stats.products == 1000 and stats.lines_read == 1000 and stats.skipped_lines == 0
    groups = dict(con.execute("SELECT nova_group, count(*) FROM products GROUP BY ALL").fetchall())
    header = sample_lines[0]
    expected: dict = {}
    for line in sample_lines[1:]:
        value = get_field(line, header, "nova_group")
        key = int(value) if value else None
        expected[key] = expected.get(key, 0) + 1
    assert groups == expected
    types = dict((r[0], r[1]) for r in con.execute("DESCRIBE products").fetchall())
    assert types["code"] == "VARCHAR"
    assert types["ingredients_tags"] == "VARCHAR[]"
    assert types["nova_group"] == "TINYINT"
    assert types["last_modified_t"] == "TIMESTAMP"
    first = sample_lines[1]
    code = get_field(first, header, "code")
    tags = con.execute(
        "SELECT categories_tags, dump_sha256 FROM products WHERE code = ?", [code]
    ).fetchone()
    assert tags[0] == get_field(first, header, "categories_tags").split(",")
    assert tags[1] == dump.sha256
    assert con.execute("SELECT count(*) FROM dumps").fetchone()[0] == 1


def test_leading_zeros_are_kept(con, tmp_path, sample_lines):
    header = sample_lines[0]
    line = set_field(sample_lines[1], header, "code", "0000000000017")
    ingest(con, tmp_path, [header, line])
    assert con.execute("SELECT code FROM products").fetchall() == [("0000000000017",)]


def test_duplicate_codes_keep_the_latest_row(con, tmp_path, sample_lines):
    header = sample_lines[0]
    old = set_field(
        set_field(sample_lines[1], header, "last_modified_t", "1500000000"),
        header,
        "product_name",
        "old",
    )
    new = set_field(
        set_field(sample_lines[1], header, "last_modified_t", "1700000000"),
        header,
        "product_name",
        "new",
    )
    _, stats = ingest(con, tmp_path, [header, new, sample_lines[2], old])
    assert stats.duplicate_rows == 1 and stats.products == 2
    code = get_field(sample_lines[1], header, "code")
    assert (
        con.execute("SELECT product_name FROM products WHERE code = ?", [code]).fetchone()[0]
        == "new"
    )


def test_broken_lines_are_skipped_and_counted(con, tmp_path, sample_lines):
    header = sample_lines[0]
    broken = sample_lines[3] + "\textra\tfields"
    short = "\t".join(sample_lines[4].split("\t")[:5])
    _, stats = ingest(con, tmp_path, [header, sample_lines[1], broken, sample_lines[2], short])
    assert stats.skipped_lines == 2
    assert stats.products == 2


def test_garbage_nova_groups_become_null_and_are_counted(con, tmp_path, sample_lines):
    header = sample_lines[0]
    lines = [header] + [
        set_field(sample_lines[i + 1], header, "nova_group", value)
        for i, value in enumerate(["4", "7", "abc", "0", "2.0", "", " 3 "])
    ]
    _, stats = ingest(con, tmp_path, lines)
    assert stats.invalid_nova_groups == 3
    values = sorted(
        (r[0] for r in con.execute("SELECT nova_group FROM products").fetchall()),
        key=lambda v: (v is None, v),
    )
    assert values == [2, 3, 4, None, None, None, None]


def test_unknown_extra_columns_are_ignored(con, tmp_path, sample_lines):
    lines = [sample_lines[0] + "\tbrand_new_column"] + [
        line + "\tsomething" for line in sample_lines[1:50]
    ]
    _, stats = ingest(con, tmp_path, lines)
    assert stats.products == 49 and stats.skipped_lines == 0


def test_optional_columns_may_be_missing(con, tmp_path, sample_lines):
    header = sample_lines[0].split("\t")
    keep = [i for i, c in enumerate(header) if c not in ("product_name", "countries_tags")]
    lines = ["\t".join(line.split("\t")[i] for i in keep) for line in sample_lines[:30]]
    _, stats = ingest(con, tmp_path, lines)
    assert stats.products == 29
    assert con.execute(
        "SELECT count(product_name), count(countries_tags) FROM products"
    ).fetchone() == (0, 0)


def test_missing_required_columns_are_named_and_table_kept(con, tmp_path, sample_lines):
    ingest(con, tmp_path, sample_lines[:100], name="good.tsv")
    header = sample_lines[0].split("\t")
    drop = {header.index("nova_group"), header.index("categories_tags")}
    lines = [
        "\t".join(f for i, f in enumerate(line.split("\t")) if i not in drop)
        for line in sample_lines
    ]
    with pytest.raises(DumpError, match="categories_tags, nova_group"):
        ingest(con, tmp_path, lines, name="bad.tsv")
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 99
    assert con.execute("SELECT count(*) FROM dumps").fetchone()[0] == 1


def test_header_only_dump_is_refused_and_table_kept(con, tmp_path, sample_lines):
    ingest(con, tmp_path, sample_lines[:100], name="good.tsv")
    with pytest.raises(DumpError, match="no product rows"):
        ingest(con, tmp_path, sample_lines[:1], name="header.tsv")
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 99


def test_a_dump_that_halves_the_table_is_refused(con, tmp_path, sample_lines):
    ingest(con, tmp_path, sample_lines[:101], name="good.tsv")
    with pytest.raises(DumpError, match="fall of more than 50%"):
        ingest(con, tmp_path, sample_lines[:40], name="small.tsv")
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 100
    _, stats = ingest(con, tmp_path, sample_lines[:40], name="small.tsv", max_shrink=0.9)
    assert stats.products == 39 and stats.previous_products == 100


def test_required_columns_are_the_contract():
    assert set(REQUIRED_COLUMNS) >= {"code", "nova_group", "ingredients_tags"}


def test_latest_of_several_duplicates_wins_and_codeless_rows_are_counted(
    con, tmp_path, sample_lines
):
    """Dedup windows only the duplicated codes; the counts and the dumps row must still add up."""
    header = sample_lines[0]
    row = sample_lines[1]

    def version(modified: str, name: str) -> str:
        line = set_field(row, header, "last_modified_t", modified)
        return set_field(line, header, "product_name", name)

    lines = [
        header,
        version("1500000000", "old"),
        version("", "undated"),
        sample_lines[2],
        version("1700000000", "new"),
        set_field(sample_lines[3], header, "code", ""),
        set_field(sample_lines[4], header, "code", "  "),
        version("1600000000", "middle"),
    ]
    _, stats = ingest(con, tmp_path, lines)
    assert (stats.lines_read, stats.rows_without_code, stats.duplicate_rows) == (7, 2, 3)
    assert stats.products == 2
    code = get_field(row, header, "code")
    assert con.execute("SELECT product_name FROM products WHERE code = ?", [code]).fetchone() == (
        "new",
    )
    assert con.execute(
        "SELECT lines_read, rows_without_code, duplicate_rows, products FROM dumps"
    ).fetchone() == (7, 2, 3, 2)


def test_a_dump_of_unique_codes_keeps_every_row(con, tmp_path, sample_lines):
    _, stats = ingest(con, tmp_path, sample_lines[:201])
    assert stats.duplicate_rows == 0 and stats.products == stats.lines_read == 200


def test_products_has_its_key_and_the_connection_settings_are_restored(con, tmp_path, sample_lines):
    """The key is added after the bulk load; the table must end up exactly as PRODUCTS_DDL says."""
    con.execute("SET preserve_insertion_order = true")
    ingest(con, tmp_path, sample_lines[:50])
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (True,)
    described = con.execute("DESCRIBE products").fetchall()
    con.execute(f"CREATE TABLE expected_products {PRODUCTS_DDL.split('TABLE products', 1)[1]}")
    assert described == con.execute("DESCRIBE expected_products").fetchall()
    constraints = "SELECT constraint_type, constraint_text FROM duckdb_constraints() WHERE table_name = ? ORDER BY ALL"
    assert (
        con.execute(constraints, ["products"]).fetchall()
        == con.execute(constraints, ["expected_products"]).fetchall()
    )
    code = con.execute("SELECT code FROM products LIMIT 1").fetchone()[0]
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO products (code, dump_sha256) VALUES (?, 'x')", [code])
    assert not con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('staged_products', 'losing_rows')"
    ).fetchone()[0]
