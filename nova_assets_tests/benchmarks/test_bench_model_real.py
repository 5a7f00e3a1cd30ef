"""bench_model_real's bounds on `confident`: the most thresholds could cover on the products
themselves, and what thresholds fitted on the other sources do on each source."""

import numpy as np

from nova_assets_tests.benchmarks.scripts import load_script


def test_thresholds_of_other_sources_can_miss_the_target_the_ceiling_reaches() -> None:
    bench = load_script("bench_model_real")
    probability = np.tile(np.linspace(0.0, 0.999, 100), 2)
    source = np.repeat(["shop a", "shop b"], 100)
    # Shop a's answers are right above 0.5, shop b's only above 0.9: a threshold fitted on
    # shop a accepts many of shop b's wrong answers.
    right = np.where(source == "shop a", probability > 0.5, probability > 0.9)
    answers = np.full(200, 4)
    labels = np.where(right, 4, 3)
    bounds = bench.confidence_bounds(
        {
            "labels": labels,
            "model": answers,
            "probability": probability,
            "state": np.zeros(200, dtype=int),
            "source": source,
        }
    )
    assert bounds["ceiling_precision"] >= 0.95
    assert 0.05 < bounds["ceiling_share"] < 0.5
    assert bounds["other_sources_precision"] < 0.5
    assert bounds["other_sources_share"] > bounds["ceiling_share"]
