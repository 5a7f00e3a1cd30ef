"""The pipeline benchmark's account of the evaluation: model beside OFF's rules, per slice."""

import json
from pathlib import Path

import pytest

from nova_assets_tests.benchmarks.scripts import load_script


def entry(macro_f1: float) -> dict:
    return {
        "macro_f1": macro_f1,
        "ece": 0.01,
        "at_thresholds": {"coverage": 0.9, "precision": 0.97},
    }


def test_the_evaluation_is_summarised_slice_by_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {
        "slices": {
            "as_is": {"model": entry(1.0), "rules": entry(1.0), "reference": entry(0.4)},
            "no_ingredients": {"model": entry(0.9), "rules": entry(0.3), "reference": entry(0.0)},
        },
        **{k: {"macro_f1": v} for k, v in {"model": 0.9, "rules": 0.3, "reference": 0.1}.items()},
    }
    path = tmp_path / "evaluation.json"
    path.write_text(json.dumps(report))
    bench = load_script("bench_pipeline")
    summary = bench.evaluation_summary(path)
    assert summary["no_ingredients"] == {
        "model": 0.9,
        "rules": 0.3,
        "reference": 0.0,
        "ece": 0.01,
        "coverage": 0.9,
        "precision": 0.97,
    }
    assert summary["mix"] == {"model": 0.9, "rules": 0.3, "reference": 0.1}
    bench.print_evaluation({"rows": 1000, "evaluation": summary})
    out = capsys.readouterr().out
    assert "no_ingredients   | 0.9000 | 0.3000 | 0.0000    | +0.6000" in out
    assert "mix              | 0.9000 | 0.3000 | 0.1000    | +0.6000" in out


def test_step_timings_are_read_from_dagsters_own_log_lines() -> None:
    bench = load_script("bench_pipeline")
    log = "\n".join(
        [
            'STEP_SUCCESS - Finished execution of step "off_dump" in 29ms.',
            'STEP_SUCCESS - Finished execution of step "products" in 4.25s.',
            'STEP_SUCCESS - Finished execution of step "nova_model" in 1m 3s.',
            'STEP_SUCCESS - Finished execution of step "products_products_row_count" in 46ms.',
        ]
    )
    steps = {name: bench.duration(taken) for name, taken in bench.STEP_TIME.findall(log)}
    assert steps == {
        "off_dump": 0.029,
        "products": 4.25,
        "nova_model": 63.0,
        "products_products_row_count": 0.046,
    }
    assert bench.duration("1h 2m 3s") == 3723.0
    assert bench.RATE.search("in 3 batches (5,608 rows/s). Results").group(1) == "5,608"
