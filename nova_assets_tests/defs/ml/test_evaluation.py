"""`evaluation_report` materialized for real on the embedded sample: every slice and section of
the report, in the JSON, the Markdown file, the Dagster metadata and the MLflow run."""

import json
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster import DagsterInstance
from mlflow import MlflowClient

from nova_assets.definitions import defs
from nova_assets.lib.ml.evidence import SLICES
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, client_for
from nova_assets.lib.paths import data_paths
from nova_assets.lib.warehouse.nova_rules import marker_group
from nova_assets_tests.defs.graph import FAST_MODEL, OUR_CODE, failure_text

SECTIONS = (
    "### The mix",
    "### Slices",
    "### Confident answers",
    "### Reliability",
    "### Per class (model, as is)",
    "### Confusion matrix",
    "### Accuracy by country (as is)",
    "### Accuracy by number of tags (as is)",
    "### What weighs most for each group (`complete` products)",
    "### What weighs most for each group (`no_ingredients` products)",
    "### Misclassified test products (`as_is`)",
    "### Misclassified test products (`no_ingredients`)",
)
MODELS = ("model", "rules", "reference", "majority")


def run(instance: DagsterInstance, selection: list[str] | None = None, model: dict = FAST_MODEL):
    """Run the graph (or `selection`) with the fast model config; it succeeds, without our
    deprecations."""
    job = defs().resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in selection] if selection else None
    run_config = (
        {"ops": {"nova_model": {"config": model}}}
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
    return result


def metadata_of(result, asset: str) -> dict:
    return next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.path[-1] == asset
    )


def materialize(
    instance: DagsterInstance, selection: list[str] | None = None, model: dict = FAST_MODEL
):
    """The report and `evaluation_report`'s metadata of a run (see `run`)."""
    result = run(instance, selection, model)
    report = json.loads((data_paths().reports / "evaluation.json").read_text())
    return report, metadata_of(result, "evaluation_report")


def report_files() -> dict[str, bytes]:
    reports = data_paths().reports
    return {str(f.relative_to(reports)): f.read_bytes() for f in reports.rglob("*") if f.is_file()}


def rerun(instance: DagsterInstance) -> dict:
    """`evaluation_report` and `champion_model` again on what is there: the report files
    before and after, the report's status and the champion's reason as logged."""
    before = report_files()
    result = run(instance, ["evaluation_report", "champion_model"])
    champion = metadata_of(result, "champion_model")
    logged = [
        e.message
        for e in instance.all_logs(result.run_id)
        if e.step_key == "champion_model" and e.message.startswith(("promoted: ", "kept: "))
    ]
    return {
        "before": before,
        "after": report_files(),
        "status": metadata_of(result, "evaluation_report")["status"].value,
        "reason": champion["reason"].value,
        "action": champion["action"].value,
        "logged": logged,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sample materialized once (v1 becomes champion), then a second model v2 (the same
    settings would make none) evaluated against that champion."""
    root = tmp_path_factory.mktemp("evaluation")
    # Loading a model points MLflow (and MLFLOW_TRACKING_URI) at this module's store;
    # conftest's module-scoped guard, set up before this fixture, puts it back afterwards.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NOVA_DATA_DIR", str(root / "data"))
        for name in ("MLFLOW_TRACKING_URI", "NOVA_DUMP_URL", "NOVA_INCOMING_DIR"):
            mp.delenv(name, raising=False)
        with DagsterInstance.ephemeral() as instance:
            result = run(instance)
            first = (
                json.loads((data_paths().reports / "evaluation.json").read_text()),
                metadata_of(result, "evaluation_report"),
            )
            first_champion = metadata_of(result, "champion_model")
            first_md = (data_paths().reports / "evaluation.md").read_text()
            first_rerun = rerun(instance)
            # Another setting that converges to the same model: a second version, tied.
            second = materialize(
                instance, ["nova_model", "evaluation_report"], {**FAST_MODEL, "max_iter": 5000}
            )
            tied = rerun(instance)
            # v2 made champion as a promotion would: the next rerun must keep its report.
            uri = data_paths().mlflow_tracking_uri
            client_for(uri).set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
            promoted_rerun = rerun(instance)
            yield {
                "first": first,
                "first_md": first_md,
                "first_champion": first_champion,
                "first_rerun": first_rerun,
                "second": second,
                "tied": tied,
                "promoted_rerun": promoted_rerun,
            }


def test_every_slice_has_every_model_with_the_keys_of_today(runs):
    report, _ = runs["first"]
    assert list(report["slices"]) == list(SLICES)
    for name, entry in report["slices"].items():
        assert 0 < entry["rows"] <= report["test_rows"]
        for key in MODELS:
            m = entry[key]
            assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ci", "ece"} <= set(m)
            assert sum(map(sum, m["confusion_matrix"])) == entry["rows"] == m["rows"]
            for metric in ("accuracy", "macro_f1"):
                low, high = m["ci"][metric]
                assert 0 <= low <= m[metric] <= high <= 1, (name, key, metric)
            for g, c in m["per_class"].items():
                interval = m["ci"]["per_class"][g]
                if c["support"] == 0:
                    assert interval is None
                else:
                    assert interval["f1"][0] <= c["f1"] <= interval["f1"][1], (name, key, g)
            at = m["at_thresholds"]
            assert 0 <= at["coverage"] <= 1
            assert at["precision"] is None or 0 <= at["precision"] <= 1
        assert set(entry["differences"]) == {"rules", "reference", "majority"}
    # The rules are sure of every answer; hidden ingredients leave them (almost) only group 1.
    assert report["slices"]["as_is"]["rules"]["at_thresholds"]["coverage"] == 1.0
    assert report["slices"]["name_only"]["rules"]["per_class"]["1"]["recall"] == 1.0


def test_the_mix_weighs_slices_like_the_unlabelled_products(runs):
    report, _ = runs["first"]
    weights = report["weights"]
    assert weights["as_is"] == weights["no_additives"] == 0
    # The sample's 155 blank products with evidence: 55 with nutrients and no tag (53 of them
    # named), 18 name only, 37 categories and name, 24 partly unknown ingredients with
    # categories, 21 ingredients without categories.
    assert weights["name_nutrients"] == pytest.approx(55 / 155)
    assert weights["name_only"] == pytest.approx(18 / 155)
    assert weights["no_ingredients"] == pytest.approx(37 / 155)
    assert weights["half_ingredients"] == pytest.approx(24 / 155)
    assert weights["no_categories"] == pytest.approx(21 / 155)
    for key in MODELS:
        mixed = sum(weights[n] * e[key]["macro_f1"] for n, e in report["slices"].items())
        assert report[key]["macro_f1"] == pytest.approx(mixed)
    assert report["model"]["macro_f1"] > report["rules"]["macro_f1"]


def test_the_model_is_never_below_offs_rules_on_the_evidence_left(runs):
    """On every slice of the sample's real test products, whatever the slice hides."""
    report, _ = runs["first"]
    for name, entry in report["slices"].items():
        assert entry["model"]["macro_f1"] >= entry["rules"]["macro_f1"], name


def test_thresholds_and_reliability(runs):
    report, _ = runs["first"]
    assert report["precision_target"] == 0.95
    assert set(report["thresholds"]) == {
        "complete",
        "no_categories",
        "partial",
        "no_ingredients",
        "nutrients",
        "name_only",
    }
    for entry in report["slices"].values():
        bins = entry["reliability"]
        assert sum(b["rows"] for b in bins) == entry["rows"]
        assert all(b["low"] <= b["confidence"] <= b["high"] for b in bins)


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
    sizes = [r["rows"] for r in countries[:-2]]
    assert sizes == sorted(sizes, reverse=True)
    buckets = report["by_tag_count"]["rows"]
    assert [b["bucket"] for b in buckets] == ["0–4", "5–9", "10–19", "20–39", "40+"]
    assert sum(b["rows"] for b in buckets) == report["test_rows"]
    hits = sum(b["rows"] * b["accuracy"]["model"] for b in buckets if b["rows"])
    as_is = report["slices"]["as_is"]["model"]
    assert hits / report["test_rows"] == pytest.approx(as_is["accuracy"])
    assert set(buckets[0]["accuracy"]) == {"model", "rules"}


def test_top_features_beside_off_markers(runs):
    report, _ = runs["first"]
    top = report["top_features"]
    assert set(top) == {"complete", "no_ingredients"}
    for state, entry in top.items():
        assert entry["k"] == 10 and entry["state"] == state
        for g, group in entry["groups"].items():
            for f in group["features"]:
                assert f["marker_group"] == marker_group(f["family"], f["tag"]) and f["weight"] > 0
            assert group["markers"] == sum(f["marker_group"] == int(g) for f in group["features"])
    # With the ingredients, the model has learnt OFF's rule: its group-4 evidence is markers.
    assert top["complete"]["groups"]["4"]["markers"] >= 5
    # Without them, it can only read categories (and names, which have no tag).
    assert all(
        f["family"] == "categories"
        for g in top["no_ingredients"]["groups"].values()
        for f in g["features"]
    )


def test_misclassified_examples(runs):
    report, _ = runs["first"]
    for name, mistakes in report["misclassified"].items():
        matrix = report["slices"][name]["model"]["confusion_matrix"]
        assert mistakes["total"] == sum(map(sum, matrix)) - sum(matrix[i][i] for i in range(4))
        examples = mistakes["examples"]
        assert len(examples) == min(8, mistakes["total"])
        with duckdb.connect(str(data_paths().warehouse), read_only=True) as con:
            for e in examples:
                assert e["true"] != e["predicted"] and 0 < e["probability"] <= 1
                truth = con.execute(
                    "SELECT nova_group, split FROM products JOIN test_split USING (code) "
                    "WHERE code = ?",
                    [e["code"]],
                ).fetchone()
                assert truth == (e["true"], "test")
                assert set(e["tags"]) == {"ingredients", "additives", "categories"}
                if name == "no_ingredients":
                    assert "ingredients" not in e["evidence"]


def test_markdown_in_metadata_file_and_mlflow(runs):
    report, metadata = runs["first"]
    markdown = metadata["report"].value
    for section in SECTIONS:
        assert section in markdown and section in runs["first_md"], section
    assert markdown.count("data:image/png;base64,") == 2 and "| model v1 |" in markdown
    assert "![confusion matrix](evaluation.png)" in runs["first_md"]
    assert "| en:united-states |" in markdown
    assert "known markers of group 4" in markdown
    assert metadata["as_is_macro_f1_ci"].value.count("–") == 1
    assert metadata["rules_macro_f1"].value == round(report["rules"]["macro_f1"], 4)  # as read
    client = MlflowClient(tracking_uri=data_paths().mlflow_tracking_uri)
    run_id = client.get_model_version(MODEL_NAME, "1").run_id
    artifacts = {Path(a.path).name for a in client.list_artifacts(run_id, "evaluation")}
    assert artifacts == {"evaluation.json", "evaluation.md", "evaluation.png", "reliability.png"}
    logged = json.loads(
        Path(client.download_artifacts(run_id, "evaluation/evaluation.json")).read_text()
    )
    assert logged["top_features"] == report["top_features"]
    metrics = client.get_run(run_id).data.metrics
    assert metrics["test_macro_f1"] == pytest.approx(report["model"]["macro_f1"])
    assert metrics["test_macro_f1_name_only"] == pytest.approx(
        report["slices"]["name_only"]["model"]["macro_f1"]
    )
    assert metrics["rules_test_macro_f1"] == pytest.approx(report["rules"]["macro_f1"])


def test_a_new_model_is_compared_with_the_champion(runs):
    report, metadata = runs["second"]
    assert report["model"]["version"] == "2" and report["champion"]["version"] == "1"
    for entry in report["slices"].values():
        champion = entry["champion"]
        low, high = champion["ci"]["macro_f1"]
        assert low <= champion["macro_f1"] <= high
        diff = entry["differences"]["champion"]
        assert diff["macro_f1"]["value"] == pytest.approx(
            entry["model"]["macro_f1"] - champion["macro_f1"]
        )
    assert "| champion v1 |" in metadata["report"].value
    assert "champion v1 +0.000" in metadata["report"].value  # the same data and settings


def test_an_unchanged_rerun_rewrites_no_report_and_says_nothing_happened(runs):
    first = runs["first_rerun"]
    assert first["status"].startswith("unchanged")
    assert first["after"] == first["before"] and "evaluation.json" in first["after"]
    assert (first["action"], first["reason"]) == (
        "kept",
        "v1 stays champion: nothing new to compare",
    )
    assert first["logged"] == ["kept: v1 stays champion: nothing new to compare"]


def test_the_first_model_is_promoted_as_the_first(runs):
    champion = runs["first_champion"]
    assert champion["action"].value == "promoted"
    assert champion["reason"].value == "v1 is the first model to pass its checks"


def test_a_tied_challenger_leaves_the_champion_and_says_so(runs):
    tied = runs["tied"]
    assert tied["status"].startswith("unchanged")  # evaluated beside v1 in the run before
    assert tied["after"] == tied["before"]
    assert tied["action"] == "kept"
    assert tied["reason"].startswith("v2 does not beat champion v1 (mix macro-F1 ")
    assert tied["reason"].endswith("; v1 stays champion")


def test_a_rerun_after_a_promotion_keeps_the_report_and_its_champion_row(runs):
    rerun = runs["promoted_rerun"]
    assert rerun["status"].startswith("unchanged")
    assert rerun["after"] == rerun["before"]
    report = json.loads(rerun["after"]["evaluation.json"])
    assert report["model"]["version"] == "2" and report["champion"]["version"] == "1"
    assert b"| champion v1 |" in rerun["after"]["evaluation.md"]
    assert (rerun["action"], rerun["reason"]) == (
        "kept",
        "v2 stays champion: nothing new to compare",
    )
