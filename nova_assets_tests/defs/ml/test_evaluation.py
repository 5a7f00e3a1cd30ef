"""`evaluation_report` materialized for real on the embedded sample: every section of the
report, in the JSON, the Markdown file, the Dagster metadata and the MLflow run."""

import json
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterInstance
from mlflow import MlflowClient

from nova_assets.definitions import defs
from nova_assets.lib.nova_rules import marker_group
from nova_assets.lib.paths import data_paths
from nova_assets.lib.registry import MODEL_NAME
from nova_assets_tests.defs.graph import OUR_CODE, failure_text

# Two candidates and one setting each: the report is what is under test, not the model search.
FAST_MODEL = {"candidates": ["reference_bernoulli_nb", "marker_logistic_regression"], "C": [1.0]}
SECTIONS = (
    "### Models compared",
    "### Per class (model)",
    "### Confusion matrix",
    "### Accuracy by country",
    "### Accuracy by number of tags",
    "### What weighs most for each group, beside OFF's markers",
    "### Misclassified test products",
)


def materialize(instance: DagsterInstance, selection: list[str] | None = None):
    """Run the graph (or `selection`) with the fast model config; also return our deprecations."""
    job = defs().resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in selection] if selection else None
    run_config = (
        {"ops": {"nova_model": {"config": FAST_MODEL}}}
        if selection is None or "nova_model" in selection
        else {}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, asset_selection=keys, run_config=run_config
        )
    ours = [
        f"{w.filename}:{w.lineno} {w.message}"
        for w in caught
        if issubclass(w.category, DeprecationWarning | FutureWarning)
        and w.filename.startswith(OUR_CODE)
    ]
    assert result.success, failure_text(result)
    assert ours == []
    event = next(
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == "evaluation_report"
    )
    report = json.loads((data_paths().reports / "evaluation.json").read_text())
    return report, event.materialization.metadata


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sample materialized once (v1 becomes champion), then a second model v2 evaluated
    against that champion."""
    root = tmp_path_factory.mktemp("evaluation")
    # Loading a model points MLflow (and MLFLOW_TRACKING_URI) at this module's store;
    # conftest's module-scoped guard, set up before this fixture, puts it back afterwards.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVA_DATA_DIR", str(root / "data"))
        for name in ("MLFLOW_TRACKING_URI", "NOVA_DUMP_URL", "NOVA_INCOMING_DIR"):
            mp.delenv(name, raising=False)
        with DagsterInstance.ephemeral() as instance:
            first = materialize(instance)
            first_md = (data_paths().reports / "evaluation.md").read_text()
            second = materialize(instance, ["nova_model", "evaluation_report"])
            yield {"first": first, "first_md": first_md, "second": second}


def test_intervals_hold_the_point_estimates(runs):
    report, _ = runs["first"]
    assert report["bootstrap"]["resamples"] == 1000 and report["bootstrap"]["level"] == 0.95
    assert report["bootstrap"]["rows"] == report["test_rows"]
    for key in ("model", "reference", "majority"):
        m = report[key]
        for metric in ("accuracy", "macro_f1"):
            low, high = m["ci"][metric]
            assert 0 <= low <= m[metric] <= high <= 1, (key, metric)
        for g, c in m["per_class"].items():
            interval = m["ci"]["per_class"][g]
            if c["support"] == 0:
                assert interval is None
            else:
                assert interval["f1"][0] <= c["f1"] <= interval["f1"][1], (key, g)
    assert set(report["bootstrap"]["differences"]) == {"reference", "majority"}
    assert report["bootstrap"]["differences"]["majority"]["accuracy"]["value"] == pytest.approx(
        report["model"]["accuracy"] - report["majority"]["accuracy"]
    )


def test_accuracy_by_country_and_by_tag_count(runs):
    report, _ = runs["first"]
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        us = con.execute(
            "SELECT count(*) FROM products JOIN test_split USING (code) WHERE split = 'test' "
            "AND nova_group IS NOT NULL AND list_contains(countries_tags, 'en:united-states')"
        ).fetchone()[0]
    countries = report["by_country"]["rows"]
    assert countries[0]["country"] == "en:united-states" and countries[0]["rows"] == us
    assert [r["country"] for r in countries[-2:]] == ["other", "none"]
    assert len(countries) <= report["by_country"]["top"] + 2
    sizes = [r["rows"] for r in countries[:-2]]
    assert sizes == sorted(sizes, reverse=True)
    buckets = report["by_tag_count"]["rows"]
    assert [b["bucket"] for b in buckets] == ["0–4", "5–9", "10–19", "20–39", "40+"]
    assert sum(b["rows"] for b in buckets) == report["test_rows"]
    hits = sum(b["rows"] * b["accuracy"]["model"] for b in buckets if b["rows"])
    assert hits / report["test_rows"] == pytest.approx(report["model"]["accuracy"])
    for row in countries + buckets:
        for value in row["accuracy"].values():
            assert value is None or 0 <= value <= 1


def test_top_features_beside_off_markers(runs):
    report, _ = runs["first"]
    top = report["top_features"]
    assert top["k"] == 10
    for g, entry in top["groups"].items():
        assert entry["predicted"] and 0 < len(entry["features"]) <= 10
        for f in entry["features"]:
            assert f["marker_group"] == marker_group(f["family"], f["tag"]) and f["weight"] > 0
        assert entry["markers"] == sum(f["marker_group"] == int(g) for f in entry["features"])
    # On the sample the model has learnt OFF's rule: its group-4 evidence is OFF's markers.
    assert top["groups"]["4"]["markers"] >= 5


def test_misclassified_examples(runs):
    report, _ = runs["first"]
    mistakes = report["misclassified"]
    matrix = report["model"]["confusion_matrix"]
    assert mistakes["total"] == sum(sum(row) for row in matrix) - sum(
        matrix[i][i] for i in range(4)
    )
    examples = mistakes["examples"]
    assert len(examples) == min(8, mistakes["total"])
    with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
        for e in examples:
            assert e["true"] != e["predicted"] and 0 < e["probability"] <= 1
            truth = con.execute(
                "SELECT nova_group, split FROM products JOIN test_split USING (code) WHERE code = ?",
                [e["code"]],
            ).fetchone()
            assert truth == (e["true"], "test")
            assert set(e["tags"]) == {"ingredients", "additives", "categories"}


def test_markdown_in_metadata_file_and_mlflow(runs):
    report, metadata = runs["first"]
    markdown = metadata["report"].value
    for section in SECTIONS:
        assert section in markdown and section in runs["first_md"], section
    assert "data:image/png;base64," in markdown and "| model v1 |" in markdown
    assert "![confusion matrix](evaluation.png)" in runs["first_md"]
    assert "| en:united-states |" in markdown
    assert "known markers of group 4" in markdown
    assert metadata["misclassified"].value == report["misclassified"]["total"]
    assert metadata["macro_f1_ci"].value.count("–") == 1
    client = MlflowClient(tracking_uri=data_paths().mlflow_tracking_uri)
    run_id = client.get_model_version(MODEL_NAME, "1").run_id
    artifacts = {Path(a.path).name for a in client.list_artifacts(run_id, "evaluation")}
    assert artifacts == {"evaluation.json", "evaluation.md", "evaluation.png"}
    logged = json.loads(
        Path(client.download_artifacts(run_id, "evaluation/evaluation.json")).read_text()
    )
    assert logged["top_features"] == report["top_features"]
    metrics = client.get_run(run_id).data.metrics
    assert (
        metrics["test_macro_f1_ci_low"]
        <= metrics["test_macro_f1"]
        <= metrics["test_macro_f1_ci_high"]
    )


def test_a_new_model_is_compared_with_the_champion(runs):
    report, metadata = runs["second"]
    assert report["model"]["version"] == "2" and report["champion"]["version"] == "1"
    low, high = report["champion"]["ci"]["macro_f1"]
    assert low <= report["champion"]["macro_f1"] <= high
    diff = report["bootstrap"]["differences"]["champion"]
    assert diff["macro_f1"]["value"] == pytest.approx(
        report["model"]["macro_f1"] - report["champion"]["macro_f1"]
    )
    assert "| champion v1 |" in metadata["report"].value
    assert "model v2 − champion v1: macro-F1" in metadata["report"].value
