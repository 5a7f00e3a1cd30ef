"""Nutrients per 100 g in `products`: read from the TSV's columns and the Parquet export's
`nutriments`, converted where only kJ or sodium is given, impossible values NULL and counted."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nova_assets.lib.ingest.dump import fetch_dump
from nova_assets.lib.nutrients import CSV_COLUMNS, NUTRIENT_COLUMNS, describe
from nova_assets.lib.warehouse.products import ingest_products
from nova_assets_tests.helpers import get_field, set_field, write_dump


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


def _line(sample_lines: list[str], index: int, code: str, **values: str) -> str:
    header = sample_lines[0]
    line = set_field(sample_lines[index], header, "code", code)
    for column in ("energy-kcal_100g", "energy_100g", "energy-kj_100g", "salt_100g", "sodium_100g"):
        line = set_field(line, header, column, "")
    for column, value in values.items():
        line = set_field(line, header, column, value)
    return line


def _nutrients(con, code: str) -> dict[str, float | None]:
    row = con.execute(
        f"SELECT {', '.join(NUTRIENT_COLUMNS)} FROM products WHERE code = ?", [code]
    ).fetchone()
    return dict(zip(NUTRIENT_COLUMNS, row, strict=True))


def test_nutrient_columns_are_doubles_named_after_the_csv(con, tmp_path, sample_lines):
    _ingest(con, tmp_path, sample_lines)
    types = {r[0]: r[1] for r in con.execute("DESCRIBE products").fetchall()}
    assert all(types[c] == "DOUBLE" for c in NUTRIENT_COLUMNS)
    assert [c.replace("_", "-").replace("-100g", "_100g") for c in NUTRIENT_COLUMNS] == list(
        CSV_COLUMNS
    )
    header = sample_lines[0]
    # Every sample product's fat is the CSV's, where the CSV's is possible.
    expected = {}
    for line in sample_lines[1:]:
        fat = get_field(line, header, "fat_100g")
        if fat and 0 <= float(fat) <= 100:
            expected[get_field(line, header, "code")] = float(fat)
    got = dict(
        con.execute("SELECT code, fat_100g FROM products WHERE fat_100g IS NOT NULL").fetchall()
    )
    assert got == expected and len(got) > 100


def test_kj_and_sodium_stand_in_and_impossible_values_are_null_and_counted(
    con, tmp_path, sample_lines
):
    lines = [
        sample_lines[0],
        _line(sample_lines, 1, "1", **{"energy_100g": "2092", "sodium_100g": "0.4"}),
        _line(
            sample_lines,
            2,
            "2",
            **{
                "energy-kcal_100g": "1500",  # above any food
                "fat_100g": "-3",  # negative
                "saturated-fat_100g": "2",  # its whole (fat) is impossible: judged alone
                "carbohydrates_100g": "20",
                "sugars_100g": "35",  # above its whole
                "proteins_100g": "120",  # over 100 g per 100 g
                "fiber_100g": "nan",
                "salt_100g": "1.2",
            },
        ),
        _line(sample_lines, 3, "3", **{"energy-kcal_100g": "250", "energy_100g": "9999"}),
    ]
    _, stats = _ingest(con, tmp_path, lines)
    one = _nutrients(con, "1")
    assert one["energy_kcal_100g"] == pytest.approx(500.0)
    assert one["salt_100g"] == pytest.approx(1.0)
    two = _nutrients(con, "2")
    assert two["energy_kcal_100g"] is None and two["fat_100g"] is None
    assert two["saturated_fat_100g"] == 2 and two["carbohydrates_100g"] == 20
    assert two["sugars_100g"] is None and two["proteins_100g"] is None
    assert two["fiber_100g"] is None and two["salt_100g"] == pytest.approx(1.2)
    assert _nutrients(con, "3")["energy_kcal_100g"] == 250  # kcal first, kJ only as a fallback
    assert stats.invalid_nutrients == 5
    assert con.execute("SELECT invalid_nutrients FROM dumps").fetchone()[0] == 5


def test_a_dump_without_nutrient_columns_has_null_nutrients(con, tmp_path, sample_lines):
    header = sample_lines[0].split("\t")
    keep = [i for i, c in enumerate(header) if not c.endswith("_100g")]
    lines = ["\t".join(line.split("\t")[i] for i in keep) for line in sample_lines[:50]]
    _, stats = _ingest(con, tmp_path, lines)
    assert stats.products == 49 and stats.invalid_nutrients == 0
    counts = con.execute(
        f"SELECT {', '.join(f'count({c})' for c in NUTRIENT_COLUMNS)} FROM products"
    ).fetchone()
    assert set(counts) == {0}


def test_parquet_nutriments_give_the_same_values(con, tmp_path, sample_lines):
    entry = pa.struct(
        [
            ("name", pa.string()),
            ("value", pa.float32()),
            ("100g", pa.float32()),
            ("serving", pa.float32()),
            ("unit", pa.string()),
        ]
    )

    def nutriments(**per_100g: float) -> list[dict]:
        return [
            {"name": k, "value": v, "100g": v, "serving": None, "unit": "g"}
            for k, v in per_100g.items()
        ]

    table = pa.table(
        {
            "code": ["1", "2", "3"],
            "last_modified_t": pa.array([1_700_000_000] * 3, pa.int64()),
            "ingredients_tags": [["en:sugar"], ["en:water"], None],
            "additives_tags": pa.array([[], [], []], pa.list_(pa.string())),
            "categories_tags": [["en:snacks"], ["en:waters"], ["en:cheeses"]],
            "nova_group": pa.array([3, 1, None], pa.int32()),
            "nutriments": pa.array(
                [
                    nutriments(**{"energy": 2092.0, "sodium": 0.4, "fat": 12.5}),
                    nutriments(**{"energy-kcal": 0.0, "sugars": 48.0, "carbohydrates": 20.0}),
                    None,
                ],
                pa.list_(entry),
            ),
        }
    )
    path = tmp_path / "food.parquet"
    pq.write_table(table, path)
    stats = ingest_products(con, fetch_dump(str(path), tmp_path / "raw"))
    one = _nutrients(con, "1")
    assert one["energy_kcal_100g"] == pytest.approx(500.0, rel=1e-6)
    assert one["salt_100g"] == pytest.approx(1.0, rel=1e-6) and one["fat_100g"] == 12.5
    two = _nutrients(con, "2")
    assert two["energy_kcal_100g"] == 0 and two["sugars_100g"] is None
    assert set(_nutrients(con, "3").values()) == {None}
    assert stats.invalid_nutrients == 1


def test_describe_reads_like_a_label():
    assert describe("sugars_100g", 48.0) == "sugars 48 g / 100 g"
    assert describe("energy-kcal_100g", 539.4) == "energy 539 kcal / 100 g"
    assert describe("salt_100g", 0.107) == "salt 0.11 g / 100 g"


def _ingest(con, tmp_path: Path, lines: list[str]):
    dump = fetch_dump(str(write_dump(tmp_path / "dump.tsv", lines)), tmp_path / "raw")
    return dump, ingest_products(con, dump)
