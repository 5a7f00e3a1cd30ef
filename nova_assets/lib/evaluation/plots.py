"""The report's pictures, drawn with matplotlib off screen."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from nova_assets.lib.markdown import number
from nova_assets.lib.ml.metrics import GROUPS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def confusion_png(matrix: list[list[int]], title: str) -> bytes:
    """The confusion matrix as a PNG (rows: true group, columns: predicted group)."""
    plt = _pyplot()
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
        color = "white" if value > top / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=color)
    return _png(fig)


def reliability_png(report: dict[str, Any]) -> bytes:
    """Per slice, how often the model's answers were right against how sure it said it was."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for name, entry in report["slices"].items():
        bins = entry.get("reliability") or []
        if bins:
            ax.plot(
                [b["confidence"] for b in bins],
                [b["accuracy"] for b in bins],
                marker="o",
                markersize=3,
                label=f"{name} (ECE {number(entry['model']['ece'])})",
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("probability the model gives its answer")
    ax.set_ylabel("share of those answers that are right")
    ax.set_title(f"Reliability of model v{report['model'].get('version', '?')}")
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)
