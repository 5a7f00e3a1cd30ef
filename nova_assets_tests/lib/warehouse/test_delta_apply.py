"""One delta applied on a real DuckDB file: the products a full ingest of the day-later dump
gives, splits kept, only its codes rescored, recorded once; a bad delta, or a failure midway,
changes nothing."""

import gzip
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib.ingest.delta_files import DeltaError, DeltaFile, parse_name
from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets.lib.warehouse.delta_apply import apply_delta, tables_state
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets.lib.warehouse.split import extend_test_split, split_of
from nova_assets_tests.benchmarks.scripts import load_script

CONTENT = (
    "SELECT count(*), hash(list(t ORDER BY t)) FROM (SELECT * EXCLUDE (dump_sha256) FROM {}) t"
)
STATE = "SELECT count(*), hash(list(t ORDER BY t)) FROM {} t"
TABLES = ("products", "test_split", "deltas")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A day of changes to the sample: 20 products modified, 6 new, as OFF's delta and the
    day-later full dump."""
    out = tmp_path_factory.mktemp("day")
    return load_script("generate_dump").write_delta(SAMPLE_DUMP, out, 20, 6, seed=5)


@pytest.fixture
def con(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        ingest_products(con, fetch_dump(str(SAMPLE_DUMP), tmp_path / "raw"))
        extend_test_split(con)
        yield con


def delta_file(path: Path) -> DeltaFile:
    return DeltaFile(parse_name(path.name), str(path), "0" * 64, path.stat().st_size)


def recorder(seen: list[list[str]]):
    def rescore(con, codes_table: str) -> int:
        seen.append(sorted(r[0] for r in con.execute(f"SELECT code FROM {codes_table}").fetchall()))
        return len(seen[-1])

    return rescore


def state(con) -> dict:
    return {
        t: con.execute(STATE.format(t)).fetchone() if t != "deltas" or _has(con, t) else None
        for t in TABLES
    }


def _has(con, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()[0]
    )


def test_a_delta_gives_the_products_of_a_full_ingest_of_the_day_later_dump(con, day, tmp_path):
    splits = dict(con.execute("SELECT code, split FROM test_split").fetchall())
    seen: list[list[str]] = []
    stats = apply_delta(con, delta_file(day.delta), recorder(seen))
    assert (stats.documents, stats.products, stats.new_products) == (26, 26, 6)
    assert seen == [sorted(day.modified + day.new)]
    with duckdb.connect(str(tmp_path / "full.duckdb")) as full:
        ingest_products(full, fetch_dump(str(day.later), tmp_path / "raw2"))
        expected = full.execute(CONTENT.format("products")).fetchone()
    assert con.execute(CONTENT.format("products")).fetchone() == expected
    after = dict(con.execute("SELECT code, split FROM test_split").fetchall())
    assert {c: after[c] for c in splits} == splits
    assert {after[c] for c in day.new} <= {"train", "test"}
    assert all(after[c] == split_of(c) for c in day.new)
    row = con.execute("SELECT name, products, new_products, predictions FROM deltas").fetchall()
    assert row == [(day.delta.name, 26, 6, 26)]
    assert tables_state(con).as_of == day.end


def test_the_same_delta_twice_is_refused_and_changes_nothing(con, day):
    apply_delta(con, delta_file(day.delta), recorder([]))
    before = state(con)
    with pytest.raises(DeltaError, match=f"delta {day.delta.name} is applied already"):
        apply_delta(con, delta_file(day.delta), recorder([]))
    assert state(con) == before


def test_a_delta_older_than_the_tables_is_refused(con, day, tmp_path):
    as_of = int(tables_state(con).as_of)
    old = tmp_path / f"products_{as_of - 7200}_{as_of}.json.gz"
    old.write_bytes(day.delta.read_bytes())
    before = state(con)
    with pytest.raises(DeltaError, match=f"delta {old.name} ends at .* older than the tables"):
        apply_delta(con, delta_file(old), recorder([]))
    assert state(con) == before


def lines_of(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda lines: gzip.compress(b"\n".join(lines))[:-30], "truncated gzip"),
        (lambda lines: b"", "empty or not JSONL"),
        (lambda lines: gzip.compress(b""), "empty or not JSONL"),
        (lambda lines: gzip.compress(b"\n".join([*lines[:5], b"{not json", *lines[5:]])), "1 line"),
        (lambda lines: gzip.compress(b"\n".join(lines)[:-25]), "1 line"),
        (lambda lines: gzip.compress(b"[1, 2]\n" + b"\n".join(lines)), "not JSONL"),
    ],
    ids=["truncated-gz", "zero-bytes", "empty-stream", "invalid-line", "cut-last-line", "array"],
)
def test_a_bad_delta_is_refused_whole_by_name(con, day, tmp_path, make, message):
    bad = tmp_path / day.delta.name
    bad.write_bytes(make(lines_of(day.delta)))
    before = state(con)
    seen: list[list[str]] = []
    with pytest.raises(DeltaError, match=f"delta {bad.name}.*{message}"):
        apply_delta(con, delta_file(bad), recorder(seen))
    assert state(con) == before and seen == []
    apply_delta(con, delta_file(day.delta), recorder(seen))
    assert len(seen) == 1


def test_a_failure_midway_rolls_the_whole_delta_back(con, day):
    before = state(con)

    def failing(con, codes_table: str) -> int:
        con.execute("DELETE FROM products")  # whatever it did is undone too
        raise RuntimeError("scoring failed")

    with pytest.raises(RuntimeError, match="scoring failed"):
        apply_delta(con, delta_file(day.delta), failing)
    assert state(con) == before
    assert tables_state(con).applied == frozenset()
    apply_delta(con, delta_file(day.delta), recorder([]))
    assert tables_state(con).applied == {day.delta.name}


def test_an_older_document_does_not_replace_a_newer_row(con, tmp_path):
    code, modified = con.execute(
        "SELECT code, epoch(CAST(last_modified_t AS TIMESTAMPTZ))::BIGINT FROM products "
        "WHERE last_modified_t IS NOT NULL ORDER BY code LIMIT 1"
    ).fetchone()
    as_of = int(tables_state(con).as_of)
    path = tmp_path / f"products_{as_of - 60}_{as_of + 60}.json.gz"
    stale = f'{{"code": "{code}", "product_name": "old name", "last_modified_t": {modified - 1}}}'
    fresh = f'{{"code": "new-1", "product_name": "new", "last_modified_t": {as_of + 30}}}'
    path.write_bytes(gzip.compress(f"{stale}\n{fresh}\n".encode()))
    before = con.execute("SELECT * FROM products WHERE code = ?", [code]).fetchall()
    stats = apply_delta(con, delta_file(path), recorder([]))
    assert (stats.products, stats.new_products, stats.stale_documents) == (1, 1, 1)
    assert con.execute("SELECT * FROM products WHERE code = ?", [code]).fetchall() == before
