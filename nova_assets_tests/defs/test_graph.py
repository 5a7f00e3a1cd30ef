"""The whole asset graph, materialized for real on the embedded sample and on bad dumps."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance
from mlflow import MlflowClient

from nova_assets.lib.ingest.dump import Dump
from nova_assets.lib.ml.registry import MODEL_NAME
from nova_assets.lib.nutrients import CSV_COLUMNS, describe
from nova_assets.lib.paths import REPO_ROOT, SAMPLE_DUMP, data_paths
from nova_assets_tests.defs.graph import (
    failure_text,
    mlflow_runs,
    registry_state,
    run_graph,
    warehouse_state,
)
from nova_assets_tests.helpers import set_field, write_dump
from nova_assets_tests.lib.ingest.test_parquet_dump import TABLE

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.generate_dump import write_parquet  # noqa: E402


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """One data dir and instance for the module: the sample materialized once, then bad dumps."""
    root = tmp_path_factory.mktemp("graph")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVA_DATA_DIR", str(root / "data"))
        for name in ("MLFLOW_TRACKING_URI", "NOVA_DUMP_URL", "NOVA_INCOMING_DIR"):
            mp.delenv(name, raising=False)
        with DagsterInstance.ephemeral() as instance:
            result, deprecations = run_graph(instance)
            yield {
                "root": root,
                "instance": instance,
                "result": result,
                "deprecations": deprecations,
                "mp": mp,
            }


def test_every_asset_and_check_succeeds_on_the_sample(graph):
    result = graph["result"]
    assert result.success, failure_text(result)
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {
        "off_dump",
        "products",
        "test_split",
        "feature_matrix",
        "nova_model",
        "evaluation_report",
        "champion_model",
        "nova_predictions",
        "nova_drift",
    }
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
    assert graph["deprecations"] == []


def test_tables_hold_the_sample(graph):
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        products, labelled = con.execute(
            "SELECT count(*), count(nova_group) FROM products"
        ).fetchone()
        assert (products, labelled) == (1000, 827)
        sides = dict(con.execute("SELECT split, count(*) FROM test_split GROUP BY ALL").fetchall())
        assert sides["test"] + sides["train"] == 1000 and 150 < sides["test"] < 250
        families = dict(
            con.execute("SELECT family, count(*) FROM feature_vocabulary GROUP BY ALL").fetchall()
        )
        assert set(families) == {"ingredients", "additives", "categories"}
        # Every blank food product with ingredients, categories, a name or nutrients: 155 of
        # the 173.
        unlabelled = con.execute(
            "SELECT count(*) FROM products WHERE nova_group IS NULL AND nova_blank_reason <> "
            "'non_food' AND (len(ingredients_tags) > 0 OR len(categories_tags) > 0 OR "
            "product_name IS NOT NULL OR fat_100g IS NOT NULL OR energy_kcal_100g IS NOT NULL)"
        ).fetchone()[0]
        predictions = con.execute(
            "SELECT count(*), min(predicted_nova_group), max(predicted_nova_group), min(probability), "
            "max(probability), any_value(model_version) FROM nova_predictions"
        ).fetchone()
        assert predictions[0] == unlabelled == 155
        assert 1 <= predictions[1] <= predictions[2] <= 4
        assert 0 < predictions[3] <= predictions[4] <= 1
        assert predictions[5] == 1
        leaked = con.execute(
            "SELECT count(*) FROM nova_predictions JOIN products USING (code) WHERE nova_group IS NOT NULL"
        ).fetchone()[0]
        assert leaked == 0
        by_evidence = dict(
            con.execute(
                "SELECT array_to_string(evidence, '+'), count(*) FROM nova_predictions GROUP BY ALL"
            ).fetchall()
        )
        assert by_evidence["name+nutrients"] == 53 and by_evidence["nutrients"] == 2
        assert by_evidence["name"] == 18
        assert by_evidence["categories+name"] + by_evidence["categories+name+nutrients"] == 37
        reasons = dict(
            con.execute(
                "SELECT nova_blank_reason, count(*) FROM nova_predictions GROUP BY ALL"
            ).fetchall()
        )
        assert reasons == {
            "missing_ingredients": 110,
            "missing_category": 21,
            "too_many_unknown_ingredients": 24,
        }
        dumps = con.execute("SELECT products, dump_sha256 FROM dumps").fetchall()
        assert len(dumps) == 1 and dumps[0][0] == 1000


def test_mlflow_run_finished_version_registered_and_champion(graph):
    runs = mlflow_runs()
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_id"] == graph["result"].run_id
    assert {"candidates", "model", "features", "train_rows"} <= set(run.data.params)
    assert {"test_accuracy", "test_macro_f1", "train_accuracy", "validation_macro_f1"} <= set(
        run.data.metrics
    )
    assert registry_state() == {"versions": [1], "champion": "1"}
    # Every candidate setting is a finished child run with its validation score; the chosen
    # model is the best of them.
    children = [r for r in mlflow_runs(nested=True) if r.info.run_id != run.info.run_id]
    assert children and all(r.data.tags["mlflow.parentRunId"] == run.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in children)
    kinds = {r.data.params["model"] for r in children}
    assert kinds == {
        "reference_bernoulli_nb",
        "marker_logistic_regression",
        "evidence_logistic_regression",
    }
    assert all("validation_macro_f1_no_ingredients" in r.data.metrics for r in children)
    best = max(r.data.metrics["validation_macro_f1"] for r in children)
    assert run.data.metrics["validation_macro_f1"] == best
    client = MlflowClient(tracking_uri=data_paths().mlflow_tracking_uri)
    version = client.get_model_version_by_alias(MODEL_NAME, "challenger")
    assert str(version.version) == "1"
    assert version.tags["model_kind"] == run.data.params["model"]
    assert len(version.tags["git_commit"]) == 40 or version.tags["git_commit"] == "unknown"
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(data_paths().root)
    # Linked both ways, named and described.
    assert run.info.run_name == f"nova_model {graph['result'].run_id[:8]}"
    assert run.data.tags["dagster_run_url"].endswith(f"/runs/{graph['result'].run_id}")
    model = materialization(graph["result"], "nova_model").metadata
    assert model["mlflow_run"].value.endswith(f"/runs/{run.info.run_id}")
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.tags["mlflow.note.content"]
    assert client.get_registered_model(MODEL_NAME).description


def test_report_files_and_metadata(graph):
    report = json.loads((data_paths().reports / "evaluation.json").read_text())
    for key in ("model", "rules", "reference", "majority"):
        assert 0 <= report[key]["accuracy"] <= 1 and 0 <= report[key]["macro_f1"] <= 1
        for entry in report["slices"].values():
            assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ci", "ece"} <= set(
                entry[key]
            )
    assert report["model"]["version"] == "1"
    assert report["model"]["macro_f1"] > report["rules"]["macro_f1"]
    assert report["model"]["macro_f1"] > report["majority"]["macro_f1"]
    # By default the real products of data/real/ train the model beside the dump's own.
    features = materialization(graph["result"], "feature_matrix").metadata
    assert features["real_products"].value == "True"
    assert features["real_train_rows"].value > 4000
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        test_rows = con.execute(
            "SELECT count(*) FROM products JOIN test_split USING (code) WHERE split = 'test' AND nova_group IS NOT NULL"
        ).fetchone()[0]
    assert report["test_rows"] == test_rows
    assert (data_paths().reports / "evaluation.png").stat().st_size > 1000
    event = next(
        e
        for e in graph["result"].get_asset_materialization_events()
        if e.asset_key.path[-1] == "evaluation_report"
    )
    markdown = event.materialization.metadata["report"].value
    assert "data:image/png;base64," in markdown and "| model v1 |" in markdown
    assert (data_paths().reports / "reliability.png").stat().st_size > 1000


def materialization(result, asset: str):
    return next(
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == asset
    )


def test_same_dump_code_and_settings_again_build_nothing(graph):
    """The README's order: the first command's run, then the UI's "Materialize all" on another
    Dagster instance. The second run writes no table, file, report or model version."""
    before = warehouse_state()
    runs_before = len(mlflow_runs())
    paths = data_paths()
    files = [
        paths.serving / "nova.duckdb",
        paths.reports / "evaluation.json",
        paths.features / "train.npz",
        paths.features / "manifest.json",
    ]
    written = {f: f.stat().st_mtime_ns for f in files}
    with DagsterInstance.ephemeral() as other_instance:
        result, _ = run_graph(other_instance)
    assert result.success, failure_text(result)
    assert registry_state() == {"versions": [1], "champion": "1"}
    for asset in (
        "products",
        "test_split",
        "feature_matrix",
        "nova_model",
        "evaluation_report",
        "nova_predictions",
        "nova_drift",
    ):
        status = materialization(result, asset).metadata["status"].value
        assert status.startswith("unchanged"), (asset, status)
    assert len(mlflow_runs()) == runs_before  # no training, so no MLflow run
    assert warehouse_state() == before  # predicted_at and the dumps row included
    assert {f: f.stat().st_mtime_ns for f in files} == written
    # Drift is plotted once per dump: the unchanged run logs none of its figures.
    assert "labelled_share" in materialization(graph["result"], "nova_drift").metadata
    assert "labelled_share" not in materialization(result, "nova_drift").metadata
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks


def test_other_settings_make_a_tied_version_and_keep_the_champion(graph):
    settings = {"ops": {"nova_model": {"config": {"C": [0.3, 1.0, 3.0]}}}}
    result, _ = run_graph(graph["instance"], run_config=settings)
    assert result.success, failure_text(result)
    assert registry_state() == {"versions": [1, 2], "champion": "1"}
    client = MlflowClient(tracking_uri=data_paths().mlflow_tracking_uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == "2"
    assert materialization(result, "champion_model").metadata["action"].value == "kept"
    assert all(r.info.status == "FINISHED" for r in mlflow_runs())


def predict_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nova_assets.predict", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NOVA_DATA_DIR": str(data_paths().root)},
    )


def test_predict_command_gives_the_champions_answer_and_reasons(graph):
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        code, group, reasons = con.execute(
            "SELECT code, predicted_nova_group, reasons FROM nova_predictions "
            "WHERE len(reasons) > 0 ORDER BY code LIMIT 1"
        ).fetchone()
    done = predict_command("--code", code, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    # The table names a nutrient as the CSV does; the command says it with the product's value.
    spelled = [describe(r, answer[r]) if r in CSV_COLUMNS else r for r in reasons]
    assert (answer["code"], answer["nova_group"], answer["reasons"]) == (code, group, spelled)
    assert answer["off_nova_group"] is None and answer["model_version"] == 1
    text = predict_command("--tags", "en:sugar,en:palm-oil,en:flavouring", "--additives", "en:e322")
    assert text.returncode == 0, text.stderr
    assert "predicted NOVA group 4" in text.stdout and "because of: " in text.stdout


def test_predict_command_errors_are_one_clear_line(graph, tmp_path):
    unknown = predict_command("--code", "no-such-code")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines()[-1].startswith("error: no product with code")
    empty = subprocess.run(
        [sys.executable, "-m", "nova_assets.predict", "--code", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NOVA_DATA_DIR": str(tmp_path)},
    )
    assert empty.returncode == 2 and "materialize the assets first" in empty.stderr


def test_rolling_back_the_champion_alias_is_what_predictions_use(graph):
    """A user moves `champion` in the MLflow UI; the next nova_predictions follows it."""
    client = MlflowClient(tracking_uri=data_paths().mlflow_tracking_uri)
    client.set_registered_model_alias(MODEL_NAME, "champion", "2")
    try:
        result, _ = run_graph(graph["instance"], ["nova_predictions"])
        assert result.success, failure_text(result)
        with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
            versions = con.execute("SELECT DISTINCT model_version FROM nova_predictions").fetchall()
        assert versions == [(2,)]
    finally:
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")


def bad_dumps(tmp: Path, lines: list[str]) -> dict[str, tuple[Path, str]]:
    header = lines[0].split("\t")
    drop = header.index("ingredients_tags")
    missing = ["\t".join(f for i, f in enumerate(line.split("\t")) if i != drop) for line in lines]
    full = gzip.compress(("\n".join(lines) + "\n").encode())
    (tmp / "truncated.tsv.gz").write_bytes(full[: len(full) // 2])
    (tmp / "empty.tsv").write_bytes(b"")
    return {
        "empty": (tmp / "empty.tsv", "empty"),
        "header-only": (write_dump(tmp / "header.tsv", lines[:1]), "no product rows"),
        "truncated-gzip": (tmp / "truncated.tsv.gz", "truncated gzip"),
        "missing-column": (
            write_dump(tmp / "missing.tsv", missing),
            "lacks required column(s) ingredients_tags",
        ),
        "no-such-path": (tmp / "nowhere" / "dump.tsv", "nowhere/dump.tsv"),
        "shrunk": (write_dump(tmp / "small.tsv", lines[:300]), "fall of more than 50%"),
        "unlabelled": (
            write_dump(
                tmp / "unlabelled.tsv", [lines[0], *(unlabel(x, lines[0]) for x in lines[1:])]
            ),
            "not one with a NOVA group",
        ),
    }


def unlabel(line: str, header: str) -> str:
    return set_field(line, header, "nova_group", "")


def current_dump() -> Dump:
    return Dump.from_json(data_paths().latest_dump.read_text())


@pytest.mark.parametrize(
    "case",
    [
        "empty",
        "header-only",
        "truncated-gzip",
        "missing-column",
        "no-such-path",
        "shrunk",
        "unlabelled",
    ],
)
def test_bad_dump_fails_clearly_and_changes_nothing(graph, sample_lines, case):
    path, message = bad_dumps(graph["root"], sample_lines)[case]
    before_tables, before_registry = warehouse_state(), registry_state()
    current = current_dump()
    runs_before = len(mlflow_runs())
    graph["mp"].setenv("NOVA_DUMP_URL", str(path))
    try:
        result, _ = run_graph(graph["instance"])
    finally:
        graph["mp"].delenv("NOVA_DUMP_URL")
    assert not result.success
    assert message in failure_text(result)
    assert warehouse_state() == before_tables
    assert registry_state() == before_registry
    runs = mlflow_runs()
    assert len(runs) == runs_before  # it failed before training: no empty MLflow run
    assert all(r.info.status != "RUNNING" for r in runs)
    assert current_dump() == current and Path(current.path).exists()


def test_refused_dumps_never_become_current_nor_prune_the_one_in_use(graph, sample_lines):
    """`keep` is 3: four refused dumps in a row must leave the tables' dump on disk."""
    current = current_dump()
    for n in range(4):
        small = write_dump(graph["root"] / f"small{n}.tsv", sample_lines[: 200 + n])
        graph["mp"].setenv("NOVA_DUMP_URL", str(small))
        try:
            result, _ = run_graph(graph["instance"], ["off_dump", "products"])
        finally:
            graph["mp"].delenv("NOVA_DUMP_URL")
        assert not result.success and "fall of more than 50%" in failure_text(result)
    assert current_dump() == current and Path(current.path).exists()
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        assert con.execute("SELECT DISTINCT dump_sha256 FROM products").fetchall() == [
            (current.sha256,)
        ]


def test_messy_but_valid_dump_is_ingested_with_counts(graph, sample_lines):
    header = sample_lines[0]
    lines = [header + "\tnew_column"]
    for i, line in enumerate(sample_lines[1:]):
        if i == 5:
            line = set_field(line, header, "nova_group", "9")
        lines.append(line + "\tx")
    lines.append(set_field(sample_lines[1], header, "last_modified_t", "1999999999") + "\tx")
    lines.append(sample_lines[2] + "\tx\tone\ttoo many")
    graph["mp"].setenv(
        "NOVA_DUMP_URL", str(write_dump(graph["root"] / "messy.tsv.gz", lines, gz=True))
    )
    try:
        result, _ = run_graph(graph["instance"], ["off_dump", "products", "test_split"])
    finally:
        graph["mp"].delenv("NOVA_DUMP_URL")
    assert result.success, failure_text(result)
    event = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "products"
    )
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert metadata["dagster/row_count"] == 1000
    assert metadata["skipped_lines"] == 1
    assert metadata["duplicate_rows"] == 1
    assert metadata["invalid_nova_groups"] == (
        1 if set_field(sample_lines[6], header, "nova_group", "") else 0
    )
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dumps").fetchone()[0] == 2
    assert SAMPLE_DUMP.exists()


def test_offs_parquet_export_is_a_dump_like_the_tsv(graph, tmp_path):
    """The sample in the export's schema goes through the same assets and gives the products
    the sample's TSV gives (only the dump differs)."""
    parquet = tmp_path / "food.parquet"
    write_parquet(SAMPLE_DUMP, parquet)
    tables = []
    # The sample is taken back on purpose: earlier tests of the module left a newer dump.
    for dump, go_back in ((SAMPLE_DUMP, True), (parquet, False)):
        graph["mp"].setenv("NOVA_DUMP_URL", str(dump))
        config = {"ops": {"products": {"config": {"go_back": go_back, "max_shrink": 1.0}}}}
        try:
            result, _ = run_graph(
                graph["instance"], ["off_dump", "products", "test_split"], run_config=config
            )
        finally:
            graph["mp"].delenv("NOVA_DUMP_URL")
        assert result.success, failure_text(result)
        with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
            tables.append(con.execute(TABLE).fetchone())
    assert current_dump().path.endswith(".parquet")
    assert tables[0] == tables[1] and tables[0][0] == 1000
