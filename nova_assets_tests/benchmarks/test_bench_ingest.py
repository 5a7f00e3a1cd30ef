"""The ingest benchmark runs all three methods end to end and they agree on what they read."""

import json
from pathlib import Path
from types import ModuleType

import pytest

from nova_assets_tests.benchmarks.scripts import load_script

ROWS = 2000


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_ingest")


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    generator = load_script("generate_dump")
    path = tmp_path_factory.mktemp("bench") / "products.tsv.gz"
    return path, generator.generate_dump(ROWS, path, seed=11, gzip=True)


def test_three_methods_agree_and_report_json(
    bench: ModuleType, dump: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    path, stats = dump
    assert bench.main([str(path), "--threads", "1", "--memory-limit", "512MB"]) == 0
    out = capsys.readouterr().out
    json_lines = [line for line in out.splitlines() if line.startswith("BENCH_JSON ")]
    assert len(json_lines) == 1 and out.rstrip().endswith(json_lines[0])
    report = json.loads(json_lines[0].removeprefix("BENCH_JSON "))

    methods = report["methods"]
    assert set(methods) == {"ours", "floor", "reference"}
    ours, floor, reference = methods["ours"], methods["floor"], methods["reference"]
    good_lines = ROWS - stats["broken_lines"]
    assert floor["lines"] == ours["lines"] == reference["lines"] == good_lines
    assert ours["products"] == reference["products"] == good_lines - stats["duplicates"]
    assert floor["lines"] >= ours["products"]
    assert reference["details"]["bad_lines_skipped"] == stats["broken_lines"]

    assert report["gzipped"] and report["raw_bytes"] > report["bytes"] == path.stat().st_size
    for result in methods.values():
        assert result["seconds"] > 0 and result["peak_rss_mb"] > 0
        assert result["lines_per_s"] > 0 and result["mb_per_s"] > 0
        assert result["raw_mb_per_s"] > result["mb_per_s"]
    assert all(value > 0 for value in report["ratios"].values())
    assert "| ours |" in out and "ours/floor throughput" in out


def test_skip_pandas_leaves_out_the_reference(
    bench: ModuleType, dump: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = dump
    assert bench.main([str(path), "--threads", "1", "--skip-pandas"]) == 0
    line = capsys.readouterr().out.rstrip().splitlines()[-1]
    report = json.loads(line.removeprefix("BENCH_JSON "))
    assert set(report["methods"]) == {"ours", "floor"}
    assert report["ratios"]["ours_vs_reference_speedup"] is None
    assert report["ratios"]["ours_vs_floor_throughput"] > 0


def test_a_parquet_export_is_measured_against_its_own_floor(
    bench: ModuleType,
    dump: tuple[Path, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    generator = load_script("generate_dump")
    path, stats = dump
    parquet = tmp_path / "food.parquet"
    rows = generator.write_parquet(path, parquet)
    assert rows == ROWS - stats["broken_lines"]
    assert bench.main([str(parquet), "--threads", "1"]) == 0
    line = capsys.readouterr().out.rstrip().splitlines()[-1]
    report = json.loads(line.removeprefix("BENCH_JSON "))
    assert set(report["methods"]) == {"ours", "floor"}  # the pandas script reads TSV only
    ours, floor = report["methods"]["ours"], report["methods"]["floor"]
    assert floor["lines"] == ours["lines"] == rows
    assert ours["products"] == rows - stats["duplicates"]
    assert report["ratios"]["ours_vs_floor_throughput"] > 0


def test_a_jsonl_export_is_measured_against_a_bare_read_json(
    bench: ModuleType,
    dump: tuple[Path, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    generator = load_script("generate_dump")
    path, stats = dump
    jsonl = tmp_path / "products.jsonl.gz"
    rows = generator.write_jsonl(path, jsonl)
    assert bench.main([str(jsonl), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.rstrip().splitlines()[-1].removeprefix("BENCH_JSON "))
    assert set(report["methods"]) == {"ours", "floor"}
    ours, floor = report["methods"]["ours"], report["methods"]["floor"]
    assert floor["lines"] == ours["lines"] == rows
    assert ours["products"] == rows - stats["duplicates"]
    assert report["gzipped"] and ours["raw_mb_per_s"] > ours["mb_per_s"] > 0
    assert ours["peak_rss_mb"] > 0 and "| floor |" in out
