"""What drift means to a person: the thresholds past which the check warns, a one-line summary
and the Markdown comparison and history the asset's metadata shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nova_assets.lib.markdown import table
from nova_assets.lib.ml.calibration import GROUPS

if TYPE_CHECKING:
    from nova_assets.lib.drift.measure import Drift


@dataclass(frozen=True)
class Thresholds:
    """Past any of these the drift check warns (the figures are 0..1 shares)."""

    class_share_distance: float = 0.05
    vocabulary_change_share: float = 0.20
    changed_label_share: float = 0.05


def breaches(figures: Mapping[str, Any], thresholds: Thresholds) -> list[str]:
    """Which figures pass their threshold, as sentences; empty when within all (or nothing
    was compared, as on the first dump)."""
    out = []
    for name, limit in thresholds.__dict__.items():
        value = figures.get(name)
        if value is not None and value > limit:
            out.append(f"{name.replace('_', ' ')} {value:.3f} > {limit:.3f}")
    return out


def summary(drift: Drift) -> str:
    """One line: what changed against the previous dump, and how the champion did on it."""
    figures = drift.figures()
    previous = figures["previous_sha256"]
    if previous is None:
        return f"no previous dump: nothing to compare ({drift.current.products:,} products)"
    text = (
        f"against {previous[:12]}: class share distance "
        f"{_num(figures['class_share_distance'])}, {figures['new_vocabulary']} new "
        f"and {figures['vanished_vocabulary']} vanished tags, "
        f"{figures['changed_labels']} changed labels"
    )
    if figures["champion_accuracy"] is not None:
        text += f", champion v{figures['champion_version']} right on "
        text += f"{figures['champion_accuracy']:.1%} of them"
    elif drift.champion_note:
        text += f" ({drift.champion_note})"
    return text


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _pts(value: float | None) -> str:
    """A change of share, in percentage points."""
    return "-" if value is None else f"{100 * value:+.1f} pts"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def drift_markdown(drift: Drift, rows: list[dict[str, Any]]) -> str:
    """The comparison, then the history of every dump measured (`rows`, newest first)."""
    cur, prev = drift.current, drift.previous
    lines = [f"**Dump `{cur.dump_sha256[:12]}`**: {cur.products:,} products, "]
    if prev is None:
        lines[0] += "no previous dump measured: nothing to compare yet."
    else:
        lines[0] += (
            f"against `{prev.dump_sha256[:12]}` ({prev.products:,} products), "
            f"the dump measured before it."
        )
        lines += ["", "### Class shares among labelled products", ""]
        shares = [
            [
                "labelled share",
                _pct(prev.labelled_share),
                _pct(cur.labelled_share),
                _pts(drift.labelled_share_change),
            ],
            *(
                [
                    f"group {g}",
                    _pct(prev.shares[g]),
                    _pct(cur.shares[g]),
                    _pts(cur.shares[g] - prev.shares[g]),
                ]
                for g in GROUPS
            ),
            [
                "**class share distance** (total variation)",
                "",
                "",
                f"**{_num(drift.class_share_distance)}**",
            ],
        ]
        lines += table(["", "previous", "current", "change"], shares)
        lines += [
            "",
            f"### Vocabulary (tags in at least {drift.min_count} products)",
            "",
            "New: in at least that many now and in none before; vanished: the other way round.",
            "",
        ]
        families = [
            [
                v.family,
                f"{v.previous:,}",
                f"{v.current:,}",
                f"{v.new:,}",
                f"{v.vanished:,}",
                ", ".join(v.new_examples),
                ", ".join(v.vanished_examples),
            ]
            for v in drift.vocabulary
        ]
        families.append(
            [
                "**all**",
                "",
                "",
                f"**{drift.new_vocabulary:,}**",
                f"**{drift.vanished_vocabulary:,}**",
                f"{_pct(drift.vocabulary_change_share)} of either vocabulary",
                "",
            ]
        )
        header = ["family", "previous", "current", "new", "vanished", "new, e.g.", "vanished, e.g."]
        lines += table(header, families)
        lines += ["", "### Labels that changed", "", *_label_lines(drift)]
    lines += ["", "### History", ""]
    history = [
        [
            f"`{r['dump_sha256'][:12]}`",
            f"{r['measured_at']:%Y-%m-%d %H:%M}",
            f"{r['products']:,}",
            _pct(r["labelled_share"]),
            _num(r["class_share_distance"]),
            _int(r["new_vocabulary"]),
            _int(r["vanished_vocabulary"]),
            _pct(r["vocabulary_change_share"]),
            _int(r["changed_labels"]),
            _pct(r["champion_accuracy"]),
        ]
        for r in rows
    ]
    header = [
        "dump",
        "measured",
        "products",
        "labelled",
        "class share distance",
        "new tags",
        "vanished tags",
        "vocabulary change",
        "changed labels",
        "champion accuracy on them",
    ]
    lines += table(header, history)
    return "\n".join(lines) + "\n"


def _label_lines(drift: Drift) -> list[str]:
    labels, lines = drift.labels, []
    if labels.common_labelled:
        transitions = ", ".join(f"{a}→{b}: {n:,}" for (a, b), n in labels.transitions.items())
        lines.append(
            f"{labels.changed:,} of {labels.common_labelled:,} products labelled in both "
            f"dumps ({_pct(labels.share)})" + (f": {transitions}." if transitions else ".")
        )
    else:
        lines.append("No product is labelled in both dumps.")
    score = drift.champion
    if score is not None:
        lines.append(
            f"Champion v{score.version} agrees with the new label on {_pct(score.accuracy)} "
            f"of them ({score.rows:,}); on the {score.test_rows:,} in the test split, "
            f"which no model trained on: {_pct(score.test_accuracy)}."
        )
    elif drift.champion_note:
        lines.append(f"Champion: {drift.champion_note}.")
    return lines
