"""`feature_matrix`: the tag vocabulary, the train/test product matrices, and who the model is
for (the unlabelled products by evidence, which weigh the slices)."""

import json
from pathlib import Path

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.ingest.assets import latest_dump
from nova_assets.defs.metadata import setting
from nova_assets.defs.resources import Warehouse
from nova_assets.defs.warehouse.assets import products, test_split
from nova_assets.lib.evidence import population_weights
from nova_assets.lib.features import FAMILIES, build_vocabulary, labelled_rows_sql, product_matrix
from nova_assets.lib.files import write_atomically
from nova_assets.lib.markdown import table
from nova_assets.lib.paths import data_paths
from nova_assets.lib.predictions import population
from nova_assets.lib.warehouse import transaction


def features_dir() -> Path:
    """Where feature_matrix writes its matrices and manifest."""
    return data_paths().features


def read_manifest() -> dict:
    return json.loads((features_dir() / "manifest.json").read_text())


class FeatureConfig(dg.Config):
    min_count: int = 2
    """A tag becomes a feature only if at least this many training products carry it (OFF's
    NOVA markers always are)."""


@dg.asset(
    deps=[products, test_split],
    group_name="ml",
    automation_condition=follows_changed_dump(),
    kinds={"duckdb", "numpy"},
    pool="duckdb",
    description="Vocabulary of ingredients/additives/categories tags learned on train rows only "
    "(DuckDB feature_vocabulary), train and test product matrices (tags, names, evidence) in "
    "data/features/, and the unlabelled products by evidence state, which weigh the slices.",
)
def feature_matrix(
    context: dg.AssetExecutionContext, config: FeatureConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    dump = latest_dump()
    with warehouse.connect(publish=["feature_vocabulary"]) as con, transaction(con):
        features = build_vocabulary(con, config.min_count)
        train = product_matrix(con, labelled_rows_sql("train"), features)
        if len(train) == 0:
            raise ValueError("no labelled training products: cannot build features")
        test = product_matrix(con, labelled_rows_sql("test"), features)
        unlabelled = population(con)
    directory = features_dir()
    train.save(directory / "train.npz")
    test.save(directory / "test.npz")
    weights = population_weights(unlabelled)
    per_family = {f: sum(1 for x in features if x.startswith(f + ":")) for f in FAMILIES}
    manifest = {
        "dump_sha256": dump.sha256,
        "min_count": config.min_count,
        "features": len(features),
        "features_per_family": per_family,
        "train_rows": len(train),
        "test_rows": len(test),
        "unlabelled_by_state": unlabelled,
        "slice_weights": weights,
    }
    write_atomically(directory / "manifest.json", json.dumps(manifest, indent=2))
    context.log.info(
        f"features: {len(features)} ({per_family}); train {len(train)}, test {len(test)}; "
        f"unlabelled products by evidence {unlabelled}"
    )
    mix = table(
        ["evidence state", "unlabelled products"], [[k, f"{v:,}"] for k, v in unlabelled.items()]
    )
    return dg.MaterializeResult(
        metadata={
            **{f"features_{k}": v for k, v in per_family.items()},
            "features": len(features),
            "train_rows": len(train),
            "test_rows": len(test),
            "train_nonzeros": int(train.X.nnz),
            "min_count": setting(config.min_count),
            "unlabelled_by_evidence": dg.MetadataValue.md("\n".join(mix)),
            "slice_weights": dg.MetadataValue.json(weights),
            "path": dg.MetadataValue.path(str(directory)),
        },
        data_version=dg.DataVersion(f"{dump.sha256}-{config.min_count}"),
    )
