"""The warehouse checks, called directly on real DuckDB files made good and bad on purpose."""

import duckdb
import pytest

from nova_assets.defs.resources import Warehouse
from nova_assets.defs.warehouse.checks import (
    products_code_unique,
    products_nova_group_valid,
    products_row_count,
    split_is_stable,
)
from nova_assets.lib.warehouse.split import extend_test_split


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            "CREATE TABLE products AS SELECT * FROM (VALUES ('1', 4, 'dump2'), ('2', 1, 'dump2'), ('3', NULL, 'dump2')) "
            "t(code, nova_group, dump_sha256)"
        )
        con.execute(
            "CREATE TABLE dumps AS SELECT * FROM (VALUES ('dump1', 4, TIMESTAMP '2026-01-01'), "
            "('dump2', 3, TIMESTAMP '2026-02-01')) t(dump_sha256, products, ingested_at)"
        )
        extend_test_split(con)
    return Warehouse(path=str(path), temp_directory=str(tmp_path / "tmp"))


def mutate(warehouse: Warehouse, sql: str) -> None:
    with warehouse.connect() as con:
        con.execute(sql)


def test_good_tables_pass_every_check(warehouse):
    for check in (
        products_code_unique,
        products_nova_group_valid,
        products_row_count,
        split_is_stable,
    ):
        assert check(warehouse).passed, check


def test_duplicate_or_null_codes_fail(warehouse):
    mutate(warehouse, "INSERT INTO products VALUES ('1', 3, 'dump2')")
    result = products_code_unique(warehouse)
    assert not result.passed and result.metadata["duplicate_codes"].value == 1
    mutate(
        warehouse,
        "DELETE FROM products WHERE code = '1'; INSERT INTO products VALUES (NULL, 3, 'dump2')",
    )
    result = products_code_unique(warehouse)
    assert not result.passed and result.metadata["null_codes"].value == 1


def test_nova_group_out_of_range_fails(warehouse):
    mutate(warehouse, "UPDATE products SET nova_group = 5 WHERE code = '2'")
    result = products_nova_group_valid(warehouse)
    assert not result.passed and result.metadata["out_of_range"].value == 1


def test_empty_table_or_halved_count_fails(warehouse):
    mutate(warehouse, "UPDATE dumps SET products = 7 WHERE dump_sha256 = 'dump1'")
    assert not products_row_count(warehouse).passed
    mutate(
        warehouse, "UPDATE dumps SET products = 4 WHERE dump_sha256 = 'dump1'; DELETE FROM products"
    )
    result = products_row_count(warehouse)
    assert not result.passed and result.metadata["row_count"].value == 0


def test_a_code_that_changed_side_or_has_none_fails(warehouse):
    mutate(
        warehouse,
        "UPDATE test_split SET split = CASE split WHEN 'test' THEN 'train' ELSE 'test' END WHERE code = '2'",
    )
    result = split_is_stable(warehouse)
    assert not result.passed and result.metadata["codes_changed_side"].value == 1
    mutate(
        warehouse,
        "UPDATE test_split SET split = CASE split WHEN 'test' THEN 'train' ELSE 'test' END WHERE code = '2'",
    )
    assert split_is_stable(warehouse).passed
    mutate(warehouse, "INSERT INTO products VALUES ('4', 2, 'dump2')")
    result = split_is_stable(warehouse)
    assert not result.passed and result.metadata["codes_without_side"].value == 1


def test_a_fall_allowed_with_max_shrink_passes_the_row_count(warehouse):
    """`products` ingested a dump with max_shrink 1 (the command its refusal gives): the check
    that follows must not stop the graph for the very fall a person allowed."""
    mutate(warehouse, "UPDATE dumps SET products = 7 WHERE dump_sha256 = 'dump1'")
    assert not products_row_count(warehouse).passed
    mutate(
        warehouse,
        "ALTER TABLE dumps ADD COLUMN max_shrink DOUBLE; "
        "UPDATE dumps SET max_shrink = 1 WHERE dump_sha256 = 'dump2'",
    )
    result = products_row_count(warehouse)
    assert result.passed and result.metadata["max_shrink"].value == "1.0"
