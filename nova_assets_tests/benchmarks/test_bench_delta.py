"""The delta benchmark applies a generated day of changes both ways and they agree; the classic
script and the JSONL ingest run in the same run."""

import json

import pytest

from nova_assets_tests.benchmarks.scripts import load_script


def test_the_delta_and_the_full_refresh_end_with_the_same_tables(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_script("bench_delta")
    argv = ["--rows", "3000", "--share", "0.02", "--threads", "1", "--workdir", str(tmp_path)]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(out.rstrip().splitlines()[-1].removeprefix("BENCH_JSON "))
    assert report["delta"].startswith("openfoodfacts_products_")
    assert report["modified"] + report["new"] == round(3000 * 0.02)
    assert report["new"] == round((report["modified"] + report["new"]) * 0.2) > 0
    methods = report["methods"]
    delta, full, classic = methods["delta"], methods["full"], methods["classic"]
    assert delta["products_written"] == report["modified"] + report["new"]
    assert full["products_written"] == report["products"] + report["new"]
    assert 0 < delta["predictions_written"] < full["predictions_written"]
    assert report["same_products"] and report["same_predictions"]
    for result in (delta, full):
        assert result["peak_rss_mb"] >= result["model_loaded_rss_mb"] > 0
    # The classic script keeps the products with ingredients, and predicts the blank ones.
    assert (
        0 < classic["predictions_written"] < classic["products_written"] <= full["products_written"]
    )
    for result in methods.values():
        assert result["process_seconds"] > result["seconds"] > 0 and result["peak_rss_mb"] > 0
    floor, ours = report["jsonl"]["jsonl_floor"], report["jsonl"]["jsonl_ours"]
    assert floor["lines"] == ours["lines"]  # every document, duplicated codes too
    assert ours["products"] == full["products_written"]
    for path in ("| delta |", "| full |", "| classic |", "| jsonl_floor |", "| jsonl_ours |"):
        assert path in out
