import json

import numpy as np
import pytest
from scipy import sparse

from nova_assets.lib import evaluation as ev
from nova_assets.lib.models import fit_pipeline, tag_weights


def metrics(accuracy: float, macro_f1: float) -> dict:
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def test_metrics_by_hand():
    y_true = np.array([1, 1, 2, 3, 4, 4, 4, 4])
    y_pred = np.array([1, 4, 2, 3, 4, 4, 4, 3])
    m = ev.classification_metrics(y_true, y_pred)
    assert m["accuracy"] == 6 / 8
    assert m["per_class"]["1"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert m["per_class"]["3"]["precision"] == 0.5
    assert m["confusion_matrix"][0] == [1, 0, 0, 1]
    f1_4 = 2 * 0.75 * 0.75 / 1.5
    assert abs(m["macro_f1"] - (2 / 3 + 1 + 2 / 3 + f1_4) / 4) < 1e-12


def test_majority_class():
    assert ev.majority_class(np.array([4, 4, 3, 1, 4])) == 4


def report(model, champion=None, majority=(0.6, 0.2)):
    return {
        "test_rows": 100,
        "model": {"version": "3", **metrics(*model)},
        "majority": metrics(*majority),
        "champion": None
        if champion is None
        else {"version": champion[0], **metrics(*champion[1:])},
    }


def test_promotion_rules():
    assert ev.promotion_decision(report((0.9, 0.8)))[0] is True
    assert ev.promotion_decision(report((0.9, 0.8), ("2", 0.9, 0.7)))[0] is True
    promote, reason = ev.promotion_decision(report((0.9, 0.8), ("2", 0.9, 0.8)))
    assert promote is False and "champion kept" in reason
    assert ev.promotion_decision(report((0.9, 0.8), ("3", 0.9, 0.8)))[0] is False
    promote, reason = ev.promotion_decision(report((0.5, 0.8)))
    assert promote is False and "majority" in reason


def test_report_files(tmp_path):
    y = np.array([1, 2, 3, 4, 4])
    m = ev.classification_metrics(y, y)
    full = {
        "test_rows": 5,
        "dump_sha256": "ab" * 32,
        "model": {"version": "1", **m},
        "reference": m,
        "majority": ev.classification_metrics(y, np.full(5, 4)),
        "champion": None,
    }
    files = ev.write_report(full, tmp_path)
    assert json.loads(files["json"].read_text())["model"]["accuracy"] == 1.0
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "evaluation.png" in files["md"].read_text()
    assert "data:image/png;base64," in ev.report_markdown(full, files["png"].read_bytes())


# --- Bootstrap intervals ---------------------------------------------------------------------


def hand_made(copies: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 rows: truth, a good model (6 mistakes) and a worse one (12), repeated `copies` times."""
    y = np.array([1] * 6 + [2] * 2 + [3] * 8 + [4] * 24)
    good = y.copy()
    good[[0, 6, 8, 9, 20, 30]] = [4, 3, 4, 2, 3, 1]
    worse = good.copy()
    worse[[1, 2, 10, 11, 21, 31]] = [4, 4, 4, 4, 3, 3]
    return np.tile(y, copies), np.tile(good, copies), np.tile(worse, copies)


def width(interval: list[float]) -> float:
    return interval[1] - interval[0]


def test_bootstrap_intervals_hold_the_point_estimates():
    y, good, worse = hand_made()
    b = ev.bootstrap_intervals(y, {"model": good, "reference": worse})
    assert (b["resamples"], b["seed"], b["level"], b["rows"]) == (ev.RESAMPLES, 0, 0.95, 40)
    for name, predicted in (("model", good), ("reference", worse)):
        point = ev.classification_metrics(y, predicted)
        ci = b["models"][name]
        for metric in ("accuracy", "macro_f1"):
            low, high = ci[metric]
            assert 0 <= low <= point[metric] <= high <= 1, (name, metric)
            assert low < high
        for g in ev.GROUPS:
            for metric in ("precision", "recall", "f1"):
                low, high = ci["per_class"][str(g)][metric]
                assert low <= point["per_class"][str(g)][metric] <= high, (name, g, metric)
    diff = b["differences"]["reference"]
    assert diff["accuracy"]["value"] == pytest.approx(6 / 40)
    # Paired resamples: the worse model errs wherever the good one does, and on 6 rows more, so
    # it never wins; the two tie only in a resample that drew none of those 6 rows.
    assert diff["accuracy"]["interval"][0] > 0
    assert 0.99 < diff["better_share"] < 1
    assert set(b["differences"]) == {"reference"}


def test_bootstrap_is_deterministic_with_its_seed_and_narrows_with_more_rows():
    y, good, worse = hand_made()
    predictions = {"model": good, "reference": worse}
    first = ev.bootstrap_intervals(y, predictions)
    assert ev.bootstrap_intervals(y, predictions) == first
    assert ev.bootstrap_intervals(y, predictions, seed=1) != first
    y10, good10, worse10 = hand_made(copies=10)
    wider = first["models"]["model"]
    narrower = ev.bootstrap_intervals(y10, {"model": good10, "reference": worse10})["models"][
        "model"
    ]
    assert width(narrower["accuracy"]) < width(wider["accuracy"]) / 2
    assert width(narrower["macro_f1"]) < width(wider["macro_f1"]) / 2
    assert width(narrower["per_class"]["4"]["f1"]) < width(wider["per_class"]["4"]["f1"])
    level_80 = ev.bootstrap_intervals(y, predictions, level=0.8)["models"]["model"]
    assert width(level_80["accuracy"]) < width(wider["accuracy"])


def test_multinomial_bootstrap_matches_resampling_rows():
    """Drawing cell counts is the same experiment as drawing row indices."""
    y, good, _ = hand_made(copies=5)
    rows = np.random.default_rng(7).integers(0, len(y), size=(4000, len(y)))
    by_rows = np.percentile((y[rows] == good[rows]).mean(axis=1), [2.5, 97.5])
    by_cells = ev.bootstrap_intervals(y, {"model": good}, resamples=4000)["models"]["model"]
    assert np.allclose(by_cells["accuracy"], by_rows, atol=0.011)


def test_scores_from_confusion_agree_with_scikit_learn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.choice([1, 3, 4], size=30)  # group 2 never true
        predicted = rng.choice([1, 2, 3, 4], size=30)
        m = ev.classification_metrics(y, predicted)
        s = ev.scores_from_confusion(np.array(m["confusion_matrix"]))
        assert np.isclose(s["accuracy"], m["accuracy"]) and np.isclose(s["macro_f1"], m["macro_f1"])
        for i, g in enumerate(ev.GROUPS):
            for metric in ("precision", "recall", "f1"):
                assert np.isclose(s[metric][i], m["per_class"][str(g)][metric])


def test_bootstrap_on_tiny_test_sets():
    assert (
        ev.bootstrap_intervals(np.array([], dtype=int), {"model": np.array([], dtype=int)}) is None
    )
    one = ev.bootstrap_intervals(np.array([4]), {"model": np.array([4])})
    assert one["models"]["model"]["accuracy"] == [1.0, 1.0]
    y, predicted = np.array([4, 4, 3]), np.array([4, 3, 3])
    b = ev.bootstrap_intervals(y, {"model": predicted, "majority": np.full(3, 4)})
    per_class = b["models"]["model"]["per_class"]
    assert per_class["1"] is None and per_class["2"] is None  # absent from the test rows
    assert per_class["3"]["recall"] == [1.0, 1.0]
    low, high = b["models"]["model"]["accuracy"]
    assert low <= 2 / 3 <= high


def full_report(y: np.ndarray, predicted: np.ndarray) -> dict:
    """A report shaped as evaluation_report writes it, on hand-made predictions."""
    majority = np.full(len(y), 4)
    b = ev.bootstrap_intervals(y, {"model": predicted, "majority": majority})
    report = {
        "test_rows": len(y),
        "dump_sha256": "cd" * 32,
        "model": {"name": "model v2", "version": "2", **ev.classification_metrics(y, predicted)},
        "reference": None,
        "majority": {"name": "majority (always 4)", **ev.classification_metrics(y, majority)},
        "champion": None,
        "bootstrap": {k: v for k, v in b.items() if k != "models"},
    }
    for key in ("model", "majority"):
        report[key]["ci"] = b["models"][key]
    return report


def test_report_says_a_group_is_absent_and_keeps_its_shape():
    y, predicted = np.array([4, 4, 3, 1]), np.array([4, 3, 3, 2])
    markdown = ev.report_markdown(full_report(y, predicted))
    assert "| 2 | 0 | — | — | — | absent from the test rows |" in markdown
    assert "No test product is in group 2 (predicted 1 time)" in markdown
    assert "Groups 1, 3, 4 have fewer than 20 test products" in markdown
    assert "| model v2 | 0.5000 |" in markdown
    assert "model v2 − majority (always 4): macro-F1" in markdown
    # Sections the report does not carry are left out, not left empty.
    assert "### Accuracy by country" not in markdown and "### Misclassified" not in markdown


# --- Breakdowns ------------------------------------------------------------------------------


def test_accuracy_by_tag_count_buckets():
    tags = np.array([0, 4, 5, 9, 10, 19, 20, 100])
    model = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    reference = np.zeros(8, dtype=bool)
    rows = ev.accuracy_by_bucket(tags, {"model": model, "reference": reference}, (0, 5, 10, 20, 40))
    assert [r["bucket"] for r in rows] == ["0–4", "5–9", "10–19", "20–39", "40+"]
    assert [r["rows"] for r in rows] == [2, 2, 2, 1, 1]
    assert [r["accuracy"]["model"] for r in rows] == [0.5, 1.0, 0.0, 1.0, 1.0]
    assert rows[0]["accuracy"]["reference"] == 0.0
    empty = ev.accuracy_by_bucket(np.array([3]), {"model": np.array([True])}, (0, 5))
    assert empty[1] == {"bucket": "5+", "rows": 0, "accuracy": {"model": None}}
    assert ev.bucket_labels((0, 1, 3)) == ["0", "1–2", "3+"]


def test_accuracy_by_country():
    # Six products: 0 in fr and de, 1 in fr (listed twice), 2 in us, 3 in fr, 4 in it, 5 nowhere.
    pairs = [(0, "en:france"), (0, "en:germany"), (1, "en:france"), (1, "en:france"),
             (2, "en:united-states"), (3, "en:france"), (4, "en:italy"), (4, "")]  # fmt: skip
    rows = np.array([r for r, _ in pairs])
    countries = np.array([c for _, c in pairs], dtype=object)
    model = np.array([1, 1, 0, 0, 1, 1], dtype=bool)
    result = ev.accuracy_by_country(rows, countries, {"model": model}, top=2)
    table = {r["country"]: (r["rows"], r["accuracy"]["model"]) for r in result}
    assert [r["country"] for r in result] == ["en:france", "en:germany", "other", "none"]
    assert table == {
        "en:france": (3, 2 / 3),
        "en:germany": (1, 1.0),  # ties broken by name: germany before italy, united-states
        "other": (2, 0.5),
        "none": (1, 1.0),
    }


# --- Top features beside OFF's markers -------------------------------------------------------

FEATURES = [
    "additives:en:e621",
    "categories:en:honeys",
    "categories:en:juices",
    "ingredients:en:apple",
    "ingredients:en:flavouring",
    "ingredients:en:salt",
    "ingredients:en:water",
]
PRODUCTS = [
    (["ingredients:en:apple", "categories:en:juices"], 1),
    (["ingredients:en:apple", "ingredients:en:water"], 1),
    (["ingredients:en:water"], 1),
    (["categories:en:honeys"], 2),
    (["categories:en:honeys", "ingredients:en:water"], 2),
    (["ingredients:en:salt", "ingredients:en:water"], 3),
    (["ingredients:en:salt", "ingredients:en:apple"], 3),
    (["ingredients:en:salt"], 3),
    (["ingredients:en:flavouring", "additives:en:e621"], 4),
    (["ingredients:en:flavouring", "ingredients:en:water"], 4),
    (["additives:en:e621", "ingredients:en:salt"], 4),
    (["ingredients:en:flavouring", "categories:en:juices"], 4),
]


def tiny_matrix(products=PRODUCTS) -> tuple[sparse.csr_matrix, np.ndarray]:
    index = {f: i for i, f in enumerate(FEATURES)}
    rows = [i for i, (tags, _) in enumerate(products) for _ in tags]
    cols = [index[t] for tags, _ in products for t in tags]
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(products), len(FEATURES)))
    return X, np.array([g for _, g in products])


def test_top_features_count_off_markers():
    X, y = tiny_matrix()
    top = ev.top_features(fit_pipeline("logistic_regression", X, y, FEATURES), k=2)
    assert top["k"] == 2 and top["weight"] == "coefficient"
    groups = top["groups"]
    assert [(f["family"], f["tag"], f["marker_group"]) for f in groups["4"]["features"]] == [
        ("ingredients", "en:flavouring", 4),
        ("additives", "en:e621", 4),
    ]
    assert groups["4"]["markers"] == 2 and groups["4"]["other_markers"] == 0
    assert groups["3"]["features"][0]["tag"] == "en:salt" and groups["3"]["markers"] == 1
    assert groups["2"]["features"][0]["tag"] == "en:honeys" and groups["2"]["markers"] == 1
    assert groups["1"]["markers"] == 0 and groups["1"]["features"][0]["tag"] == "en:apple"
    for entry in groups.values():
        weights = [f["weight"] for f in entry["features"]]
        assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
    markdown = "\n".join(ev._top_features(top))
    assert "**Group 4**: 2 of the top 2 are known markers of group 4." in markdown
    assert "| 1 | ingredients | en:flavouring |" in markdown and "group 4 ✓ |" in markdown


def test_top_features_fold_marker_columns_and_handle_every_model_kind():
    X, y = tiny_matrix()
    pipeline = fit_pipeline("marker_logistic_regression", X, y, FEATURES)
    classes, weights = tag_weights(pipeline)
    top = ev.top_features(pipeline, k=3)
    flavouring = top["groups"]["4"]["features"][0]
    assert flavouring["tag"] == "en:flavouring"
    column = FEATURES.index("ingredients:en:flavouring")
    raw = pipeline.named_steps["classifier"].coef_[3, column]
    assert flavouring["weight"] == weights[3, column] > raw  # the marker columns' share added
    tree = ev.top_features(fit_pipeline("marker_decision_tree", X, y, FEATURES), k=3)
    assert tree["weight"].startswith("importance")
    assert len({tuple(f["tag"] for f in e["features"]) for e in tree["groups"].values()}) == 1
    nb = ev.top_features(fit_pipeline("reference_bernoulli_nb", X, y, FEATURES), k=3)
    assert all(f["family"] == "ingredients" for e in nb["groups"].values() for f in e["features"])
    # A group no training product has: the model never predicts it, and the report says so.
    X3, y3 = tiny_matrix([p for p in PRODUCTS if p[1] != 2])
    absent = ev.top_features(fit_pipeline("logistic_regression", X3, y3, FEATURES))
    assert absent["groups"]["2"] == {
        "predicted": False,
        "features": [],
        "markers": 0,
        "other_markers": 0,
    }
    assert "**Group 2**: the model never predicts it" in "\n".join(ev._top_features(absent))


# --- Misclassified examples ------------------------------------------------------------------


def test_pick_misclassified_spreads_over_true_groups():
    y = np.array([4, 4, 4, 4, 4, 3, 3, 1, 2, 4])
    predicted = np.array([3, 3, 3, 4, 1, 4, 4, 4, 2, 3])
    probability = np.array([0.6, 0.9, 0.6, 0.99, 0.7, 0.5, 0.8, 0.55, 0.9, 0.95])
    # Mistakes by true group: 1 → [7]; 3 → [6 (0.8), 5 (0.5)]; 4 → [9 (.95), 1 (.9), 4 (.7),
    # 0 (.6, earlier row), 2 (.6)]. In turn: 7, 6, 9, then 5, 1, then 4, 0, 2.
    assert ev.pick_misclassified(y, predicted, probability, k=8).tolist() == [
        7,
        6,
        9,
        5,
        1,
        4,
        0,
        2,
    ]
    assert ev.pick_misclassified(y, predicted, probability, k=4).tolist() == [7, 6, 9, 5]
    assert ev.pick_misclassified(y, y, probability).tolist() == []


def test_shorten_tags():
    assert ev.shorten_tags(["en:a", "en:b", "en:c"], limit=2) == "en:a, en:b, … (+1)"
    assert ev.shorten_tags(["en:a", "en:b"], limit=2) == "en:a, en:b"
    assert ev.shorten_tags(None) == ev.shorten_tags([]) == "—"


def test_markdown_lists_misclassified_products_with_escaped_names(tmp_path):
    y, predicted = np.array([4, 4, 3, 1]), np.array([4, 3, 3, 2])
    report = full_report(y, predicted)
    report["misclassified"] = {
        "total": 2,
        "examples": [
            {
                "code": "0001",
                "product_name": "Jam | *best*",
                "true": 4,
                "predicted": 3,
                "probability": 0.734,
                "reasons": ["ingredients:en:sugar"],
                "tags": {"ingredients": "en:sugar", "additives": "—", "categories": "en:jams"},
                "tag_counts": {"ingredients": 1, "additives": 0, "categories": 1},
            }
        ],
    }
    report["by_tag_count"] = {
        "edges": [0, 5],
        "rows": ev.accuracy_by_bucket(np.array([1, 7, 7, 3]), {"model": y == predicted}, (0, 5)),
    }
    files = ev.write_report(report, tmp_path)
    markdown = files["md"].read_text()
    assert "2 of 4 test products are misclassified." in markdown
    assert "- **0001** Jam \\| \\*best\\*: true **4**, predicted **3** (p 0.73)" in markdown
    assert "  - additives (0): —" in markdown
    assert "| 5+ | 2 | 0.500 |" in markdown
    assert "![confusion matrix](evaluation.png)" in markdown
    assert json.loads(files["json"].read_text())["misclassified"]["total"] == 2
