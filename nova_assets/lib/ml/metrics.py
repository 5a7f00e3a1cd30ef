"""Scores of one model's answers on labelled products: accuracy, macro-F1 and per-group
figures, calibration error, and how many answers clear the thresholds and how often they are
right there."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from nova_assets.lib.ml.calibration import GROUPS

CALIBRATION_BINS = 10


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, macro-F1 over the four groups, per-class precision/recall/F1/support, confusion."""
    labels = list(GROUPS)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
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


def present_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-F1 over the groups present in truth or answers: a group the rows lack and the model
    never answers is no error (model selection on validation rows uses it)."""
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def majority_class(y_train: np.ndarray) -> int:
    """The training set's most frequent group: the baseline every model must beat."""
    values, counts = np.unique(y_train, return_counts=True)
    return int(values[np.argmax(counts)])


def majority_baseline(y_train: np.ndarray) -> tuple[int, float]:
    """(the majority group, its share of the training products)."""
    group = majority_class(y_train)
    return group, float(np.mean(np.asarray(y_train) == group))


@dataclass(frozen=True)
class ReliabilityBin:
    """Answers whose probability falls in [low, high): how sure they said they were, how often
    they were right."""

    low: float
    high: float
    rows: int
    confidence: float
    accuracy: float


def reliability(
    probability: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> list[ReliabilityBin]:
    """The answers in equal-width probability bins (empty bins left out)."""
    index = np.minimum((np.asarray(probability) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        rows = index == b
        if rows.any():
            out.append(
                ReliabilityBin(
                    low=b / bins,
                    high=(b + 1) / bins,
                    rows=int(rows.sum()),
                    confidence=float(np.mean(probability[rows])),
                    accuracy=float(np.mean(correct[rows])),
                )
            )
    return out


def expected_calibration_error(
    probability: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS
) -> float | None:
    """The mean gap between the probability a model gives its answer and how often such answers
    are right, over equal-width bins weighted by their rows (0: perfectly calibrated)."""
    n = len(probability)
    if n == 0:
        return None
    return float(
        sum(
            b.rows / n * abs(b.accuracy - b.confidence)
            for b in reliability(probability, correct, bins)
        )
    )


def at_thresholds(y_true: np.ndarray, y_pred: np.ndarray, confident: np.ndarray) -> dict:
    """Coverage (share of products whose answer clears its threshold) and precision of those
    answers, overall and per answered group. Precision is None where nothing was accepted."""
    y_true, y_pred, confident = map(np.asarray, (y_true, y_pred, confident))

    def share(mask: np.ndarray, within: np.ndarray) -> float | None:
        return float(mask[within].mean()) if within.any() else None

    right = y_true == y_pred
    return {
        "coverage": share(confident, np.ones(len(y_true), dtype=bool)),
        "precision": share(right, confident),
        "per_class": {
            str(g): {
                "answered": int((y_pred == g).sum()),
                "accepted": int((confident & (y_pred == g)).sum()),
                "coverage": share(confident, y_pred == g),
                "precision": share(right, confident & (y_pred == g)),
            }
            for g in GROUPS
        },
    }
