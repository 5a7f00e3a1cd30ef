"""Checks beside `products` and `test_split`; the blocking ones stop what follows."""

import dagster as dg

from nova_assets.defs.automation import runs_with_its_asset
from nova_assets.defs.metadata import setting
from nova_assets.defs.resources import Warehouse
from nova_assets.defs.warehouse.assets import products, test_split
from nova_assets.lib.warehouse.products import allowed_shrink
from nova_assets.lib.warehouse.split import misplaced_codes


@dg.asset_check(
    asset=products,
    automation_condition=runs_with_its_asset(),
    blocking=True,
    pool="duckdb",
    description="Every product has a code, and only one row.",
)
def products_code_unique(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        nulls, dupes = con.execute(
            "SELECT count(*) FILTER (code IS NULL OR code = ''), count(*) - count(DISTINCT code) FROM products"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=nulls == 0 and dupes == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"null_codes": nulls, "duplicate_codes": dupes},
    )


@dg.asset_check(
    asset=products,
    automation_condition=runs_with_its_asset(),
    blocking=True,
    pool="duckdb",
    description="nova_group is 1, 2, 3, 4 or NULL (unknown).",
)
def products_nova_group_valid(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        bad, labelled = con.execute(
            "SELECT count(*) FILTER (nova_group NOT IN (1, 2, 3, 4)), count(nova_group) FROM products"
        ).fetchone()
    return dg.AssetCheckResult(
        passed=bad == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"out_of_range": bad, "labelled": labelled},
    )


@dg.asset_check(
    asset=products,
    automation_condition=runs_with_its_asset(),
    pool="duckdb",
    blocking=True,
    description="products is not empty and holds at least half the products of the previous dump "
    "(or what products.max_shrink allowed when the dump was ingested).",
)
def products_row_count(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        rows, sha256 = con.execute(
            "SELECT count(*), any_value(dump_sha256) FROM products"
        ).fetchone()
        max_shrink = allowed_shrink(con, sha256)
        history = con.execute(
            "SELECT products FROM dumps WHERE dump_sha256 <> ? ORDER BY ingested_at DESC LIMIT 1",
            [sha256],
        ).fetchall()
    previous = history[0][0] if history else None
    passed = rows > 0 and (previous is None or rows >= previous * (1 - max_shrink))
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "row_count": rows,
            "previous_dump_products": previous,
            "max_shrink": setting(max_shrink),
        },
    )


@dg.asset_check(
    asset=test_split,
    automation_condition=runs_with_its_asset(),
    pool="duckdb",
    blocking=True,
    description="No code changed side, and every product has one.",
)
def split_is_stable(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        moved, sample = misplaced_codes(con)
        unplaced = con.execute(
            "SELECT count(*) FROM products p ANTI JOIN test_split s USING (code)"
        ).fetchone()[0]
    return dg.AssetCheckResult(
        passed=moved == 0 and unplaced == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "codes_changed_side": moved,
            "example_codes": ", ".join(sample),
            "codes_without_side": unplaced,
        },
    )
