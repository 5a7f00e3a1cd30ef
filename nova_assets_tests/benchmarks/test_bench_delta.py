"""The delta benchmark applies a generated day of changes both ways and they agree."""

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
    assert report["modified"] + report["new"] == round(report["products"] * 0.02)
    assert report["new"] == round((report["modified"] + report["new"]) * 0.2) > 0
    delta, full = report["methods"]["delta"], report["methods"]["full"]
    assert delta["products_written"] == report["modified"] + report["new"]
    assert full["products_written"] == report["products"] + report["new"]
    assert 0 < delta["predictions_written"] < full["predictions_written"]
    assert report["same_products"] and report["same_predictions"]
    for result in (delta, full):
        assert result["peak_rss_mb"] >= result["model_loaded_rss_mb"] > 0
    assert "| delta |" in out and "| full |" in out
