"""`products` and `test_split`: the cleaned warehouse tables every model step reads."""

import json

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.failures import refusing
from nova_assets.defs.ingest.assets import off_dump
from nova_assets.defs.metadata import unchanged
from nova_assets.defs.resources import DataDir, Warehouse
from nova_assets.lib import markdown
from nova_assets.lib.builds import Build, code_fingerprint
from nova_assets.lib.files import write_atomically
from nova_assets.lib.ingest.dump_format import DumpError
from nova_assets.lib.ingest.dump_pointers import accepted_dump, fetched_dump, latest_dump
from nova_assets.lib.warehouse.products import (
    MAX_SHRINK,
    IngestedDump,
    ShrinkError,
    ingest_products,
)
from nova_assets.lib.warehouse.split import TEST_PERCENT, extend_test_split


class ProductsConfig(dg.Config):
    max_shrink: float = MAX_SHRINK
    """Refuse a dump whose product count falls by more than this share of the current table
    (1 accepts any fall)."""
    go_back: bool = False
    """Ingest the dump fetched even if the warehouse held it before and has moved on to a dump
    ingested after it (by default the tables keep the newer dump and nothing fails)."""


def _launch(config: dict) -> str:
    """The command that ingests the dump fetched last with `config` for `products`, and
    rebuilds what follows it (without fetching NOVA_DUMP_URL again)."""
    ops = json.dumps({"ops": {"products": {"config": config}}})
    return f"uv run dg launch --assets 'products*' --config-json '{ops}'"


GO_BACK = _launch({"go_back": True, "max_shrink": 1})
ACCEPT_FALL = _launch({"max_shrink": 1})


def _how_to_accept(error: Exception) -> str:
    if not isinstance(error, ShrinkError):
        return ""
    return f"If this dump is right, allow the fall with products.max_shrink: {ACCEPT_FALL}"


def _markdown_table(columns: list[str], rows: list[tuple]) -> str:
    def cell(value) -> str:
        text = "" if value is None else str(value)
        return markdown.escape(text[:60] + "…" if len(text) > 60 else text)

    return "\n".join(markdown.table(columns, [[cell(v) for v in row] for row in rows]))


@dg.asset(
    deps=[off_dump],
    group_name="warehouse",
    automation_condition=follows_changed_dump(),
    # The code that reads a dump: after a refused dump, changing it lets automation try again.
    code_version=code_fingerprint()[:16],
    kinds={"duckdb"},
    pool="duckdb",
    description="Cleaned, typed OFF products, one row per code (latest last_modified_t wins); "
    "tags as VARCHAR[], nova_group 1..4 or NULL. Replaced atomically: a bad dump leaves the "
    "previous table as it was, and only an accepted dump becomes the current one. A dump the "
    "tables held before and left for a newer one is not taken back (config go_back).",
)
def products(
    context: dg.AssetExecutionContext,
    config: ProductsConfig,
    warehouse: Warehouse,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    paths = data_dir.paths
    dump = fetched_dump(paths)
    build = Build.of("products", warehouse.built_as, dump_sha256=dump.sha256)
    accepted = accepted_dump(paths)
    if build.done and accepted and accepted.sha256 == dump.sha256:
        context.log.info(f"products already hold dump {dump.sha256[:12]}: nothing to ingest")
        return unchanged("the tables already hold this dump, by this code", dump.sha256)
    held_before = None
    if accepted and accepted.sha256 != dump.sha256 and not config.go_back:
        held_before = warehouse.ingested(dump.sha256)
    if held_before is not None:
        current = warehouse.ingested(accepted.sha256)
        return _kept_newer(context, held_before, accepted.sha256, current)
    with (
        refusing("products", DumpError, hint=_how_to_accept, dump=dump.path),
        warehouse.connect(publish=["products", "dumps"]) as con,
    ):
        stats = ingest_products(con, dump, max_shrink=config.max_shrink)
        build.record(con)
        metadata = _products_metadata(con)
    write_atomically(paths.latest_dump, dump.to_json())
    context.log.info(
        f"products: {stats.products:,} from {stats.lines_read:,} lines; skipped {stats.skipped_lines} "
        f"broken lines, {stats.duplicate_rows} duplicate rows, {stats.invalid_nova_groups} invalid groups, "
        f"{stats.invalid_nutrients} impossible nutrient values made NULL"
    )
    return dg.MaterializeResult(
        metadata={
            "status": "ingested",
            "dagster/row_count": stats.products,
            "lines_read": stats.lines_read,
            "skipped_lines": stats.skipped_lines,
            "rows_without_code": stats.rows_without_code,
            "duplicate_rows": stats.duplicate_rows,
            "invalid_nova_groups": stats.invalid_nova_groups,
            "repaired_lines": stats.repaired_lines,
            "invalid_nutrients": stats.invalid_nutrients,
            "previous_row_count": stats.previous_products,
            **metadata,
            "dump_sha256": dump.sha256,
        },
        data_version=dg.DataVersion(dump.sha256),
    )


def _kept_newer(
    context: dg.AssetExecutionContext,
    fetched: IngestedDump,
    current_sha256: str,
    current: IngestedDump | None,
) -> dg.MaterializeResult:
    """The tables stay on the dump ingested after `fetched` (say, the embedded sample fetched
    again by the README's first command after a real dump came in): nothing to ingest, and
    nothing fails because the data moved on."""
    held = current.describe() if current else f"dump {current_sha256[:12]}"
    context.log.info(
        f"products keep {held}: the dump fetched, {fetched.describe()}, is one the tables held "
        f"before and left for the newer one. To go back to it: {GO_BACK}"
    )
    return unchanged(
        "the tables come from a newer dump than the one fetched",
        current_sha256,
        dump_sha256=current_sha256,
        fetched_dump_sha256=fetched.sha256,
        to_go_back=GO_BACK,
    )


def _products_metadata(con) -> dict:
    """The new table's schema, its groups and its first rows, for the UI."""
    schema = con.execute("DESCRIBE products").fetchall()
    preview = con.execute(
        "SELECT code, product_name, nova_group, ingredients_tags[1:3] AS first_ingredients, "
        "categories_tags[1:2] AS first_categories FROM products ORDER BY code LIMIT 5"
    ).fetchall()
    by_group = con.execute(
        "SELECT coalesce(CAST(nova_group AS VARCHAR), 'unknown'), count(*) FROM products "
        "GROUP BY ALL ORDER BY 1"
    ).fetchall()
    columns = ["code", "product_name", "nova_group", "ingredients", "categories"]
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=r[0], type=r[1]) for r in schema]
        ),
        "nova_groups": dg.MetadataValue.md(_markdown_table(["nova_group", "products"], by_group)),
        "preview": dg.MetadataValue.md(_markdown_table(columns, preview)),
    }


@dg.asset(
    deps=[products],
    group_name="warehouse",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb"},
    pool="duckdb",
    description=f"The fixed split: each code is 'train' or 'test' ({TEST_PERCENT}% test) by a stable "
    "hash of the code, recorded once and never changed.",
)
def test_split(
    context: dg.AssetExecutionContext, warehouse: Warehouse, data_dir: DataDir
) -> dg.MaterializeResult:
    dump = latest_dump(data_dir.paths)
    build = Build.of("test_split", warehouse.built_as, dump_sha256=dump.sha256)
    if build.done:
        return unchanged("every code of this dump already has its side", dump.sha256)
    with warehouse.connect(publish=["test_split"]) as con:
        counts = extend_test_split(con)
        build.record(con)
    context.log.info(
        f"test_split: {counts['new_codes']:,} new codes; {counts['test_codes']:,} of {counts['codes']:,} in test"
    )
    return dg.MaterializeResult(
        metadata={
            "status": "extended",
            "dagster/row_count": counts["codes"],
            "new_codes": counts["new_codes"],
            "test_codes": counts["test_codes"],
            "test_share": round(counts["test_codes"] / counts["codes"], 4)
            if counts["codes"]
            else 0.0,
        },
        data_version=dg.DataVersion(dump.sha256),
    )
