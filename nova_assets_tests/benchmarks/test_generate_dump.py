"""The synthetic OFF dump generator: shape, label consistency, quirks and determinism."""

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.warehouse.nova_rules import compute_nova_group, marker_group
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets_tests.benchmarks.scripts import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "generate_dump.py"
TEMPLATE = REPO_ROOT / "data" / "sample" / "off_products_sample_1000.tsv.gz"
ROWS = 3000


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_script("generate_dump")


@pytest.fixture(scope="module")
def dump(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("dump") / "products.tsv"
    stats = generator.generate_dump(ROWS, path, seed=7)
    return path, stats


def _read(path: Path) -> tuple[list[str], list[tuple], int]:
    """Read as the pipeline does: no quoting, all text, bad lines skipped and recorded."""
    con = duckdb.connect()
    try:
        rel = con.sql(
            f"""
            select * from read_csv('{path}', delim='\t', quote='', escape='', header=true,
                                   all_varchar=true, ignore_errors=true, store_rejects=true)
            """
        )
        columns, rows = rel.columns, rel.fetchall()
        rejected = con.sql("select count(distinct line) from reject_errors").fetchall()[0][0]
    finally:
        con.close()
    return columns, rows, rejected


def _tags(value: str | None) -> list[str]:
    return [tag for tag in (value or "").split(",") if tag]


def test_header_is_byte_identical(dump: tuple[Path, dict]) -> None:
    path, _ = dump
    template_header = gzip.decompress(TEMPLATE.read_bytes()).split(b"\n", 1)[0]
    with path.open("rb") as handle:
        assert handle.readline() == template_header + b"\n"


def test_rows_labels_and_quirks(dump: tuple[Path, dict]) -> None:
    path, stats = dump
    columns, rows, rejected = _read(path)
    assert len(columns) == 210
    col = {name: i for i, name in enumerate(columns)}

    assert stats["rows"] == ROWS
    assert stats["broken_lines"] >= 1
    assert rejected == stats["broken_lines"]
    assert len(rows) == ROWS - stats["broken_lines"]

    labels: dict[int, int] = defaultdict(int)
    versions: dict[str, list[int]] = defaultdict(list)
    unknown = 0
    for row in rows:
        ingredients = _tags(row[col["ingredients_tags"]])
        text = row[col["ingredients_text"]]
        assert bool(ingredients) == bool(text)
        expected = compute_nova_group(
            ingredients,
            _tags(row[col["additives_tags"]]),
            _tags(row[col["categories_tags"]]),
            bool(text),
        )
        # An e-number among the ingredients that is an additive marker is in the additives too,
        # as OFF extracts them (OFF's taxonomy may mark it where our rules would not).
        additives = _tags(row[col["additives_tags"]])
        for tag in ingredients:
            if marker_group("additives", tag):
                assert tag in additives, (tag, additives)
        written = row[col["nova_group"]]
        if written is None and expected in (1, 2, 3):
            # Too many unknown ingredients: OFF gives no group below 4. Such rows carry
            # ingredients OFF's taxonomy does not know, and categories.
            assert any(t.startswith("xx:") for t in ingredients) and row[col["categories_tags"]]
            unknown += 1
            expected = None
        assert written == (None if expected is None else str(expected))
        if expected is not None:
            labels[expected] += 1
        code = row[col["code"]]
        assert len(code) in (8, 13) and code.isdigit()
        assert row[col["url"]] is None or f"/product/{code}" in row[col["url"]]
        for field in ("ingredients_tags", "additives_tags", "categories_tags"):
            assert " " not in (row[col[field]] or "")
        versions[code].append(int(row[col["last_modified_t"]]))

    labelled = sum(labels.values())
    assert 0.20 <= labelled / len(rows) <= 0.30
    shares = {group: labels[group] / labelled for group in (1, 2, 3, 4)}
    assert 0.60 <= shares[4] <= 0.74
    assert 0.14 <= shares[3] <= 0.26
    assert 0.07 <= shares[1] <= 0.15
    assert 0.005 <= shares[2] <= 0.05
    assert stats["steer_misses"] == 0
    assert unknown == stats["unknown_ingredient_rows"] > 0

    repeated = {code: times for code, times in versions.items() if len(times) > 1}
    assert len(repeated) == stats["duplicates"] > 0
    assert 0.005 <= stats["duplicates"] / ROWS <= 0.02
    for times in repeated.values():
        assert all(later > earlier for earlier, later in zip(times, times[1:], strict=False))

    assert any(leading for leading in versions if leading.startswith("0"))
    raw = path.read_text(encoding="utf-8")
    assert any('"' in line for line in raw.split("\n")[1:])


def test_names_go_with_the_group_and_blank_products_lack_evidence_as_on_off(
    dump: tuple[Path, dict], tmp_path: Path
) -> None:
    """Each product is made from a real row OFF gave its group, so its name goes with it; the
    blank ones lack evidence in the ways OFF's blank products do."""
    path, _ = dump
    from nova_assets.lib.ingest.dump import fetch_dump
    from nova_assets.lib.warehouse.products import ingest_products

    con = duckdb.connect()
    ingest_products(con, fetch_dump(str(path), tmp_path / "raw"))
    template = con.execute(
        f"SELECT product_name, nova_group FROM read_csv('{TEMPLATE}', delim='\t', quote='', "
        "escape='', header=true, all_varchar=true, ignore_errors=true) WHERE nova_group <> ''"
    ).fetchall()
    real = defaultdict(set)
    for name, group in template:
        real[name].add(int(group))
    named = con.execute(
        "SELECT product_name, nova_group FROM products WHERE nova_group IS NOT NULL"
    ).fetchall()
    agree = sum(group in real.get(name, ()) for name, group in named)
    assert agree / len(named) > 0.95
    reasons = dict(
        con.execute(
            "SELECT nova_blank_reason, count(*) FROM products WHERE nova_group IS NULL GROUP BY ALL"
        ).fetchall()
    )
    blank = sum(reasons.values())
    assert set(reasons) == {
        "missing_ingredients",
        "missing_category",
        "too_many_unknown_ingredients",
    }
    assert 0.55 < reasons["missing_ingredients"] / blank < 0.85
    con.close()


def test_gzip_variant_is_the_same_dump(
    generator: ModuleType, dump: tuple[Path, dict], tmp_path: Path
) -> None:
    path, stats = dump
    gz_path = tmp_path / "products.tsv.gz"
    gz_stats = generator.generate_dump(ROWS, gz_path, seed=7, gzip=True)
    assert gzip.decompress(gz_path.read_bytes()) == path.read_bytes()
    assert gz_stats["class_counts"] == stats["class_counts"]
    _, rows, rejected = _read(gz_path)
    assert len(rows) == ROWS - stats["broken_lines"]
    assert rejected == stats["broken_lines"]


def test_same_seed_same_bytes_other_seed_differs(
    generator: ModuleType, dump: tuple[Path, dict], tmp_path: Path
) -> None:
    path, _ = dump
    again = tmp_path / "again.tsv"
    other = tmp_path / "other.tsv"
    generator.generate_dump(ROWS, again, seed=7, template=TEMPLATE)
    generator.generate_dump(ROWS, other, seed=8)
    assert again.read_bytes() == path.read_bytes()
    assert other.read_bytes() != path.read_bytes()


def test_cli_writes_gzip_and_prints_summary(tmp_path: Path) -> None:
    out = tmp_path / "cli.tsv.gz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "1200", str(out), "--seed", "3", "--gzip"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = gzip.decompress(out.read_bytes()).decode("utf-8").rstrip("\n").split("\n")
    assert len(lines) == 1201
    assert "rows=1200" in result.stderr and "broken=1" in result.stderr


def test_the_variant_hides_additives_in_the_text_and_respells_markers(
    generator: ModuleType, tmp_path: Path, dump: tuple[Path, dict]
) -> None:
    path = tmp_path / "variant.tsv"
    stats = generator.generate_dump(ROWS, path, seed=7, variant=True)
    columns, rows, _ = _read(path)
    at = {c: columns.index(c) for c in ("additives_tags", "ingredients_tags", "nova_group")}
    assert not any(row[at["additives_tags"]] for row in rows)
    ingredients = [_tags(row[at["ingredients_tags"]]) for row in rows]
    assert not any(generator.E_NUMBER.match(t) for tags in ingredients for t in tags)
    respelled = sum("en:flavoring" in tags or "en:emulsifiers" in tags for tags in ingredients)
    assert respelled > 20
    # The labels still come from OFF's rules on what OFF saw, so hidden markers make the tags
    # say less than the label: some group-4 products show no group-4 marker.
    hidden = sum(
        row[at["nova_group"]] == "4" and not any(marker_group("ingredients", t) == 4 for t in tags)
        for row, tags in zip(rows, ingredients, strict=True)
    )
    assert hidden > 0 and stats["labelled"] > 0.2 * ROWS
    # Names are drawn whatever the group: as many distinct names per group as the first
    # generator gives at most, and every group shares names with another.
    _, first, _ = _read(dump[0])
    name = columns.index("product_name")
    by_group: dict[str, set] = defaultdict(set)
    for row in rows:
        if row[at["nova_group"]]:
            by_group[row[at["nova_group"]]].add(row[name])
    assert by_group["1"] & by_group["4"]
    first_groups: dict[str, set] = defaultdict(set)
    for row in first:
        if row[at["nova_group"]]:
            first_groups[row[at["nova_group"]]].add(row[name])
    assert not first_groups["1"] & first_groups["4"]


def test_jsonl_of_the_generated_products_gives_the_tsvs_products(
    generator: ModuleType, dump: tuple[Path, dict], tmp_path: Path
) -> None:
    """The JSONL export written from a generated TSV (duplicates, blank products of every
    reason, nutrients) gives the very `products` the TSV gives; only the TSV's broken lines,
    which the export leaves out, are counted differently."""
    path, stats = dump
    jsonl = tmp_path / "products.jsonl.gz"
    assert generator.write_jsonl(path, jsonl) == ROWS - stats["broken_lines"]
    content = (
        "SELECT count(*), count(nova_blank_reason), count(energy_kcal_100g), "
        "hash(list(p ORDER BY code)) FROM (SELECT * EXCLUDE (dump_sha256) FROM products) p"
    )
    tables, counts = [], []
    for source in (path, jsonl):
        with duckdb.connect(str(tmp_path / f"{source.name}.duckdb")) as con:
            ingested = ingest_products(con, fetch_dump(str(source), tmp_path / "raw"))
            tables.append(con.execute(content).fetchone())
            counts.append((ingested.duplicate_rows, ingested.invalid_nutrients))
    assert tables[0] == tables[1]
    assert counts[0] == counts[1] and counts[0][0] == stats["duplicates"]
    assert tables[0][1] > 0 and tables[0][2] > 0


def test_cli_writes_jsonl_gzipped_by_its_name(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl.gz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "1200", str(out), "--seed", "3", "--jsonl"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = gzip.decompress(out.read_bytes()).decode("utf-8").rstrip("\n").split("\n")
    assert len(lines) == 1199 and "jsonl rows=1199" in result.stderr
    assert not (tmp_path / "cli.jsonl.gz.tsv").exists()
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), "10", str(out), "--jsonl", "--gzip"],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2 and "--gzip is for the TSV" in refused.stderr


def test_delta_of_writes_offs_delta_and_the_day_later_dump(generator, dump, tmp_path):
    from nova_assets.lib.ingest.delta_files import parse_name

    base, _ = dump
    out = tmp_path / "day"
    assert generator.main(["50", str(out), "--delta-of", str(base), "--seed", "3"]) == 0
    (delta,) = out.glob("*.json.gz")
    window = parse_name(delta.name)
    assert window is not None and delta.name.startswith("openfoodfacts_products_")
    documents = [json.loads(line) for line in gzip.decompress(delta.read_bytes()).splitlines()]
    codes = {d["code"] for d in documents}
    base_lines = base.read_text().splitlines()
    later_lines = (out / "later.tsv").read_text().splitlines()
    base_codes = {line.split("\t", 1)[0] for line in base_lines[1:]}
    assert len(documents) == len(codes) == 50 and len(codes - base_codes) == 10
    assert len(later_lines) == len(base_lines) + 10
    assert all(window.start < d["last_modified_t"] < window.end for d in documents)
    assert {line.split("\t", 1)[0] for line in later_lines[1:]} == base_codes | codes
