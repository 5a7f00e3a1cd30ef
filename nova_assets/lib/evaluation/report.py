"""The evaluation report a person reads: Markdown, JSON and two pictures (the confusion matrix
on the test products as they are, and the model's reliability on every slice)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nova_assets.lib.evaluation.plots import confusion_png, reliability_png
from nova_assets.lib.evaluation.report_files import FILES
from nova_assets.lib.files import write_atomically
from nova_assets.lib.markdown import escape, interval, number, table
from nova_assets.lib.ml.evidence import SLICES
from nova_assets.lib.ml.metrics import GROUPS

FEW_ROWS = 20  # below this many test products, a group's bootstrap interval says little


def model_keys(report: dict[str, Any]) -> list[str]:
    """The models of the report, in table order."""
    return [k for k in ("model", "rules", "reference", "champion", "majority") if report.get(k)]


def _level(report: dict[str, Any]) -> str:
    return f"{(report.get('bootstrap') or {}).get('level', 0.95):.0%} CI"


def _f1_cell(scores: dict[str, Any], group: int) -> str:
    f1 = scores["per_class"][str(group)]
    if f1["support"] == 0 and not any(row[group - 1] for row in scores["confusion_matrix"]):
        return "—"
    ci = ((scores.get("ci") or {}).get("per_class") or {}).get(str(group)) or {}
    return f"{f1['f1']:.3f} ({interval(ci.get('f1'), 2)})"


def _mix(report: dict[str, Any]) -> list[str]:
    weights = report["weights"]
    used = ", ".join(f"{name} {w:.0%}" for name, w in weights.items() if w > 0)
    rows = [
        [escape(report[k]["name"]), f"{report[k]['macro_f1']:.4f}", f"{report[k]['accuracy']:.4f}"]
        for k in model_keys(report)
    ]
    return [
        "Each slice weighs as much as the unlabelled food products of the dump that lack evidence "
        f"that way: {used or 'no unlabelled product, so every slice alike'}. Model selection and "
        "the champion gate use this mix.",
        "",
        *table(["model", "mix macro-F1", "mix accuracy"], rows),
    ]


def _slices(report: dict[str, Any]) -> list[str]:
    header = [
        "slice",
        "model",
        "products",
        "accuracy",
        f"macro-F1 ({_level(report)})",
        *(f"F1 g{g}" for g in GROUPS),
        "ECE",
        "coverage",
        "precision at thresholds",
    ]
    rows = []
    for name, entry in report["slices"].items():
        for key in model_keys(report):
            s = entry.get(key)
            if s is None:
                continue
            ci = (s.get("ci") or {}).get("macro_f1")
            at = s["at_thresholds"]
            rows.append(
                [
                    f"**{name}**" if key == "model" else "",
                    escape(report[key]["name"]),
                    s["rows"],
                    f"{s['accuracy']:.3f}",
                    f"{s['macro_f1']:.3f} ({interval(ci, 2)})",
                    *(_f1_cell(s, g) for g in GROUPS),
                    number(s["ece"]),
                    number(at["coverage"], 2),
                    number(at["precision"]),
                ]
            )
    descriptions = [f"- **{name}**: {spec.description}" for name, spec in SLICES.items()]
    return [
        *descriptions,
        "",
        *table(header, rows),
        "",
        *_differences(report),
        "",
        "ECE: expected calibration error of the probability each model gives its answer (the "
        "rules are sure of every answer; the majority as sure as its share). Coverage: share of "
        "products whose answer clears its threshold; precision: how often those are right.",
    ]


def _differences(report: dict[str, Any]) -> list[str]:
    """The model's lead over each other model on each slice, from paired resamples."""
    lines = [
        f"The model's lead in macro-F1 ({_level(report)}, paired resamples of each slice):",
        "",
    ]
    for name, entry in report["slices"].items():
        leads = []
        for key, diff in (entry.get("differences") or {}).items():
            macro = diff["macro_f1"]
            bounds = f" ({signed(macro['interval'])})" if macro["interval"] else ""
            leads.append(
                f"{escape(report[key]['name'])} {macro['value']:+.3f}{bounds}, ahead in "
                f"{diff['better_share']:.0%} of resamples"
            )
        if leads:
            lines.append(f"- **{name}**: over " + "; ".join(leads))
    return lines


def _thresholds(report: dict[str, Any]) -> list[str]:
    target = report.get("precision_target", 0.95)
    header = ["slice", *(f"group {g}: accepted / answered, precision" for g in GROUPS)]
    rows = []
    for name, entry in report["slices"].items():
        per = entry["model"]["at_thresholds"]["per_class"]
        rows.append(
            [
                name,
                *(
                    f"{per[str(g)]['accepted']} / {per[str(g)]['answered']}, "
                    f"{number(per[str(g)]['precision'])}"
                    for g in GROUPS
                ),
            ]
        )
    return [
        f"Thresholds are chosen per evidence state and group on validation rows so that accepted "
        f"answers reach {target:.0%} precision; on the test slices:",
        "",
        *table(header, rows),
    ]


def _per_class(report: dict[str, Any]) -> list[str]:
    model = report["slices"]["as_is"]["model"]
    intervals = (model.get("ci") or {}).get("per_class", {})
    rows, absent = [], []
    for g in GROUPS:
        c = model["per_class"][str(g)]
        if c["support"] == 0:
            predicted = sum(row[g - 1] for row in model["confusion_matrix"])
            absent.append(f"group {g} (predicted {predicted} time{'s' * (predicted != 1)})")
            rows.append([g, 0, "—", "—", "—", "absent from the test rows"])
            continue
        ci = intervals.get(str(g)) or {}
        rows.append(
            [
                g,
                c["support"],
                f"{c['precision']:.3f} ({interval(ci.get('precision'))})",
                f"{c['recall']:.3f} ({interval(ci.get('recall'))})",
                f"{c['f1']:.3f}",
                interval(ci.get("f1")),
            ]
        )
    lines = [
        *table(["group", "support", "precision", "recall", "F1", f"F1 {_level(report)}"], rows),
        "",
        f"Precision and recall are followed by their {_level(report)}.",
    ]
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
    header = [title, "test products", *(f"accuracy {report[n]['name']}" for n in names)]
    labels = {"other": "other countries", "none": "no country"}
    body = [
        [
            escape(labels.get(row[key], row[key])),
            row["rows"],
            *(number(row["accuracy"][n]) for n in names),
        ]
        for row in rows
    ]
    return table(header, body)


def _top_features(top: dict[str, Any]) -> list[str]:
    lines = [
        f"The {top['k']} tags with the largest weight towards each group in the expert for "
        f"products in the `{top['state']}` state ({top['weight']}), beside the NOVA group OFF's "
        "own rules give the tag (blank: not a marker).",
    ]
    for g in GROUPS:
        entry = top["groups"][str(g)]
        lines.append("")
        if not entry["predicted"]:
            lines.append(f"**Group {g}**: this expert never answers it (no training product).")
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
        rows = []
        for rank, f in enumerate(entry["features"], 1):
            marker = "" if f["marker_group"] is None else f"group {f['marker_group']}"
            rows.append(
                [
                    rank,
                    f["family"],
                    escape(f["tag"]),
                    f"{f['weight']:.3f}",
                    marker + (" ✓" if f["marker_group"] == g else ""),
                ]
            )
        lines += [
            f"**Group {g}**: {summary}.",
            "",
            *table(["#", "family", "tag", "weight", "OFF marker"], rows),
        ]
    return lines


def _misclassified(name: str, mistakes: dict[str, Any]) -> list[str]:
    shown = len(mistakes["examples"])
    lines = [
        f"{mistakes['total']} of the {mistakes['rows']} products of `{name}` are misclassified."
    ]
    if shown:
        lines[0] += (
            f" {shown} of them, taken in turn from each true group, most confident first "
            "(what pushed the answer, then the product's tags):"
        )
    lines.append("")
    for e in mistakes["examples"]:
        title = escape(e["product_name"]) if e.get("product_name") else "(no name)"
        why = ", ".join(escape(r) for r in e.get("reasons", [])) or "—"
        lines += [
            f"- **{escape(e['code'])}** {title}: true **{e['true']}**, predicted "
            f"**{e['predicted']}** (p {e['probability']:.2f}); evidence "
            f"{', '.join(e.get('evidence', [])) or 'none'}; pushed by {why}",
            *(
                f"  - {family} ({e['tag_counts'][family]}): {escape(e['tags'][family])}"
                for family in e["tags"]
            ),
        ]
    return lines


def report_markdown(report: dict[str, Any], images: dict[str, bytes] | None = None) -> str:
    """The report as Markdown. With `images` (`png`, `reliability`), the pictures are embedded
    as data URIs (for Dagster's metadata); without, they are linked as files beside it."""

    def picture(key: str, alt: str) -> list[str]:
        if images is None:
            return [f"![{alt}]({FILES[key]})", ""]
        if key in images:
            data = base64.b64encode(images[key]).decode()
            return [f"![{alt}](data:image/png;base64,{data})", ""]
        return []

    as_is = report["slices"]["as_is"]["model"]
    lines = [
        f"## NOVA model v{report['model'].get('version', '?')}: the fixed test split as it is and "
        "with evidence hidden",
        "",
        f"{report['test_rows']} labelled test products; dump `{report.get('dump_sha256', '')[:12]}`.",
        "",
        "### The mix",
        "",
        *_mix(report),
        "",
        "### Slices",
        "",
        *_slices(report),
        "",
        "### Confident answers",
        "",
        *_thresholds(report),
        "",
        "### Reliability",
        "",
        *picture("reliability", "reliability diagram"),
        "### Per class (model, as is)",
        "",
        *_per_class(report),
        "",
        "### Confusion matrix (model, as is; rows true, columns predicted)",
        "",
        *picture("png", "confusion matrix"),
        *table(
            ["true \\ predicted", *map(str, GROUPS)],
            [[g, *row] for g, row in zip(GROUPS, as_is["confusion_matrix"], strict=True)],
        ),
    ]
    if report.get("by_country"):
        by = report["by_country"]
        lines += [
            "",
            "### Accuracy by country (as is)",
            "",
            f"The {by['top']} countries with most test products; a product sold in several "
            "countries counts in each.",
            "",
            *_breakdown("country", "country", by["rows"], report),
        ]
    if report.get("by_tag_count"):
        lines += [
            "",
            "### Accuracy by number of tags (as is)",
            "",
            "Tags a product has in the three families (ingredients with their parents, "
            "additives, categories).",
            "",
            *_breakdown("tags", "bucket", report["by_tag_count"]["rows"], report),
        ]
    for state, top in (report.get("top_features") or {}).items():
        lines += ["", f"### What weighs most for each group (`{state}` products)", ""]
        lines += _top_features(top)
    for name, mistakes in (report.get("misclassified") or {}).items():
        lines += ["", f"### Misclassified test products (`{name}`)", ""]
        lines += _misclassified(name, mistakes)
    return "\n".join(lines) + "\n"


def pictures(report: dict[str, Any]) -> dict[str, bytes]:
    return {
        "png": confusion_png(
            report["slices"]["as_is"]["model"]["confusion_matrix"],
            f"NOVA model v{report['model'].get('version', '?')} (as is)",
        ),
        "reliability": reliability_png(report),
    }


def write_report(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write evaluation.{json,md,png} and reliability.png, each to a temp name then renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    images = pictures(report)
    contents = {
        "json": json.dumps(report, indent=2).encode(),
        "md": report_markdown(report).encode(),
        **images,
    }
    paths = {}
    for key, content in contents.items():
        path = directory / FILES[key]
        write_atomically(path, content)
        paths[key] = path
    return paths


def signed(bounds: Sequence[float]) -> str:
    return f"{bounds[0]:+.3f} to {bounds[1]:+.3f}"
