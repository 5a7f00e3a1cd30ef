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


def promotion_decision(report: dict[str, Any], current: str | None) -> tuple[bool, str]:
    """Whether the evaluated model should become champion, and why, from one report (whose
    champion, if any, was scored on the same test products) and the version that is champion
    now (`current`, None if none is): the reason says what really happened, so a run that
    changes nothing says so."""
    model = standing(report, "model")
    champion = standing(report, "champion")
    majority, rules = standing(report, "majority"), standing(report, "rules")
    skipped = report.get("champion_skipped")
    if current == model.version:
        return False, f"v{model.version} stays champion: nothing new to compare"
    scored_beside = champion.version if champion else None
    if current is not None and scored_beside != current and not skipped:
        beside = f"champion v{scored_beside}" if scored_beside else "no champion"
        return False, (
            f"v{current} stays champion: the report scored v{model.version} beside {beside}; "
            "rematerialize evaluation_report"
        )
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
        return True, (
            f"v{model.version} replaces {skipped}"
            if skipped
            else f"v{model.version} is the first model to pass its checks"
        )
    margin = model.macro_f1 - champion.macro_f1
    if margin > 0:
        return True, (
            f"v{model.version} beat champion v{champion.version} by {margin:.4f} mix macro-F1 "
            f"({model.macro_f1:.4f} vs {champion.macro_f1:.4f} on the same "
            f"{report['test_rows']} test products)"
        )
    return False, (
        f"v{model.version} does not beat champion v{champion.version} (mix macro-F1 "
        f"{model.macro_f1:.4f} vs {champion.macro_f1:.4f}); v{champion.version} stays champion"
    )
