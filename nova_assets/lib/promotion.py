"""Whether an evaluated model may become champion: it must beat the majority baseline and OFF's
own rules, and the champion, on the mix of slices weighted like the unlabelled products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Standing:
    """A model's place in a report: its mix scores (and registry version, if it has one)."""

    name: str
    macro_f1: float
    accuracy: float
    version: str | None = None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Standing:
        return cls(entry["name"], entry["macro_f1"], entry["accuracy"], entry.get("version"))


def standing(report: dict[str, Any], key: str) -> Standing | None:
    entry = report.get(key)
    return Standing.of(entry) if entry else None


def beats_majority(report: dict[str, Any]) -> bool:
    """The model does better than always answering the training majority group, in macro-F1:
    the groups count alike. (In accuracy, always 4 is hard to beat where 4 is most products and
    evidence is thin; the model answers the rarer groups where the evidence points to them.)"""
    model, majority = standing(report, "model"), standing(report, "majority")
    return model.macro_f1 > majority.macro_f1


def beats_rules(report: dict[str, Any]) -> bool:
    """The model is at least as good as OFF's own rules on the evidence products have."""
    return standing(report, "model").macro_f1 >= standing(report, "rules").macro_f1


def promotion_decision(report: dict[str, Any]) -> tuple[bool, str]:
    """Whether the evaluated model should become champion, and why, from one report (whose
    champion, if any, was scored on the same test products)."""
    model = standing(report, "model")
    champion = standing(report, "champion")
    majority, rules = standing(report, "majority"), standing(report, "rules")
    if not beats_majority(report):
        return False, (
            f"v{model.version} does not beat the majority baseline (mix macro-F1 "
            f"{model.macro_f1:.4f} vs {majority.macro_f1:.4f})"
        )
    if not beats_rules(report):
        return False, (
            f"v{model.version} does worse than OFF's rules (mix macro-F1 {model.macro_f1:.4f} vs "
            f"{rules.macro_f1:.4f})"
        )
    if champion is None:
        skipped = report.get("champion_skipped")
        return True, (
            f"v{model.version} replaces {skipped}"
            if skipped
            else f"v{model.version} is the first model to pass its checks"
        )
    if champion.version == model.version:
        return False, f"v{model.version} is already the champion"
    if model.macro_f1 > champion.macro_f1:
        return True, (
            f"v{model.version} mix macro-F1 {model.macro_f1:.4f} beats champion "
            f"v{champion.version} {champion.macro_f1:.4f} on the same {report['test_rows']} "
            "test products"
        )
    return False, (
        f"v{model.version} mix macro-F1 {model.macro_f1:.4f} does not beat champion "
        f"v{champion.version} {champion.macro_f1:.4f}; champion kept"
    )
