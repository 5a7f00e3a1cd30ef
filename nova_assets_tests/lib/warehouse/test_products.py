import gzip
import json
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ingest.dump_format import REQUIRED_COLUMNS, DumpError
from nova_assets.lib.paths import SAMPLE_JSONL
from nova_assets.lib.warehouse.nova_rules import BLANK_REASONS, blank_reason
from nova_assets.lib.warehouse.products import PRODUCTS_DDL, ingest_products
from nova_assets_tests.helpers import get_field, set_field, write_dump


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
    line = set_field(
        set_field(sample_lines[1], header, "nova_group", "4"), header, "code", "0000000000017"
    )
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


def test_a_stray_tab_is_a_broken_line_even_when_the_last_field_is_empty(
    con, tmp_path, sample_lines
):
    """OFF's broken lines come from a tab inside a field; its last columns are mostly empty, so
    the shifted line ends in an empty field, which DuckDB alone takes for a trailing tab."""
    header = sample_lines[0]
    line = next(
        x
        for x in sample_lines[60:]
        if x.endswith("\t") and get_field(x, header, "ingredients_text")
    )
    text = get_field(line, header, "ingredients_text")
    shifted = set_field(line, header, "ingredients_text", text[:5] + "\t" + text[5:])
    lines = [header, *sample_lines[1:30], shifted, *sample_lines[30:60]]
    _, stats = ingest(con, tmp_path, lines)
    assert stats.skipped_lines == 1 and stats.lines_read == 59
    code = get_field(line, header, "code")
    assert con.execute("SELECT count(*) FROM products WHERE code = ?", [code]).fetchone()[0] == 0
    assert con.execute("SELECT skipped_lines FROM dumps").fetchone()[0] == 1


def test_a_line_over_the_size_limit_is_skipped_wherever_it_is(con, tmp_path, sample_lines):
    header = sample_lines[0]
    huge = set_field(sample_lines[1], header, "ingredients_text", "sugar, " * 400_000)
    _, stats = ingest(con, tmp_path, [header, huge, *sample_lines[2:40]])
    assert stats.skipped_lines == 1 and stats.products == 38


def test_invalid_utf8_keeps_the_product_with_the_bytes_replaced(con, tmp_path, sample_lines):
    header = sample_lines[0]
    bad = b"Caf\xe9 \xff noir".decode("utf-8", "surrogateescape")
    line = set_field(sample_lines[1], header, "product_name", bad)
    _, stats = ingest(con, tmp_path, [header, line, *sample_lines[2:20]])
    assert stats.products == 19 and stats.skipped_lines == 0 and stats.repaired_lines == 1
    code = get_field(sample_lines[1], header, "code")
    name, tags = con.execute(
        "SELECT product_name, categories_tags FROM products WHERE code = ?", [code]
    ).fetchone()
    assert name.startswith("Caf") and name.endswith(" noir") and "\ufffd" not in name[:3]
    assert tags == (get_field(sample_lines[1], header, "categories_tags").split(",") or None)
    assert con.execute("SELECT repaired_lines FROM dumps").fetchone()[0] == 1


def test_ties_on_last_modified_keep_the_same_row_whatever_the_line_order(
    con, tmp_path, sample_lines
):
    header = sample_lines[0]
    twins = [
        set_field(sample_lines[1], header, "product_name", name) for name in ("first", "second")
    ]
    kept = set()
    for i, order in enumerate((twins, twins[::-1], twins)):
        ingest(con, tmp_path, [header, *order, *sample_lines[2:10]], name=f"dump{i}.tsv")
        code = get_field(sample_lines[1], header, "code")
        kept.add(
            con.execute("SELECT product_name FROM products WHERE code = ?", [code]).fetchone()[0]
        )
    assert len(kept) == 1


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


@pytest.mark.parametrize("damage", ["truncated", "bad-crc", "garbled"])
def test_a_truncated_or_damaged_gzip_dump_is_refused_and_table_kept(
    con, tmp_path, sample_lines, damage
):
    """A local dump is linked as it is, not inflated on the way in: `products` refuses a gzip
    stream that ends early (DuckDB notices) or is damaged (DuckDB reads on; the check beside it
    does not), before anything is replaced."""
    ingest(con, tmp_path, sample_lines[:100], name="good.tsv")
    body = bytearray(gzip.compress(("\n".join(sample_lines) + "\n").encode()))
    if damage == "truncated":
        body = body[: len(body) * 2 // 3]
    elif damage == "bad-crc":
        body[-6] ^= 0x01  # every row still reads; only the stream's CRC tells
    else:
        body[len(body) // 2 : len(body) // 2 + 64] = bytes(64)
    bad = tmp_path / f"{damage}.tsv.gz"
    bad.write_bytes(bytes(body))
    dump = fetch_dump(str(bad), tmp_path / "raw")
    with pytest.raises(DumpError, match="truncated" if damage == "truncated" else "damaged"):
        ingest_products(con, dump)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 99
    assert con.execute("SELECT count(*) FROM dumps").fetchone()[0] == 1


def test_a_dump_rewritten_since_its_fetch_is_refused_and_table_kept(con, tmp_path, sample_lines):
    dump, _ = ingest(con, tmp_path, sample_lines[:100], name="good.tsv")
    write_dump(tmp_path / "good.tsv", sample_lines[:100] + sample_lines[100:103])  # same inode
    with pytest.raises(DumpError, match="changed since it was fetched"):
        ingest_products(con, dump)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 99


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


def test_a_dump_without_any_nova_group_is_refused(con, tmp_path, sample_lines):
    ingest(con, tmp_path, sample_lines[:101], name="good.tsv")
    header = sample_lines[0]
    unlabelled = [header] + [set_field(x, header, "nova_group", "") for x in sample_lines[1:]]
    with pytest.raises(DumpError, match="not one with a NOVA group"):
        ingest(con, tmp_path, unlabelled, name="unlabelled.tsv")
    assert con.execute("SELECT count(nova_group) FROM products").fetchone()[0] > 0
    assert con.execute("SELECT count(*) FROM dumps").fetchone()[0] == 1


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


def _tags(line: str, header: str, column: str) -> list[str]:
    return [t for t in get_field(line, header, column).split(",") if t]


def test_blank_reason_matches_the_rules_on_every_sample_row(con, tmp_path, sample_lines):
    """`nova_blank_reason` is computed in SQL at ingest: it must say what the Python rules say."""
    ingest(con, tmp_path, sample_lines)
    stored = dict(con.execute("SELECT code, nova_blank_reason FROM products").fetchall())
    header = sample_lines[0]
    mix: dict[str | None, int] = {}
    for line in sample_lines[1:]:
        code = get_field(line, header, "code")
        labelled = get_field(line, header, "nova_group") != ""
        expected = None
        if not labelled:
            expected = blank_reason(
                _tags(line, header, "ingredients_tags"),
                _tags(line, header, "additives_tags"),
                _tags(line, header, "categories_tags"),
                bool(get_field(line, header, "ingredients_text").strip()),
            )
        assert stored[code] == expected, code
        mix[expected] = mix.get(expected, 0) + 1
    # The sample's blank products are of every kind OFF names, not one.
    assert {"missing_ingredients", "missing_category", "too_many_unknown_ingredients"} <= set(mix)


def test_blank_reason_is_offs_own_error_on_real_products(con, tmp_path, sample_lines):
    """The JSONL documents carry OFF's `nova_group_error`; decided from the TSV's fields of the
    same products, our reason must be the same for each of them."""
    ingest(con, tmp_path, sample_lines)
    documents = [
        json.loads(line) for line in gzip.decompress(SAMPLE_JSONL.read_bytes()).splitlines()
    ]
    errors = {d["code"]: d["nova_group_error"] for d in documents if d.get("nova_group_error")}
    ours = dict(
        con.execute(
            "SELECT code, nova_blank_reason FROM products WHERE list_contains(?, code)",
            [list(errors)],
        ).fetchall()
    )
    assert len(ours) == 25  # blank products present in both files
    assert {code: errors[code] for code in ours} == ours
    assert set(ours.values()) == {
        "missing_ingredients",
        "missing_category",
        "too_many_unknown_ingredients",
    }


def test_blank_reason_cases(con, tmp_path, sample_lines):
    """Each branch of the decision, on one real line edited field by field."""
    header = sample_lines[0]
    base = set_field(
        set_field(sample_lines[1], header, "nova_group", ""), header, "additives_tags", ""
    )

    def product(code: str, **fields: str) -> str:
        line = set_field(base, header, "code", code)
        for column, value in fields.items():
            line = set_field(line, header, column, value)
        return line

    lines = [
        header,
        product("1", categories_tags="en:non-food-products,en:cosmetics"),
        product("2", ingredients_text="", ingredients_tags="", additives_tags=""),
        product("3", ingredients_text="sugar", ingredients_tags="en:sugar", categories_tags=""),
        product(
            "4", ingredients_text="leaf", ingredients_tags="en:leaf", categories_tags="en:teas"
        ),
        product(
            "5", ingredients_text="aroma", ingredients_tags="en:flavouring", categories_tags=""
        ),
        product("6", ingredients_text="", ingredients_tags="", categories_tags="en:honeys"),
        product("7", ingredients_text="", ingredients_tags="", categories_tags="en:waters"),
        product("8", nova_group="4"),
    ]
    ingest(con, tmp_path, lines)
    got = dict(con.execute("SELECT code, nova_blank_reason FROM products").fetchall())
    assert got == {
        "1": "non_food",
        "2": "missing_ingredients",
        "3": "missing_category",
        "4": "too_many_unknown_ingredients",
        "5": "unexplained",  # a group-4 marker: OFF would have said 4
        "6": "unexplained",  # group-2 category without ingredients: OFF says 2
        "7": "unexplained",  # plain water without ingredients: OFF says 1
        "8": None,
    }
    assert set(got.values()) - {None} <= set(BLANK_REASONS)
