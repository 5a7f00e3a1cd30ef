"""Figures in asset metadata as a person reads them: four decimals, not seventeen."""

from typing import Any

DIGITS = 4


def rounded(metadata: dict[str, Any], digits: int = DIGITS) -> dict[str, Any]:
    """`metadata` with every float rounded to `digits` decimals (other values as they are)."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in metadata.items()}


def setting(value: object) -> str:
    """A setting shown as text, so the UI does not plot a constant as a series."""
    return str(value)
