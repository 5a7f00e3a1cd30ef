"""`feature_matrix`: the tag vocabulary and the sparse train/test matrices."""

import json
from pathlib import Path

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ingest.assets import latest_dump
from nova_assets.defs.resources import Warehouse
from nova_assets.defs.warehouse.assets import products, test_split
from nova_assets.lib.features import FAMILIES, build_vocabulary, labelled_rows_sql, tag_matrix
from nova_assets.lib.paths import data_paths


def features_dir() -> Path:
    """Where feature_matrix writes its matrices and manifest."""
    return data_paths().features


class FeatureConfig(dg.Config):
    min_count: int = 2
    """A tag becomes a feature only if at least this many training products carry it."""


@dg.asset(
    deps=[products, test_split],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "numpy"},
    pool="duckdb",
    description="Vocabulary of ingredients/additives/categories tags learned on train rows only "
    "(DuckDB feature_vocabulary), and sparse multi-hot train and test matrices in data/features/.",
)
def feature_matrix(
    context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    dump = latest_dump()
    with warehouse.connect(publish=["feature_vocabulary"]) as con:
        features = build_vocabulary(con, config.min_count)
        train = tag_matrix(con, labelled_rows_sql("train"), features)
        test = tag_matrix(con, labelled_rows_sql("test"), features)
    if train.X.shape[0] == 0 or not features:
        raise ValueError("no labelled training products with tags: cannot build features")
    directory = features_dir()
    train.save(directory / "train.npz")
    test.save(directory / "test.npz")
    per_family = {f: sum(1 for x in features if x.startswith(f + ":")) for f in FAMILIES}
    manifest = {
        "dump_sha256": dump.sha256,
        "min_count": config.min_count,
        "features": len(features),
        "features_per_family": per_family,
        "train_rows": int(train.X.shape[0]),
        "test_rows": int(test.X.shape[0]),
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    context.log.info(
        f"features: {len(features)} ({per_family}); train {train.X.shape[0]}, test {test.X.shape[0]}"
    )
    return dg.MaterializeResult(
        metadata={
            **{f"features_{k}": v for k, v in per_family.items()},
            "features": len(features),
            "train_rows": int(train.X.shape[0]),
            "test_rows": int(test.X.shape[0]),
            "train_nonzeros": int(train.X.nnz),
            "min_count": config.min_count,
            "path": dg.MetadataValue.path(str(directory)),
        },
        data_version=dg.DataVersion(f"{dump.sha256}-{config.min_count}"),
    )
