"""The feature manifest travels typed: written and read back as the same FeatureManifest."""

from pathlib import Path

import pytest

from nova_assets.lib.ml.manifest import FILE, FeatureManifest

MANIFEST = FeatureManifest(
    dump_sha256="ab" * 32,
    min_count=2,
    real_products=True,
    features=3,
    features_per_family={"ingredients": 2, "additives": 1},
    train_rows=10,
    real_train_rows=4,
    test_rows=2,
    unlabelled_by_state={"no_ingredients": 5},
    slice_weights={"as_is": 0.5, "no_ingredients": 0.5},
)


def test_a_manifest_reads_back_as_written(tmp_path: Path) -> None:
    (tmp_path / FILE).write_text(MANIFEST.to_json())
    assert FeatureManifest.read(tmp_path) == MANIFEST


def test_extra_keys_are_ignored_and_a_missing_one_is_an_error() -> None:
    text = MANIFEST.to_json()
    assert (
        FeatureManifest.from_json(text.replace('"min_count"', '"other": 1, "min_count"'))
        == MANIFEST
    )
    with pytest.raises(KeyError, match="test_rows"):
        FeatureManifest.from_json(text.replace('"test_rows"', '"rows"'))


def test_no_manifest_says_which_asset_makes_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialize feature_matrix"):
        FeatureManifest.read(tmp_path)
