"""Markdown for reports and Dagster metadata: one table writer and one escape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def escape(text: Any) -> str:
    """Text safe inside a Markdown table cell or list item, on one line."""
    text = " ".join(str(text).split())
    for ch in "\\|*_`[]<>#":
        text = text.replace(ch, "\\" + ch)
    return text


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines; cells are written as given (escape them where needed)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def number(value: float | None, digits: int = 3) -> str:
    """`0.91234` → `0.912`; `—` for nothing."""
    return "—" if value is None else f"{value:.{digits}f}"


def interval(bounds: Sequence[float] | None, digits: int = 3) -> str:
    """`[0.91, 0.96]` → `0.910–0.960`; `—` where there is no interval."""
    return "—" if not bounds else f"{bounds[0]:.{digits}f}–{bounds[1]:.{digits}f}"
