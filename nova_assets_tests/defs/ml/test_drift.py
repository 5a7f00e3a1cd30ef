"""`nova_drift` materialized for real on three generated dumps in turn: the first (nothing to
compare, the check passes), a similar one (another seed: the check passes) and a shifted one
(the similar dump with every group 4 relabelled 3: the check warns)."""

import sys
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterInstance

from nova_assets.definitions import defs
from nova_assets.lib.ingest.dump_format import EXTRA_FIELD, dump_header, read_csv_sql
from nova_assets.lib.paths import REPO_ROOT, data_paths
from nova_assets_tests.defs.graph import FAST_MODEL, OUR_CODE, failure_text

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.generate_dump import generate_dump  # noqa: E402

ROWS = 2000
RUN_CONFIG = {
    "ops": {
        "nova_model": {"config": FAST_MODEL},  # drift is under test, not the model search
        # At 2000 rows a tag in 2 products is sampling noise; 5 keeps the vocabulary stable.
        "nova_drift": {"config": {"min_count": 5}},
    }
}


def shifted(source: Path, target: Path) -> Path:
    """The same dump with every nova_group 4 relabelled 3, still in OFF's TSV format."""
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * EXCLUDE ({EXTRA_FIELD}) REPLACE (CASE WHEN nova_group = '4' THEN '3' "
            f"ELSE nova_group END AS nova_group) "
            f"FROM {read_csv_sql(str(source), dump_header(str(source)))}) TO '{target}' "
            "(FORMAT csv, DELIMITER '\t', QUOTE '', ESCAPE '', HEADER true)"
        )
    return target


def materialize(instance: DagsterInstance, mp: pytest.MonkeyPatch, dump: Path) -> dict:
    """Run the whole graph on `dump`; return what the drift asset and its check said."""
    mp.setenv("NOVA_DUMP_URL", str(dump))
    job = defs().resolve_implicit_global_asset_job_def()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=RUN_CONFIG
        )
    assert result.success, failure_text(result)
    ours = [
        f"{w.filename}:{w.lineno} {w.message}"
        for w in caught
        if issubclass(w.category, DeprecationWarning | FutureWarning)
        and w.filename.startswith(OUR_CODE)
    ]
    assert ours == []
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("nova_drift")
    ]
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name == "nova_drift_within_threshold"
    ]
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        group_4 = con.execute("SELECT count(*) FROM products WHERE nova_group = 4").fetchone()[0]
    return {
        "metadata": {k: v.value for k, v in event.materialization.metadata.items()},
        "raw_metadata": event.materialization.metadata,
        "data_version": event.materialization.tags.get("dagster/data_version"),
        "check": check,
        "group_4": group_4,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    first, similar = root / "first.tsv", root / "similar.tsv"
    generate_dump(ROWS, first, seed=1)
    generate_dump(ROWS, similar, seed=2)
    dumps = {
        "first": first,
        "similar": similar,
        "shifted": shifted(similar, root / "shifted.tsv"),
    }
    # Loading a model points MLflow (and MLFLOW_TRACKING_URI) at this module's store;
    # conftest's module-scoped guard, set up before this fixture, puts it back afterwards.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVA_DATA_DIR", str(root / "data"))
        for name in ("MLFLOW_TRACKING_URI", "NOVA_INCOMING_DIR"):
            mp.delenv(name, raising=False)
        with DagsterInstance.ephemeral() as instance:
            yield {name: materialize(instance, mp, path) for name, path in dumps.items()}


def test_first_dump_has_nothing_to_compare_and_passes(runs):
    run = runs["first"]
    metadata = run["metadata"]
    assert metadata["previous_dump_sha256"] == "none"
    assert metadata["summary"].startswith("no previous dump")
    assert "class_share_distance" not in metadata and "changed_labels" not in metadata
    assert 0.2 < metadata["labelled_share"] < 0.3 and metadata["vocabulary"] > 0
    assert run["data_version"] == metadata["dump_sha256"]
    assert "no previous dump measured" in metadata["drift"]
    check = run["check"]
    assert check.passed and check.description == "no previous dump: nothing to compare"


def test_similar_dump_passes(runs):
    metadata = runs["similar"]["metadata"]
    assert metadata["previous_dump_sha256"] == runs["first"]["metadata"]["dump_sha256"]
    assert metadata["class_share_distance"] < 0.05
    assert metadata["vocabulary_change_share"] < 0.2
    # Another seed draws other barcodes: no product in common, so no label to compare.
    assert metadata["changed_labels"] == 0
    assert "champion_accuracy" not in metadata and metadata["champion"] == "no label changed"
    check = runs["similar"]["check"]
    assert check.passed, check.description
    assert check.metadata["class_share_distance"].value == metadata["class_share_distance"]
    assert check.metadata["max_class_share_distance"].value == 0.05


def test_shifted_dump_warns(runs):
    run, before = runs["shifted"], runs["similar"]
    metadata = run["metadata"]
    assert metadata["previous_dump_sha256"] == before["metadata"]["dump_sha256"]
    # Every group-4 product moved to 3: the distance is group 4's share before.
    assert metadata["class_share_distance"] == pytest.approx(before["metadata"]["share_4"])
    assert metadata["share_4"] == 0.0
    assert metadata["changed_labels"] == before["group_4"] > 0
    assert metadata["changed_label_share"] == pytest.approx(before["metadata"]["share_4"])
    assert metadata["new_vocabulary"] == metadata["vanished_vocabulary"] == 0
    assert 0.0 <= metadata["champion_accuracy"] <= 1.0
    assert metadata["champion"].endswith(f" on {before['group_4']:,} changed labels")
    assert isinstance(run["raw_metadata"]["class_share_distance"], dg.FloatMetadataValue)
    assert f"4→3: {before['group_4']:,}." in metadata["drift"]
    check = run["check"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "class share distance" in check.description
    assert "changed label share" in check.description


def test_history_is_kept_per_dump_and_published(runs):
    history = runs["shifted"]["metadata"]["drift"].split("### History")[1]
    for name in ("first", "similar", "shifted"):
        assert f"`{runs[name]['metadata']['dump_sha256'][:12]}`" in history
    with duckdb.connect(str(data_paths().serving / "nova.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT dump_sha256, previous_sha256 FROM nova_drift ORDER BY seq"
        ).fetchall()
    shas = [runs[name]["metadata"]["dump_sha256"] for name in ("first", "similar", "shifted")]
    assert rows == [(shas[0], None), (shas[1], shas[0]), (shas[2], shas[1])]
