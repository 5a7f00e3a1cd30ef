"""`feature_matrix`: the tag vocabulary, the train/test product matrices, and who the model is
for (the unlabelled products by evidence, which weigh the slices)."""

from pathlib import Path

import dagster as dg

from nova_assets.defs.automation import follows_changed_dump
from nova_assets.defs.metadata import setting, unchanged
from nova_assets.defs.resources import DataDir, Warehouse
from nova_assets.defs.warehouse.assets import products, test_split
from nova_assets.lib.builds import Build
from nova_assets.lib.files import write_atomically
from nova_assets.lib.ingest.dump_pointers import latest_dump
from nova_assets.lib.markdown import table
from nova_assets.lib.ml.manifest import FILE as MANIFEST
from nova_assets.lib.ml.manifest import FeatureManifest

FILES = ("train.npz", "test.npz", MANIFEST)


class FeatureConfig(dg.Config):
    min_count: int = 2
    """A tag becomes a feature only if at least this many training products carry it (OFF's
    NOVA markers always are)."""
    real_products: bool = True
    """Train on the labelled real products shipped in data/real/ too (4,974 products of 18
    shops, countries and languages), except those whose code the dump has: a model of a small
    or one-country dump then still knows other shops' and languages' products (on real products
    of unseen sources, a model of the embedded sample alone scores 0.48 macro-F1 on the mix of
    slices, below OFF's rules as they are; with them, 0.74). Off: the dump's products only."""


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
    context: dg.AssetExecutionContext,
    config: FeatureConfig,
    warehouse: Warehouse,
    data_dir: DataDir,
) -> dg.MaterializeResult:
    from nova_assets.lib.ml.evidence import population_weights
    from nova_assets.lib.ml.feature_matrix import FAMILIES
    from nova_assets.lib.ml.training_data import training_data
    from nova_assets.lib.paths import REAL_PRODUCTS
    from nova_assets.lib.warehouse.real_products import file_sha256

    dump = latest_dump(data_dir.paths)
    directory = data_dir.paths.features
    corpus = file_sha256(REAL_PRODUCTS) if config.real_products else None
    build = Build.of(
        "feature_matrix",
        warehouse.built_as,
        outputs=[directory / name for name in FILES],
        dump_sha256=dump.sha256,
        min_count=config.min_count,
        real_products=corpus,
    )
    version = f"{dump.sha256}-{config.min_count}" + (f"-real-{corpus[:12]}" if corpus else "")
    if build.done:
        return unchanged("features of this dump with these settings, by this code", version)
    with warehouse.connect(publish=["feature_vocabulary"], scan=True) as con:
        data = training_data(con, config.min_count, REAL_PRODUCTS if corpus else None)
    features, train, test, unlabelled = data.features, data.train, data.test, data.unlabelled
    real_rows = int(train.corpus.sum())
    train.save(directory / "train.npz")
    test.save(directory / "test.npz")
    manifest = FeatureManifest(
        dump_sha256=dump.sha256,
        min_count=config.min_count,
        real_products=config.real_products,
        features=len(features),
        features_per_family={
            f: sum(1 for x in features if x.startswith(f + ":")) for f in FAMILIES
        },
        train_rows=len(train),
        real_train_rows=real_rows,
        test_rows=len(test),
        unlabelled_by_state=unlabelled,
        slice_weights=population_weights(unlabelled),
    )
    write_atomically(directory / MANIFEST, manifest.to_json())
    with warehouse.connect() as con:
        build.record(con)
    context.log.info(
        f"features: {len(features)} ({manifest.features_per_family}); train {len(train)} "
        f"({real_rows} of them real products from data/real/), "
        f"test {len(test)}; unlabelled products by evidence {unlabelled}"
    )
    return dg.MaterializeResult(
        metadata=_metadata(manifest, int(train.X.nnz), directory),
        data_version=dg.DataVersion(version),
    )


def _metadata(manifest: FeatureManifest, train_nonzeros: int, directory: Path) -> dict:
    mix = table(
        ["evidence state", "unlabelled products"],
        [[k, f"{v:,}"] for k, v in manifest.unlabelled_by_state.items()],
    )
    return {
        "status": "built",
        **{f"features_{k}": v for k, v in manifest.features_per_family.items()},
        "features": manifest.features,
        "train_rows": manifest.train_rows,
        "real_train_rows": manifest.real_train_rows,
        "test_rows": manifest.test_rows,
        "train_nonzeros": train_nonzeros,
        "min_count": setting(manifest.min_count),
        "real_products": setting(manifest.real_products),
        "unlabelled_by_evidence": dg.MetadataValue.md("\n".join(mix)),
        "slice_weights": dg.MetadataValue.json(manifest.slice_weights),
        "path": dg.MetadataValue.path(str(directory)),
    }
