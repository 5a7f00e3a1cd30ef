"""Metrics on the fixed test split, and the report a person reads: Markdown, JSON and a picture."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

GROUPS = (1, 2, 3, 4)


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


def _row(name: str, m: dict[str, Any]) -> str:
    f1 = " | ".join(f"{m['per_class'][str(g)]['f1']:.3f}" for g in GROUPS)
    return f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {f1} |"


def report_markdown(report: dict[str, Any], png: bytes | None = None) -> str:
    """The report as Markdown; with `png`, the confusion matrix is embedded as a data URI."""
    models = [
        (k, report[k]) for k in ("model", "reference", "majority", "champion") if report.get(k)
    ]
    lines = [
        f"## NOVA model v{report['model']['version']} on the fixed test split",
        "",
        f"{report['test_rows']} labelled test products; dump `{report['dump_sha256'][:12]}`.",
        "",
        "| model | accuracy | macro-F1 | F1 g1 | F1 g2 | F1 g3 | F1 g4 |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, m in models:
        lines.append(_row(m.get("name", key), m))
    lines += [
        "",
        "### Per class (model)",
        "",
        "| group | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for g in GROUPS:
        c = report["model"]["per_class"][str(g)]
        lines.append(
            f"| {g} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
        )
    lines += ["", "### Confusion matrix (rows true, columns predicted)", ""]
    lines += [
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
