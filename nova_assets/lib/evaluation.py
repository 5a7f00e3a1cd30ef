"""Metrics on the fixed test split, and the report a person reads: Markdown, JSON and a picture."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.pipeline import Pipeline

from nova_assets.lib.features import split_feature
from nova_assets.lib.models import tag_weights
from nova_assets.lib.nova_rules import marker_group

GROUPS = (1, 2, 3, 4)
RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
TOP_COUNTRIES = 10
TAG_COUNT_EDGES = (0, 5, 10, 20, 40)
TOP_FEATURES = 10
MISCLASSIFIED = 8
FEW_ROWS = 20  # below this many test products, a group's bootstrap interval says little


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 over the four groups, per-class precision/recall/F1/support, confusion."""
    labels = list(GROUPS)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            str(g): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, g in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def majority_class(y_train: np.ndarray) -> int:
    """The training set's most frequent group: the baseline every model must beat."""
    values, counts = np.unique(y_train, return_counts=True)
    return int(values[np.argmax(counts)])


def confusion_png(matrix: list[list[int]], title: str) -> bytes:
    """The confusion matrix as a PNG (rows: true group, columns: predicted group)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(matrix)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(GROUPS)), [str(g) for g in GROUPS])
    ax.set_yticks(range(len(GROUPS)), [str(g) for g in GROUPS])
    ax.set_xlabel("predicted NOVA group")
    ax.set_ylabel("true NOVA group")
    ax.set_title(title)
    top = data.max() or 1
    for (i, j), value in np.ndenumerate(data):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > top / 2 else "black",
        )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# --- Bootstrap -------------------------------------------------------------------------------


def _group_index(y: np.ndarray) -> np.ndarray:
    """Groups 1..4 as indices 0..3 (anything else is a bug upstream, so say so)."""
    y = np.asarray(y, dtype=np.int64)
    if y.size and (y.min() < GROUPS[0] or y.max() > GROUPS[-1]):
        raise ValueError(f"NOVA groups must be 1..4, got {sorted(set(y.tolist()) - set(GROUPS))}")
    return y - GROUPS[0]


def scores_from_confusion(counts: np.ndarray, undefined: float = 0.0) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and per-class precision/recall/F1 from confusion counts.

    `counts[..., true, predicted]` may carry any leading axes (one per bootstrap resample), so
    a thousand resamples cost a few array operations. A per-class ratio with a zero denominator
    is `undefined`; macro-F1 counts it as 0 and averages the four groups, as
    `classification_metrics` (scikit-learn's `zero_division=0`) does, so both give the same
    figure on the same rows.
    """
    counts = np.asarray(counts, dtype=np.float64)
    tp = np.diagonal(counts, axis1=-2, axis2=-1)
    true = counts.sum(axis=-1)
    predicted = counts.sum(axis=-2)
    rows = true.sum(axis=-1)

    def ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        return np.where(den > 0, num / np.maximum(den, 1), empty)

    f1 = ratio(2 * tp, true + predicted, 0.0)
    return {
        "accuracy": ratio(tp.sum(axis=-1), rows, 0.0),
        "macro_f1": f1.mean(axis=-1),
        "precision": ratio(tp, predicted, undefined),
        "recall": ratio(tp, true, undefined),
        "f1": ratio(2 * tp, true + predicted, undefined),
    }


def _marginal(counts: np.ndarray, j: int) -> np.ndarray:
    """From joint counts [resample, true, model 0, model 1, …], model j's confusion matrices."""
    others = tuple(2 + k for k in range(counts.ndim - 2) if k != j)
    return counts.sum(axis=others) if others else counts


def bootstrap_intervals(
    y_true: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, Any] | None:
    """Percentile bootstrap intervals for every model's metrics, and for the differences
    between the first model and each other one, from the same resamples (paired).

    Resampling n rows with replacement only matters through how many of them land in each
    (true, predicted by each model) cell, and those counts are exactly Multinomial(n, cell
    shares). So one multinomial draw per resample replaces n index draws: the same intervals,
    in milliseconds whatever the number of test rows. None when there is no row to resample.
    """
    y_true = _group_index(y_true)
    n = len(y_true)
    if n == 0:
        return None
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples}, {level}")
    names = list(predictions)
    if not 1 <= len(names) <= 4:
        raise ValueError("bootstrap_intervals compares one to four models")
    cells = y_true.copy()
    for name in names:
        predicted = _group_index(predictions[name])
        if len(predicted) != n:
            raise ValueError(f"{name}: {len(predicted)} predictions for {n} rows")
        cells = cells * len(GROUPS) + predicted
    shape = (len(GROUPS),) * (len(names) + 1)
    observed = np.bincount(cells, minlength=len(GROUPS) ** len(shape)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, observed / n, size=resamples).reshape(resamples, *shape)
    tails = [100 * (1 - level) / 2, 100 * (1 + level) / 2]

    def interval(values: np.ndarray) -> list[float] | None:
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return None
        low, high = np.percentile(values, tails)
        return [float(low), float(high)]

    support = np.bincount(y_true, minlength=len(GROUPS))
    scores: dict[str, dict[str, np.ndarray]] = {}
    models: dict[str, Any] = {}
    for j, name in enumerate(names):
        # Per class, only the resamples where the ratio is defined (the class was drawn, or
        # predicted) say something about it.
        s = scores_from_confusion(_marginal(draws, j), undefined=np.nan)
        scores[name] = s
        models[name] = {
            "accuracy": interval(s["accuracy"]),
            "macro_f1": interval(s["macro_f1"]),
            "per_class": {
                str(g): None
                if support[i] == 0
                else {m: interval(s[m][:, i]) for m in ("precision", "recall", "f1")}
                for i, g in enumerate(GROUPS)
            },
        }
    first = names[0]
    point = {
        name: scores_from_confusion(_marginal(observed.reshape(1, *shape), j))
        for j, name in enumerate(names)
    }
    differences = {}
    for name in names[1:]:
        differences[name] = {
            metric: {
                "value": float((point[first][metric] - point[name][metric])[0]),
                "interval": interval(scores[first][metric] - scores[name][metric]),
            }
            for metric in ("accuracy", "macro_f1")
        }
        differences[name]["better_share"] = float(
            np.mean(scores[first]["macro_f1"] > scores[name]["macro_f1"])
        )
    return {
        "method": "percentile bootstrap over test rows (multinomial cell counts)",
        "resamples": resamples,
        "seed": seed,
        "level": level,
        "rows": n,
        "models": models,
        "differences": differences,
    }


# --- Breakdowns ------------------------------------------------------------------------------


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """`(0, 5, 10)` → `0–4`, `5–9`, `10+`."""
    labels = [f"{lo}–{hi - 1}" if hi - 1 > lo else str(lo) for lo, hi in pairwise(edges)]
    return [*labels, f"{edges[-1]}+"]


def _accuracies(
    rows: np.ndarray, index: np.ndarray, correct: Mapping[str, np.ndarray], size: int
) -> tuple[np.ndarray, dict[str, list[float | None]]]:
    """Rows and accuracy per bucket, for rows `rows` falling in buckets `index`."""
    counts = np.bincount(index, minlength=size)
    accuracy = {}
    for name, ok in correct.items():
        hits = np.bincount(index, weights=np.asarray(ok, dtype=np.float64)[rows], minlength=size)
        accuracy[name] = [float(h / c) if c else None for h, c in zip(hits, counts, strict=True)]
    return counts, accuracy


def accuracy_by_bucket(
    values: np.ndarray,
    correct: Mapping[str, np.ndarray],
    edges: Sequence[int] = TAG_COUNT_EDGES,
) -> list[dict[str, Any]]:
    """Rows and each model's accuracy per bucket of `values` (bucket i: edges[i] ≤ v < edges[i+1]).

    Every bucket is listed, an empty one with accuracy None, so the table keeps its shape.
    """
    values = np.asarray(values)
    index = np.searchsorted(np.asarray(edges), values, side="right") - 1
    if index.size and index.min() < 0:
        raise ValueError(f"a value is below the first edge {edges[0]}")
    counts, accuracy = _accuracies(np.arange(len(values)), index, correct, len(edges))
    return [
        {
            "bucket": label,
            "rows": int(counts[i]),
            "accuracy": {name: acc[i] for name, acc in accuracy.items()},
        }
        for i, label in enumerate(bucket_labels(edges))
    ]


def accuracy_by_country(
    rows: np.ndarray,
    countries: np.ndarray,
    correct: Mapping[str, np.ndarray],
    top: int = TOP_COUNTRIES,
) -> list[dict[str, Any]]:
    """Rows and each model's accuracy for the `top` countries with most test products, then
    "other" (products in some other country) and "none" (products without a country).

    Countries come as (row, country) pairs, as DuckDB unnests them; a product in several
    countries counts in each, a pair listed twice once.
    """
    n = len(next(iter(correct.values())))
    rows = np.asarray(rows, dtype=np.int64)
    countries = np.asarray(countries, dtype=str) if len(countries) else np.array([], dtype=str)
    keep = countries != ""
    rows, countries = rows[keep], countries[keep]
    names, country_index = np.unique(countries, return_inverse=True)
    pair = np.unique(country_index.astype(np.int64) * n + rows)
    country_index, rows = pair // n, pair % n
    per_country = np.bincount(country_index, minlength=len(names))
    order = np.lexsort((names, -per_country))[:top]  # most products first, then by name
    chosen = np.full(len(names), -1)
    chosen[order] = np.arange(len(order))
    in_top = chosen[country_index] >= 0
    counts, accuracy = _accuracies(rows[in_top], chosen[country_index[in_top]], correct, len(order))
    result = [
        {
            "country": str(names[c]),
            "rows": int(counts[i]),
            "accuracy": {name: acc[i] for name, acc in accuracy.items()},
        }
        for i, c in enumerate(order)
    ]
    other = np.unique(rows[~in_top])
    none = np.setdiff1d(np.arange(n), rows)
    for label, members in (("other", other), ("none", none)):
        counts, accuracy = _accuracies(members, np.zeros(len(members), np.int64), correct, 1)
        result.append(
            {
                "country": label,
                "rows": int(counts[0]),
                "accuracy": {name: acc[0] for name, acc in accuracy.items()},
            }
        )
    return result


# --- What the model learnt, beside OFF's markers ---------------------------------------------


def _weight_kind(pipeline: Pipeline) -> str:
    classifier = pipeline.named_steps["classifier"]
    if hasattr(classifier, "coef_"):
        return "coefficient"
    if hasattr(classifier, "feature_log_prob_"):
        return "log-likelihood ratio against the mean of the groups"
    return "importance (a tree's is the same for every group)"


def top_features(pipeline: Pipeline, k: int = TOP_FEATURES) -> dict[str, Any]:
    """Per group, the `k` tags with the largest positive weight towards it, each beside OFF's
    marker group for that tag, and how many of them are OFF markers of that very group.

    The weights are `tag_weights`', so a marker column the model appends is already folded
    into the tags that set it. Ties go to the earlier vocabulary column, for a stable report.
    """
    classes, weights = tag_weights(pipeline)
    features = list(pipeline.named_steps["tags"].features)
    groups: dict[str, Any] = {}
    for g in GROUPS:
        hits = np.flatnonzero(classes == g)
        if len(hits) == 0:
            groups[str(g)] = {"predicted": False, "features": [], "markers": 0, "other_markers": 0}
            continue
        w = weights[hits[0]]
        order = np.lexsort((np.arange(len(w)), -w))
        order = order[w[order] > 0][:k]
        entries = []
        for col in order:
            family, tag = split_feature(features[col])
            entries.append(
                {
                    "family": family,
                    "tag": tag,
                    "weight": float(w[col]),
                    "marker_group": marker_group(family, tag),
                }
            )
        groups[str(g)] = {
            "predicted": True,
            "features": entries,
            "markers": sum(e["marker_group"] == g for e in entries),
            "other_markers": sum(e["marker_group"] not in (None, g) for e in entries),
        }
    return {"k": k, "weight": _weight_kind(pipeline), "groups": groups}


# --- Mistakes to look at ---------------------------------------------------------------------


def pick_misclassified(
    y_true: np.ndarray, y_pred: np.ndarray, probability: np.ndarray, k: int = MISCLASSIFIED
) -> np.ndarray:
    """Row indices of up to `k` mistakes, taken in turn from each true group (so every group
    with a mistake shows), the most confident mistake of a group first, ties by row order."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    queues = []
    for g in GROUPS:
        rows = wrong[y_true[wrong] == g]
        queues.append(rows[np.lexsort((rows, -np.asarray(probability)[rows]))].tolist())
    picked: list[int] = []
    for turn in range(k):
        for queue in queues:
            if turn < len(queue) and len(picked) < k:
                picked.append(queue[turn])
    return np.array(picked, dtype=np.int64)


def shorten_tags(tags: Sequence[str] | None, limit: int = 8) -> str:
    """A tag list for a report line: the first `limit`, then how many more."""
    tags = [t for t in (tags or []) if t]
    if not tags:
        return "—"
    shown = ", ".join(tags[:limit])
    return shown + (f", … (+{len(tags) - limit})" if len(tags) > limit else "")


# --- Markdown --------------------------------------------------------------------------------


def _escape(text: Any) -> str:
    """Text safe inside a Markdown table cell or list item."""
    text = " ".join(str(text).split())
    for ch in "\\|*_`[]<>#":
        text = text.replace(ch, "\\" + ch)
    return text


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_interval(interval: Sequence[float] | None, digits: int = 3) -> str:
    """`[0.91, 0.96]` → `0.910–0.960`; `—` where there is no interval."""
    return "—" if not interval else f"{interval[0]:.{digits}f}–{interval[1]:.{digits}f}"


def _signed(interval: Sequence[float]) -> str:
    return f"{interval[0]:+.3f} to {interval[1]:+.3f}"


def _level(report: dict[str, Any]) -> str:
    return f"{(report.get('bootstrap') or {}).get('level', LEVEL):.0%} CI"


def _comparison(report: dict[str, Any], models: list[tuple[str, dict[str, Any]]]) -> list[str]:
    level = _level(report)
    lines = [
        f"| model | accuracy | {level} | macro-F1 | {level} | F1 g1 | F1 g2 | F1 g3 | F1 g4 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, m in models:
        ci = m.get("ci") or {}
        f1 = " | ".join(f"{m['per_class'][str(g)]['f1']:.3f}" for g in GROUPS)
        lines.append(
            f"| {m.get('name', key)} | {m['accuracy']:.4f} | {format_interval(ci.get('accuracy'), 4)} | "
            f"{m['macro_f1']:.4f} | {format_interval(ci.get('macro_f1'), 4)} | {f1} |"
        )
    bootstrap = report.get("bootstrap")
    if bootstrap:
        lines += [
            "",
            f"Intervals: {bootstrap['level']:.0%} percentile bootstrap, {bootstrap['resamples']} "
            f"resamples of the {bootstrap['rows']} test rows (seed {bootstrap['seed']}).",
        ]
        for key, diff in bootstrap.get("differences", {}).items():
            other = report.get(key)
            if not other:
                continue
            macro = diff["macro_f1"]
            lines.append(
                f"- {report['model'].get('name', 'model')} − {other.get('name', key)}: macro-F1 "
                f"{macro['value']:+.4f} ({_signed(macro['interval'])}), accuracy "
                f"{diff['accuracy']['value']:+.4f} ({_signed(diff['accuracy']['interval'])}); "
                f"higher macro-F1 in {diff['better_share']:.0%} of resamples"
            )
    return lines


def _per_class(report: dict[str, Any]) -> list[str]:
    model = report["model"]
    intervals = (model.get("ci") or {}).get("per_class", {})
    lines = [
        f"| group | support | precision | recall | F1 | F1 {_level(report)} |",
        "|---|---|---|---|---|---|",
    ]
    absent = []
    for g in GROUPS:
        c = model["per_class"][str(g)]
        if c["support"] == 0:
            predicted = sum(row[g - 1] for row in model["confusion_matrix"])
            absent.append(f"group {g} (predicted {predicted} time{'s' * (predicted != 1)})")
            lines.append(f"| {g} | 0 | — | — | — | absent from the test rows |")
            continue
        ci = intervals.get(str(g)) or {}
        lines.append(
            f"| {g} | {c['support']} | {c['precision']:.3f} ({format_interval(ci.get('precision'))}) | "
            f"{c['recall']:.3f} ({format_interval(ci.get('recall'))}) | {c['f1']:.3f} | "
            f"{format_interval(ci.get('f1'))} |"
        )
    lines += ["", f"Precision and recall are followed by their {_level(report)}."]
    few = [str(g) for g in GROUPS if 0 < model["per_class"][str(g)]["support"] < FEW_ROWS]
    if few:
        lines.append(
            f"Group{'s' * (len(few) > 1)} {', '.join(few)} {'have' if len(few) > 1 else 'has'} "
            f"fewer than {FEW_ROWS} test products: {'their' if len(few) > 1 else 'its'} "
            "intervals say little."
        )
    if absent:
        lines.append(
            f"No test product is in {', '.join(absent)}: its metrics are undefined and count as "
            "0 in macro-F1."
        )
    return lines


def _breakdown(title: str, key: str, rows: list[dict[str, Any]], report: dict) -> list[str]:
    names = list(rows[0]["accuracy"]) if rows else []
    header = [report[n].get("name", n) if n == "model" else n for n in names]
    lines = [
        f"| {title} | test products | " + " | ".join(f"accuracy {h}" for h in header) + " |",
        "|---" * (2 + len(names)) + "|",
    ]
    for row in rows:
        label = row[key]
        label = {"other": "other countries", "none": "no country"}.get(label, label)
        cells = " | ".join(_fmt(row["accuracy"][n]) for n in names)
        lines.append(f"| {_escape(label)} | {row['rows']} | {cells} |")
    return lines


def _top_features(top: dict[str, Any]) -> list[str]:
    lines = [
        f"The {top['k']} tags with the largest weight towards each group ({top['weight']}), "
        "beside the NOVA group OFF's own rules give the tag (blank: not a marker).",
    ]
    for g in GROUPS:
        entry = top["groups"][str(g)]
        lines.append("")
        if not entry["predicted"]:
            lines.append(f"**Group {g}**: the model never predicts it (no training product).")
            continue
        n = len(entry["features"])
        if g == GROUPS[0]:
            summary = (
                f"OFF has no group-1 marker (group 1 is no marker at all); "
                f"{entry['other_markers']} of the top {n} are markers of another group"
            )
        else:
            summary = f"{entry['markers']} of the top {n} are known markers of group {g}"
            if entry["other_markers"]:
                summary += f", {entry['other_markers']} of another group"
        lines += [
            f"**Group {g}**: {summary}.",
            "",
            "| # | family | tag | weight | OFF marker |",
            "|---|---|---|---|---|",
        ]
        for rank, f in enumerate(entry["features"], 1):
            marker = "" if f["marker_group"] is None else f"group {f['marker_group']}"
            if f["marker_group"] == g:
                marker += " ✓"
            lines.append(
                f"| {rank} | {f['family']} | {_escape(f['tag'])} | {f['weight']:.3f} | {marker} |"
            )
    return lines


def _misclassified(mistakes: dict[str, Any], rows: int) -> list[str]:
    shown = len(mistakes["examples"])
    lines = [f"{mistakes['total']} of {rows} test products are misclassified."]
    if shown:
        lines[0] += (
            f" {shown} of them, taken in turn from each true group, most confident first "
            "(tags pushing towards the prediction, then the product's tags):"
        )
    lines.append("")
    for e in mistakes["examples"]:
        name = _escape(e["product_name"]) if e.get("product_name") else "(no name)"
        why = ", ".join(_escape(r) for r in e.get("reasons", [])) or "—"
        lines += [
            f"- **{_escape(e['code'])}** {name}: true **{e['true']}**, predicted "
            f"**{e['predicted']}** (p {e['probability']:.2f}); pushed by {why}",
            *(
                f"  - {family} ({e['tag_counts'][family]}): {_escape(e['tags'][family])}"
                for family in e["tags"]
            ),
        ]
    return lines


def report_markdown(report: dict[str, Any], png: bytes | None = None) -> str:
    """The report as Markdown; with `png`, the confusion matrix is embedded as a data URI.

    Sections the report lacks (older reports, tiny test sets) are left out, not left empty.
    """
    models = [
        (k, report[k]) for k in ("model", "reference", "majority", "champion") if report.get(k)
    ]
    lines = [
        f"## NOVA model v{report['model']['version']} on the fixed test split",
        "",
        f"{report['test_rows']} labelled test products; dump `{report['dump_sha256'][:12]}`.",
        "",
        "### Models compared",
        "",
        *_comparison(report, models),
        "",
        "### Per class (model)",
        "",
        *_per_class(report),
        "",
        "### Confusion matrix (rows true, columns predicted)",
        "",
        "| true \\ predicted | " + " | ".join(str(g) for g in GROUPS) + " |",
        "|---" * 5 + "|",
    ]
    for g, row in zip(GROUPS, report["model"]["confusion_matrix"], strict=True):
        lines.append(f"| {g} | " + " | ".join(str(v) for v in row) + " |")
    if png is not None:
        lines += [
            "",
            f"![confusion matrix](data:image/png;base64,{base64.b64encode(png).decode()})",
        ]
    if report.get("by_country"):
        by = report["by_country"]
        lines += [
            "",
            "### Accuracy by country",
            "",
            f"The {by['top']} countries with most test products; a product sold in several "
            "countries counts in each.",
            "",
            *_breakdown("country", "country", by["rows"], report),
        ]
    if report.get("by_tag_count"):
        lines += [
            "",
            "### Accuracy by number of tags",
            "",
            "Tags a product has in the three families (ingredients with their parents, "
            "additives, categories).",
            "",
            *_breakdown("tags", "bucket", report["by_tag_count"]["rows"], report),
        ]
    if report.get("top_features"):
        lines += [
            "",
            "### What weighs most for each group, beside OFF's markers",
            "",
            *_top_features(report["top_features"]),
        ]
    if report.get("misclassified") is not None:
        lines += ["", "### Misclassified test products", ""]
        lines += _misclassified(report["misclassified"], report["test_rows"])
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write evaluation.{json,md,png} atomically (each to a temp name, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    png = confusion_png(
        report["model"]["confusion_matrix"], f"NOVA model v{report['model']['version']}"
    )
    files = {
        "json": (directory / "evaluation.json", json.dumps(report, indent=2).encode()),
        "md": (
            directory / "evaluation.md",
            report_markdown(report)
            .replace(
                "### Confusion matrix",
                "![confusion matrix](evaluation.png)\n\n### Confusion matrix",
            )
            .encode(),
        ),
        "png": (directory / "evaluation.png", png),
    }
    for path, content in files.values():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)
    return {k: v[0] for k, v in files.items()}


def read_report(directory: Path) -> dict[str, Any]:
    path = directory / "evaluation.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no evaluation report at {path}: materialize evaluation_report first"
        )
    return json.loads(path.read_text())


def beats_majority(report: dict[str, Any]) -> bool:
    """The model must do better than always answering the training majority class."""
    model, majority = report["model"], report["majority"]
    return model["accuracy"] > majority["accuracy"] and model["macro_f1"] > majority["macro_f1"]


def promotion_decision(report: dict[str, Any]) -> tuple[bool, str]:
    """Whether the evaluated model should become champion, and why, from one report.

    The champion's score in the report was measured on the same test rows as the model's.
    """
    model = report["model"]
    champion = report.get("champion")
    if not beats_majority(report):
        return False, (
            f"v{model['version']} does not beat the majority baseline "
            f"(macro-F1 {model['macro_f1']:.4f} vs {report['majority']['macro_f1']:.4f})"
        )
    if champion is None:
        return True, f"v{model['version']} is the first model to pass its checks"
    if champion["version"] == model["version"]:
        return False, f"v{model['version']} is already the champion"
    if model["macro_f1"] > champion["macro_f1"]:
        return True, (
            f"v{model['version']} macro-F1 {model['macro_f1']:.4f} beats champion "
            f"v{champion['version']} {champion['macro_f1']:.4f} on the same {report['test_rows']} test rows"
        )
    return False, (
        f"v{model['version']} macro-F1 {model['macro_f1']:.4f} does not beat champion "
        f"v{champion['version']} {champion['macro_f1']:.4f}; champion kept"
    )
