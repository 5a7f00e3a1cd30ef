"""Asset metadata as a person reads it: four decimals, not seventeen; settings as text; and
what an unchanged step says."""

from typing import Any

import dagster as dg

DIGITS = 4


def rounded(metadata: dict[str, Any], digits: int = DIGITS) -> dict[str, Any]:
    """`metadata` with every float rounded to `digits` decimals (other values as they are)."""
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in metadata.items()}


def setting(value: object) -> str:
    """A setting shown as text, so the UI does not plot a constant as a series."""
    return str(value)


def unchanged(what: str, data_version: str | None = None, **metadata: Any) -> dg.MaterializeResult:
    """The result of a step that found its build recorded (lib/builds.py): nothing written, the
    same data version, so nothing downstream sees a change; `metadata` says what it points to."""
    return dg.MaterializeResult(
        metadata={"status": f"unchanged: {what}", **metadata},
        data_version=dg.DataVersion(data_version) if data_version else None,
    )
