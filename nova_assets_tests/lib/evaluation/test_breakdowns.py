import numpy as np
import pandas as pd

from nova_assets.lib.evaluation import breakdowns
from nova_assets.lib.evaluation.report import _top_features
from nova_assets.lib.ml.classifiers import NovaClassifier, fit_pipeline
from nova_assets.lib.ml.feature_matrix import ProductMatrix, split_feature
from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.ml.reasons import tag_weights


def report_markdown_of_top(top: dict) -> str:
    return "\n".join(_top_features(top))


def test_accuracy_by_tag_count_buckets():
    tags = np.array([0, 4, 5, 9, 10, 19, 20, 100])
    model = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=bool)
    reference = np.zeros(8, dtype=bool)
    rows = breakdowns.accuracy_by_bucket(
        tags, {"model": model, "reference": reference}, (0, 5, 10, 20, 40)
    )
    assert [r["bucket"] for r in rows] == ["0–4", "5–9", "10–19", "20–39", "40+"]
    assert [r["rows"] for r in rows] == [2, 2, 2, 1, 1]
    assert [r["accuracy"]["model"] for r in rows] == [0.5, 1.0, 0.0, 1.0, 1.0]
    assert rows[0]["accuracy"]["reference"] == 0.0
    empty = breakdowns.accuracy_by_bucket(np.array([3]), {"model": np.array([True])}, (0, 5))
    assert empty[1] == {"bucket": "5+", "rows": 0, "accuracy": {"model": None}}
    assert breakdowns.bucket_labels((0, 1, 3)) == ["0", "1–2", "3+"]


def test_accuracy_by_country():
    # Six products: 0 in fr and de, 1 in fr (listed twice), 2 in us, 3 in fr, 4 in it, 5 nowhere.
    pairs = [(0, "en:france"), (0, "en:germany"), (1, "en:france"), (1, "en:france"),
             (2, "en:united-states"), (3, "en:france"), (4, "en:italy"), (4, "")]  # fmt: skip
    rows = np.array([r for r, _ in pairs])
    countries = np.array([c for _, c in pairs], dtype=object)
    model = np.array([1, 1, 0, 0, 1, 1], dtype=bool)
    result = breakdowns.accuracy_by_country(rows, countries, {"model": model}, top=2)
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


def tiny_matrix(products=PRODUCTS) -> tuple[ProductMatrix, np.ndarray]:
    frame = pd.DataFrame(
        {
            f"{family}_tags": [
                [split_feature(t)[1] for t in tags if t.startswith(family + ":")]
                for tags, _ in products
            ]
            for family in ("ingredients", "additives", "categories")
        }
    )
    return ProductVectorizer(FEATURES).fit().transform(frame), np.array([g for _, g in products])


def fit(kind: str, products=PRODUCTS, **params) -> NovaClassifier:
    X, y = tiny_matrix(products)
    return fit_pipeline(kind, X, y, **params).named_steps["classifier"]


def test_top_features_count_off_markers():
    top = breakdowns.top_features(fit("logistic_regression"), k=2)
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
    markdown = report_markdown_of_top(top)
    assert "**Group 4**: 2 of the top 2 are known markers of group 4." in markdown
    assert "| 1 | ingredients | en:flavouring |" in markdown and "group 4 ✓ |" in markdown


def test_top_features_fold_marker_columns_and_handle_every_model_kind():
    classifier = fit("marker_logistic_regression")
    classes, weights = tag_weights(classifier)
    top = breakdowns.top_features(classifier, k=3)
    flavouring = top["groups"]["4"]["features"][0]
    assert flavouring["tag"] == "en:flavouring"
    column = classifier.used_features_.index("ingredients:en:flavouring")
    raw = classifier.experts_["all"].coef_[3, column]
    assert flavouring["weight"] == weights[3, column] > raw  # the marker columns' share added
    tree = breakdowns.top_features(fit("marker_decision_tree"), k=3)
    assert tree["weight"].startswith("importance")
    assert len({tuple(f["tag"] for f in e["features"]) for e in tree["groups"].values()}) == 1
    nb = breakdowns.top_features(fit("reference_bernoulli_nb"), k=3)
    assert all(f["family"] == "ingredients" for e in nb["groups"].values() for f in e["features"])
    # A group no training product has: the model never predicts it, and the report says so.
    absent = breakdowns.top_features(fit("logistic_regression", [p for p in PRODUCTS if p[1] != 2]))
    assert absent["groups"]["2"] == {
        "predicted": False,
        "features": [],
        "markers": 0,
        "other_markers": 0,
    }
    assert "**Group 2**: this expert never answers it" in report_markdown_of_top(absent)


def test_pick_misclassified_spreads_over_true_groups():
    y = np.array([4, 4, 4, 4, 4, 3, 3, 1, 2, 4])
    predicted = np.array([3, 3, 3, 4, 1, 4, 4, 4, 2, 3])
    probability = np.array([0.6, 0.9, 0.6, 0.99, 0.7, 0.5, 0.8, 0.55, 0.9, 0.95])
    # Mistakes by true group: 1 → [7]; 3 → [6 (0.8), 5 (0.5)]; 4 → [9 (.95), 1 (.9), 4 (.7),
    # 0 (.6, earlier row), 2 (.6)]. In turn: 7, 6, 9, then 5, 1, then 4, 0, 2.
    assert breakdowns.pick_misclassified(y, predicted, probability, k=8).tolist() == [
        7,
        6,
        9,
        5,
        1,
        4,
        0,
        2,
    ]
    assert breakdowns.pick_misclassified(y, predicted, probability, k=4).tolist() == [7, 6, 9, 5]
    assert breakdowns.pick_misclassified(y, y, probability).tolist() == []


def test_shorten_tags():
    assert breakdowns.shorten_tags(["en:a", "en:b", "en:c"], limit=2) == "en:a, en:b, … (+1)"
    assert breakdowns.shorten_tags(["en:a", "en:b"], limit=2) == "en:a, en:b"
    assert breakdowns.shorten_tags(None) == breakdowns.shorten_tags([]) == "—"
