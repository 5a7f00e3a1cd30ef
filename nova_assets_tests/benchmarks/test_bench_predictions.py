"""The predictions benchmark scores the same products both ways and they agree."""

import json
from pathlib import Path

import pytest

from nova_assets_tests.benchmarks.scripts import load_script


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "products.tsv.gz"
    load_script("generate_dump").generate_dump(4000, path, seed=5, gzip=True)
    return path


def test_both_methods_score_the_same_products_alike(
    dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_script("bench_predictions")
    argv = [str(dump), "--kind", "evidence_logistic_regression", "--repeats", "2", "--threads", "1"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads(out.rstrip().splitlines()[-1].removeprefix("BENCH_JSON "))

    ours, reference = report["methods"]["ours"], report["methods"]["reference"]
    assert ours["rows"] == reference["rows"] > 0
    assert sum(ours["by_group"].values()) == ours["rows"]
    assert report["same_groups"] and ours["by_group"] == reference["by_group"]
    for result in (ours, reference):
        assert len(result["seconds"]) == 2 and result["best_seconds"] == min(result["seconds"])
        assert result["rows_per_s_best"] >= result["rows_per_s_median"] > 0
        assert result["peak_rss_mb"] > 0
    assert report["ours_vs_reference_speedup"] > 0
    assert "| ours |" in out and "ours/reference speedup" in out


def test_a_missing_dump_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_script("bench_predictions").main([str(tmp_path / "nope.tsv")])
    assert exit_info.value.code == 2
