"""The report's Markdown, JSON and pictures, from a hand-made report of the evaluation's shape."""

import json

import numpy as np

from nova_assets.lib.evaluation import breakdowns, intervals
from nova_assets.lib.evaluation.evaluate import Answers, mix, scores
from nova_assets.lib.evaluation.report import report_markdown, write_report
from nova_assets.lib.ml.evidence import SLICES

Y = np.array([4, 4, 3, 1])
MODEL = np.array([4, 3, 3, 2])


def hand_made() -> dict:
    """Every slice the same four products; the model sure of itself, the rules certain."""
    answers = {
        "model": Answers(MODEL, np.array([0.9, 0.6, 0.8, 0.55]), np.array([1, 0, 1, 0], bool)),
        "rules": Answers(np.array([4, 4, 1, 1]), np.ones(4), np.ones(4, bool)),
        "reference": Answers(np.array([4, 4, 4, 4]), np.full(4, 0.7), np.zeros(4, bool)),
        "majority": Answers(np.full(4, 4), np.full(4, 0.67), np.zeros(4, bool)),
    }
    boot = intervals.bootstrap_intervals(Y, {k: a.groups for k, a in answers.items()})
    slices = {}
    for name, spec in SLICES.items():
        entry = {"description": spec.description, "rows": 4, "differences": boot["differences"]}
        for key, a in answers.items():
            entry[key] = {**scores(Y, a), "ci": boot["models"][key]}
        entry["reliability"] = [{"confidence": 0.9, "accuracy": 1.0, "rows": 1}]
        slices[name] = entry
    weights = {name: 1 / len(SLICES) for name in SLICES}
    names = {"model": "model v2", "rules": "OFF's rules", "reference": "reference",
             "majority": "majority (always 4)"}  # fmt: skip
    report = {
        "test_rows": 4,
        "dump_sha256": "cd" * 32,
        "precision_target": 0.95,
        "weights": weights,
        "slices": slices,
        "bootstrap": {"level": 0.95, "resamples": 1000, "seed": 0},
        "champion": None,
    }
    for key, name in names.items():
        report[key] = {"name": name, **mix(slices, weights, key)}
    report["model"]["version"] = "2"
    return report


def test_slices_and_the_mix_side_by_side():
    markdown = report_markdown(hand_made())
    assert "| model v2 | 0.3333 | 0.5000 |" in markdown  # the mix: macro-F1, accuracy
    assert "| **as_is** | model v2 | 4 | 0.500 |" in markdown
    assert "|  | OFF's rules | 4 | 0.750 |" in markdown
    assert markdown.count("| **") == len(SLICES)
    assert "- **no_ingredients**: ingredients and additives removed" in markdown
    assert "over OFF's rules -0." in markdown and "of resamples" in markdown
    # Confident answers: group 4 answered once and accepted, group 3 answered twice.
    assert "| as_is | 0 / 0, — | 0 / 1, — | 1 / 2, 1.000 | 1 / 1, 1.000 |" in markdown


def test_report_says_a_group_is_absent_and_keeps_its_shape():
    markdown = report_markdown(hand_made())
    assert "| 2 | 0 | — | — | — | absent from the test rows |" in markdown
    assert "No test product is in group 2 (predicted 1 time)" in markdown
    assert "Groups 1, 3, 4 have fewer than 20 test products" in markdown
    # Sections the report does not carry are left out, not left empty.
    assert "### Accuracy by country" not in markdown and "### Misclassified" not in markdown


def test_files_pictures_and_misclassified_products_with_escaped_names(tmp_path):
    report = hand_made()
    report["misclassified"] = {
        "no_ingredients": {
            "total": 2,
            "rows": 4,
            "examples": [
                {
                    "code": "0001",
                    "product_name": "Jam | *best*",
                    "evidence": ["categories", "name"],
                    "true": 4,
                    "predicted": 3,
                    "probability": 0.734,
                    "reasons": ["categories:en:jams", "product_name"],
                    "tags": {"ingredients": "—", "additives": "—", "categories": "en:jams"},
                    "tag_counts": {"ingredients": 0, "additives": 0, "categories": 1},
                }
            ],
        }
    }
    report["by_tag_count"] = {
        "edges": [0, 5],
        "rows": breakdowns.accuracy_by_bucket(
            np.array([1, 7, 7, 3]), {"model": Y == MODEL}, (0, 5)
        ),
    }
    files = write_report(report, tmp_path)
    markdown = files["md"].read_text()
    assert "2 of the 4 products of `no_ingredients` are misclassified." in markdown
    assert (
        "- **0001** Jam \\| \\*best\\*: true **4**, predicted **3** (p 0.73); evidence "
        "categories, name; pushed by categories:en:jams, product\\_name"
    ) in markdown
    assert "  - additives (0): —" in markdown
    assert "| 5+ | 2 | 0.500 |" in markdown
    assert "![confusion matrix](evaluation.png)" in markdown
    assert "![reliability diagram](reliability.png)" in markdown
    for key in ("png", "reliability"):
        assert files[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(files["json"].read_text())
    assert saved["slices"]["as_is"]["model"]["accuracy"] == 0.5
    assert set(saved["slices"]["name_only"]) >= {"model", "rules", "reference", "majority"}
    embedded = report_markdown(report, {k: files[k].read_bytes() for k in ("png", "reliability")})
    assert embedded.count("data:image/png;base64,") == 2
