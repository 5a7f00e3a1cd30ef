"""The evaluation: models on the fixed test split as it is and with evidence hidden the way
OFF's blank products lack it, beside OFF's own rules, the reference and the majority baseline.

Every slice keeps the test products that still carry some evidence once it is hidden, so all
models answer the same rows; a slice's figures are then scored with `metrics` and bootstrapped
with `intervals`. The mix weighs each slice like the unlabelled products of the dump.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sklearn.pipeline import Pipeline

from nova_assets.lib.evaluation import breakdowns, intervals
from nova_assets.lib.ml import metrics
from nova_assets.lib.ml.calibration import PRECISION_TARGET
from nova_assets.lib.ml.classifiers import NovaClassifier, predict
from nova_assets.lib.ml.evidence import SLICES, STATES, evidence_labels, slice_rows
from nova_assets.lib.ml.feature_matrix import (
    FAMILIES,
    ProductMatrix,
    labelled_rows_sql,
    product_matrix,
)
from nova_assets.lib.ml.markers import rules_prediction
from nova_assets.lib.ml.reasons import reason_names, reasons


@dataclass(frozen=True)
class Answers:
    """One model's answers on one slice."""

    groups: np.ndarray
    probability: np.ndarray
    confident: np.ndarray


@dataclass(frozen=True)
class SliceRun:
    """A slice's test products (in the first contender's vocabulary) and every model's answers."""

    rows: ProductMatrix
    answers: dict[str, Answers]


KEPT_RUNS = ("as_is", "no_ingredients")
"""The slices whose rows and answers the report reads again (breakdowns, misclassified
examples): every other slice's copy of the test products is let go once scored, so the step
holds two copies at most, not one per slice."""


@dataclass(frozen=True)
class Contender:
    """A fitted model to evaluate, under the key it has in the report."""

    key: str
    name: str
    pipeline: Pipeline
    version: str | None = None


def in_vocabulary(
    con: duckdb.DuckDBPyConnection, pipeline: Pipeline, test: ProductMatrix
) -> ProductMatrix:
    """The test products in `pipeline`'s vocabulary (an older champion may have its own)."""
    features = list(pipeline.named_steps["products"].features)
    if features == test.features:
        return test
    matrix = product_matrix(con, labelled_rows_sql("test"), features)
    if not np.array_equal(matrix.codes, test.codes):
        raise RuntimeError(
            "the test rows in the warehouse differ from feature_matrix's: rematerialize it"
        )
    return matrix


def model_answers(pipeline: Pipeline, matrix: ProductMatrix) -> Answers:
    answer = predict(pipeline, matrix)
    return Answers(answer.groups, answer.probability, answer.confident)


def rules_answers(matrix: ProductMatrix) -> Answers:
    """OFF's rules on the evidence left: certain of themselves, so every answer is accepted."""
    groups = rules_prediction(matrix.features, matrix.X)
    n = len(groups)
    return Answers(groups, np.ones(n), np.ones(n, dtype=bool))


def majority_answers(n: int, group: int, share: float, target: float) -> Answers:
    """Always the training majority, as sure as its share of the training products."""
    return Answers(np.full(n, group, dtype=np.int8), np.full(n, share), np.full(n, share >= target))


def scores(y: np.ndarray, answers: Answers) -> dict[str, Any]:
    """The keys every model has in every slice of the report."""
    correct = answers.groups == y
    return {
        "rows": len(y),
        **metrics.classification_metrics(y, answers.groups),
        "ece": metrics.expected_calibration_error(answers.probability, correct),
        "at_thresholds": metrics.at_thresholds(y, answers.groups, answers.confident),
    }


def evaluate_slices(
    contenders: list[Contender],
    matrices: Mapping[str, ProductMatrix],
    majority: tuple[int, float],
    *,
    target: float = PRECISION_TARGET,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, SliceRun]]:
    """Per slice and model (contenders, `rules`, `majority`): scores with bootstrap intervals,
    and the model's reliability bins. `matrices` holds each contender's test products in its own
    vocabulary (by key); their rows must line up.

    Returns (slices, bootstrap settings, the rows and answers of the KEPT_RUNS slices).
    """
    for matrix in matrices.values():
        matrix.name_vectors()  # once, before the slices copy the matrices
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, SliceRun] = {}
    settings: dict[str, Any] = {}
    for name, spec in SLICES.items():
        # Contenders of one vocabulary share their test matrix, so one copy of its slice.
        sliced: dict[int, ProductMatrix] = {}
        masked: dict[str, ProductMatrix] = {}
        for key, matrix in matrices.items():
            if id(matrix) not in sliced:
                sliced[id(matrix)] = slice_rows(matrix, name)
            masked[key] = sliced[id(matrix)]
        rows = masked[contenders[0].key]
        y = rows.labels
        answers = {c.key: model_answers(c.pipeline, masked[c.key]) for c in contenders}
        answers["rules"] = rules_answers(rows)
        answers["majority"] = majority_answers(len(y), *majority, target)
        order = [contenders[0].key, "rules", *(c.key for c in contenders[1:]), "majority"]
        boot = intervals.bootstrap_intervals(y, {k: answers[k].groups for k in order})
        entry: dict[str, Any] = {"description": spec.description, "rows": len(y)}
        for key in order:
            entry[key] = scores(y, answers[key])
            entry[key]["ci"] = boot["models"][key] if boot else None
        entry["differences"] = boot["differences"] if boot else {}
        model = answers[contenders[0].key]
        entry["reliability"] = [
            vars(b) for b in metrics.reliability(model.probability, model.groups == y)
        ]
        results[name] = entry
        if name in KEPT_RUNS:
            runs[name] = SliceRun(rows, answers)
        if boot:
            settings = {k: boot[k] for k in ("method", "resamples", "seed", "level")}
    return results, settings, runs


def mix(results: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float], key: str) -> dict:
    """A model's accuracy and macro-F1 averaged over the slices with `weights`."""
    total = sum(weights.get(name, 0.0) for name in results) or 1.0
    return {
        metric: sum(weights.get(name, 0.0) * results[name][key][metric] for name in results) / total
        for metric in ("accuracy", "macro_f1")
    }


def test_products(con: duckdb.DuckDBPyConnection, codes: np.ndarray) -> dict[str, np.ndarray]:
    """For the test rows (in `codes` order): their tag counts and (row, country) pairs."""
    con.register("eval_codes", pa.table({"row_id": np.arange(len(codes)), "code": codes}))
    try:
        counts = " + ".join(f"len(coalesce(p.{f}_tags, []))" for f in FAMILIES)
        tag_counts = con.execute(
            f"SELECT {counts} AS n FROM eval_codes c LEFT JOIN products p USING (code) "
            "ORDER BY c.row_id"
        ).fetchnumpy()["n"]
        pairs = con.execute(
            "SELECT row_id, country FROM ("
            "  SELECT c.row_id, unnest(p.countries_tags) AS country"
            "  FROM eval_codes c JOIN products p USING (code))"
            "WHERE country IS NOT NULL AND country <> ''"
        ).fetchnumpy()
    finally:
        con.unregister("eval_codes")
    return {
        "tag_counts": np.asarray(tag_counts, dtype=np.int64),
        "country_rows": np.asarray(pairs["row_id"], dtype=np.int64),
        "countries": np.asarray(pairs["country"], dtype=object),
    }


def misclassified(
    con: duckdb.DuckDBPyConnection,
    rows: ProductMatrix,
    answers: Answers,
    classifier: NovaClassifier,
    k: int = breakdowns.MISCLASSIFIED,
) -> dict[str, Any]:
    """A few mistakes with the product's name, tags and what pushed the model's answer."""
    picked = breakdowns.pick_misclassified(rows.labels, answers.groups, answers.probability, k)
    total = int(np.sum(rows.labels != answers.groups))
    if len(picked) == 0:
        return {"total": total, "rows": len(rows), "examples": []}
    codes = [str(rows.codes[r]) for r in picked]
    found = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT code, ingredients_tags, additives_tags, categories_tags "
            "FROM products WHERE list_contains(?, code)",
            [codes],
        ).fetchall()
    }
    offsets, cols = reasons(classifier, rows.take(picked), answers.groups[picked])
    names = reason_names(classifier)
    examples = []
    for i, (row, code) in enumerate(zip(picked, codes, strict=True)):
        tags = found.get(code, ([], [], []))
        examples.append(
            {
                "code": code,
                "product_name": rows.names[row] or None,
                "evidence": evidence_labels(rows.take([row]))[0],
                "true": int(rows.labels[row]),
                "predicted": int(answers.groups[row]),
                "probability": float(answers.probability[row]),
                "reasons": [names[c] for c in cols[offsets[i] : offsets[i + 1]]],
                "tags": {
                    f: breakdowns.shorten_tags(t) for f, t in zip(FAMILIES, tags, strict=True)
                },
                "tag_counts": {f: len(t or []) for f, t in zip(FAMILIES, tags, strict=True)},
            }
        )
    return {"total": total, "rows": len(rows), "examples": examples}


def build_report(
    contenders: list[Contender],
    matrices: Mapping[str, ProductMatrix],
    majority: tuple[int, float],
    weights: Mapping[str, float],
    con: duckdb.DuckDBPyConnection,
) -> dict[str, Any]:
    """The whole report as JSON-ready data: the slices and the mix, then, for the model, where
    it is right and where not. `con` reads the test products' countries and tags."""
    model = contenders[0]
    classifier: NovaClassifier = model.pipeline.named_steps["classifier"]
    target = classifier.precision_target_
    slices, settings, runs = evaluate_slices(contenders, matrices, majority, target=target)
    keys = [model.key, "rules", *(c.key for c in contenders[1:]), "majority"]
    names = {c.key: c.name for c in contenders}
    names["rules"] = "OFF's rules on the evidence left (markers, no guard)"
    names["majority"] = f"majority (always {majority[0]})"
    report: dict[str, Any] = {
        "test_rows": len(matrices[model.key]),
        "precision_target": target,
        "weights": dict(weights),
        "slices": slices,
        "bootstrap": settings,
        "thresholds": {
            state: dict(zip(map(str, metrics.GROUPS), map(float, row), strict=True))
            for state, row in zip(STATES, classifier.thresholds_, strict=True)
        },
        "group_1_floor": dict(zip(STATES, map(float, classifier.group_1_floor_), strict=True)),
    }
    for key in keys:
        report[key] = {"name": names[key], **mix(slices, weights, key)}
        version = next((c.version for c in contenders if c.key == key), None)
        if version is not None:
            report[key]["version"] = version
    as_is = runs["as_is"]
    correct = {k: as_is.answers[k].groups == as_is.rows.labels for k in (model.key, "rules")}
    products = test_products(con, as_is.rows.codes)
    report["by_country"] = {
        "top": breakdowns.TOP_COUNTRIES,
        "rows": breakdowns.accuracy_by_country(
            products["country_rows"], products["countries"], correct, breakdowns.TOP_COUNTRIES
        ),
    }
    report["by_tag_count"] = {
        "edges": list(breakdowns.TAG_COUNT_EDGES),
        "rows": breakdowns.accuracy_by_bucket(products["tag_counts"], correct),
    }
    report["top_features"] = {
        state: breakdowns.top_features(classifier, state)
        for state in ("complete", "no_ingredients")
        if classifier.expert(state) is not None
    }
    report["misclassified"] = {
        name: misclassified(con, runs[name].rows, runs[name].answers[model.key], classifier)
        for name in KEPT_RUNS
    }
    return report
