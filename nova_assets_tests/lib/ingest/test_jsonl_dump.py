"""OFF's JSONL export as a dump: the real sample gives the TSV's products on the codes both
hold, OFF's own blank reasons come through, broken lines are counted, and bad files are refused
by name with the last good table kept."""

import gzip
import json
import re
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.ingest import jsonl_dump
from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.ingest.dump_format import REQUIRED_COLUMNS, DumpError
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS
from nova_assets.lib.paths import SAMPLE_DUMP, SAMPLE_JSONL
from nova_assets.lib.warehouse.products import IngestStats, ingest_products
from nova_assets_tests.helpers import write_dump

STATE = "SELECT count(*), hash(list(p ORDER BY code)) FROM products p"
CONTENT = (
    "SELECT count(*), hash(list(p ORDER BY code)) FROM "
    "(SELECT * EXCLUDE (dump_sha256) FROM products) p"
)
"""The table without the dump it came from."""


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        yield con


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    """The real sample's documents, as OFF wrote them."""
    return [json.loads(line) for line in gzip.decompress(SAMPLE_JSONL.read_bytes()).splitlines()]


def write_jsonl(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def ingest(con, path: Path, tmp_path: Path, **options) -> IngestStats:
    return ingest_products(con, fetch_dump(str(path), tmp_path / "raw"), **options)


def test_the_real_sample_gives_the_tsvs_products_on_the_codes_both_hold(con, tmp_path):
    ingest(con, SAMPLE_DUMP, tmp_path)
    con.execute("CREATE TABLE from_tsv AS SELECT * FROM products")
    stats = ingest(con, SAMPLE_JSONL, tmp_path, max_shrink=1.0)
    assert stats.products == stats.lines_read > 0 and stats.skipped_lines == 0
    shared = [
        r[0] for r in con.execute("SELECT code FROM products JOIN from_tsv USING (code)").fetchall()
    ]
    assert len(shared) > stats.products // 2
    same = (
        "code, product_name, brands, ingredients_tags, additives_tags, categories_tags, "
        "countries_tags, nova_group, has_ingredients_text, nova_blank_reason, created_t, "
        "last_modified_t"
    )
    differ = con.execute(
        f"SELECT {same} FROM products WHERE list_contains($1, code) EXCEPT "
        f"SELECT {same} FROM from_tsv WHERE list_contains($1, code)",
        [shared],
    ).fetchall()
    assert differ == []
    # Nutrients where both carry one (OFF's two files rarely do for the same product).
    for column in NUTRIENT_COLUMNS:
        assert not con.execute(
            f"SELECT count(*) FROM products j JOIN from_tsv t USING (code) "
            f"WHERE j.{column} IS NOT NULL AND t.{column} IS NOT NULL "
            f"AND j.{column} <> t.{column}"
        ).fetchone()[0], column
    path = con.execute("SELECT path FROM dumps ORDER BY ingested_at DESC LIMIT 1").fetchone()[0]
    assert path.endswith(".jsonl.gz")


def test_offs_own_blank_reasons_come_through(con, tmp_path, documents):
    ingest(con, SAMPLE_JSONL, tmp_path)
    stored = dict(con.execute("SELECT code, nova_blank_reason FROM products").fetchall())
    errors = {d["code"]: d.get("nova_group_error") for d in documents}
    assert stored == errors
    assert set(errors.values()) == {None, *jsonl_dump.OFF_BLANK_REASONS}


def document(code: str | None, **fields) -> str:
    """A product document with categories, an ingredients text and no NOVA marker."""
    base = {
        "ingredients_text": "leaf",
        "ingredients_tags": ["en:leaf"],
        "categories_tags": ["en:teas"],
        "last_modified_t": 1_700_000_000,
    }
    return json.dumps(({"code": code} if code is not None else {}) | base | fields)


def test_offs_reason_wins_and_without_one_ours_is_inferred(con, tmp_path):
    lines = [
        document("1", nova_group=1),
        document("2", nova_group_error="missing_category"),
        document("3"),
        document("4", nova_group_error="an-error-off-does-not-write"),
        document("5", nova_group=4, nova_group_error="missing_ingredients"),
        document("6", categories_tags=["en:non-food-products"]),
    ]
    ingest(con, write_jsonl(tmp_path / "reasons.jsonl", lines), tmp_path)
    assert dict(con.execute("SELECT code, nova_blank_reason FROM products").fetchall()) == {
        "1": None,
        "2": "missing_category",  # ours would say too_many_unknown_ingredients
        "3": "too_many_unknown_ingredients",
        "4": "too_many_unknown_ingredients",
        "5": None,
        "6": "non_food",
    }


def test_fields_are_typed_as_the_tsvs(con, tmp_path):
    """Groups as numbers or strings, `_id` for a missing code, duplicates by
    `last_modified_t`, and tag lists cleaned as the TSV's."""
    lines = [
        document("1", nova_group="3"),
        document("2", nova_group=4.0, created_t="1600000000"),
        document("3", nova_group=7),
        document(None, _id="0042", nova_group=1),
        document("5", nova_group=2, last_modified_t=1_700_000_000),
        document("5", nova_group=3, last_modified_t=1_700_000_100),
        document("6", nova_group=1, additives_tags=[], countries_tags=["en:france", ""]),
    ]
    stats = ingest(con, write_jsonl(tmp_path / "typed.jsonl", lines), tmp_path)
    assert (stats.lines_read, stats.duplicate_rows, stats.invalid_nova_groups) == (7, 1, 1)
    rows = con.execute(
        "SELECT code, nova_group, epoch(created_t), additives_tags, countries_tags FROM products"
    ).fetchall()
    assert sorted(rows) == [
        ("0042", 1, None, None, None),
        ("1", 3, None, None, None),
        ("2", 4, 1_600_000_000, None, None),
        ("3", None, None, None, None),
        ("5", 3, None, None, None),
        ("6", 1, None, None, ["en:france"]),
    ]


def tsv_of(products: list[dict], columns: list[str]) -> list[str]:
    """The same products as TSV lines under `columns`."""
    return ["\t".join(columns)] + ["\t".join(str(p.get(c, "")) for c in columns) for p in products]


def test_nutrients_are_read_and_refused_as_the_tsvs(con, tmp_path):
    """kJ only, sodium only, numbers as strings, impossible values: the same `products` and the
    same count of values made NULL as the TSV of the same products gives."""
    nutrients = [
        {"energy-kcal_100g": 250, "fat_100g": 10.5, "saturated-fat_100g": 2},
        {"energy_100g": 1000, "sodium_100g": 0.4, "sugars_100g": "12.5"},
        {"energy-kcal_100g": 4590, "fat_100g": 150, "proteins_100g": -1},
        {"carbohydrates_100g": 20, "sugars_100g": 30, "fiber_100g": "n/a"},
        {},
    ]
    products = [
        {"code": str(i), "nova_group": 4, "last_modified_t": 1_700_000_000} | n
        for i, n in enumerate(nutrients)
    ]
    columns = [*REQUIRED_COLUMNS, *sorted({k for n in nutrients for k in n})]
    tsv = ingest(con, write_dump(tmp_path / "n.tsv", tsv_of(products, columns)), tmp_path)
    from_tsv = con.execute(CONTENT).fetchone()
    lines = [
        json.dumps(
            {"code": str(i), "nova_group": 4, "last_modified_t": 1_700_000_000} | {"nutriments": n}
        )
        for i, n in enumerate(nutrients)
    ]
    jsonl = ingest(con, write_jsonl(tmp_path / "n.jsonl", lines), tmp_path)
    from_jsonl = con.execute(CONTENT).fetchone()
    assert from_jsonl == from_tsv
    assert jsonl.invalid_nutrients == tsv.invalid_nutrients == 4
    energy = dict(con.execute("SELECT code, energy_kcal_100g FROM products").fetchall())
    assert energy["1"] == pytest.approx(1000 / 4.184) and energy["2"] is None


def test_broken_lines_and_codeless_documents_are_counted(con, tmp_path, documents):
    good = [json.dumps(d) for d in documents]
    bad = [
        "this is not JSON",
        '{"code": "9", "product_name": "cut',  # a document cut short
        '["an", "array"]',
        "42",
        "",
        '{"product_name": "a product without a code"}',
        '{"code": "  "}',
        "{}",
    ]
    path = write_jsonl(tmp_path / "messy.jsonl.gz", good[:50] + bad + good[50:], gz=True)
    stats = ingest(con, path, tmp_path)
    assert stats.skipped_lines == 4  # the blank line is no line of the dump
    assert stats.rows_without_code == 3
    assert stats.lines_read == len(documents) + 3
    assert stats.products == len(documents)
    recorded = con.execute("SELECT skipped_lines, rows_without_code FROM dumps").fetchone()
    assert recorded == (4, 3)


def test_a_jsonl_dump_is_known_by_its_content_not_its_name(con, tmp_path, documents):
    named_tsv = write_jsonl(tmp_path / "export.tsv", [json.dumps(d) for d in documents])
    dump = fetch_dump(str(named_tsv), tmp_path / "raw")
    assert dump.path.endswith(".jsonl") and not dump.gzipped
    assert ingest_products(con, dump).products == len(documents)
    plain_name = tmp_path / "export"
    plain_name.write_bytes(SAMPLE_JSONL.read_bytes())
    assert fetch_dump(str(plain_name), tmp_path / "raw").path.endswith(".jsonl.gz")
    assert not jsonl_dump.is_jsonl(SAMPLE_DUMP)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "dump is empty"),
        (gzip.compress(b""), "is empty"),
        (b"{not json}\n", "first line is not a JSON object"),
        (b'{"product_name": "no code"}\n', "neither `code` nor `_id`"),
        (b'{"code": "1"}\n', "not one with a NOVA group"),
    ],
    ids=["empty", "empty-gzip", "not-json", "no-code", "unlabelled"],
)
def test_bad_files_are_refused_clearly_and_the_table_kept(con, tmp_path, content, message):
    ingest(con, SAMPLE_JSONL, tmp_path)
    before = con.execute(STATE).fetchone()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    with pytest.raises(DumpError, match=re.escape(message)) as caught:
        ingest(con, bad, tmp_path)
    assert "no code" not in str(caught.value) and "not json" not in str(caught.value)
    assert con.execute(STATE).fetchone() == before


def test_a_truncated_gzip_is_refused_naming_the_file(con, tmp_path):
    ingest(con, SAMPLE_DUMP, tmp_path)
    before = con.execute(STATE).fetchone()
    whole = SAMPLE_JSONL.read_bytes()
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    dump = fetch_dump(str(cut), tmp_path / "raw")
    with pytest.raises(DumpError, match=f"dump {re.escape(dump.path)} is a truncated gzip"):
        ingest_products(con, dump, max_shrink=1.0)
    assert con.execute(STATE).fetchone() == before


def test_a_jsonl_download_is_stored_as_jsonl_and_a_cut_one_refused(server, tmp_path):
    whole = SAMPLE_JSONL.read_bytes()
    server.serve(whole[:-100])
    with pytest.raises(DumpError, match="truncated gzip"):
        fetch_dump(server.url, tmp_path / "raw", attempts=1, retry_delay=0)
    server.serve(whole)
    dump = fetch_dump(server.url, tmp_path / "raw", attempts=1, retry_delay=0)
    assert dump.path.endswith(".jsonl.gz") and dump.gzipped
    assert Path(dump.path).read_bytes() == whole
