"""Where the evaluation report lives and how it is read back: the part of the report that the
promotion step and the checks need, without what draws and writes it (report.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FILES = {
    "json": "evaluation.json",
    "md": "evaluation.md",
    "png": "evaluation.png",
    "reliability": "reliability.png",
}


def report_files(directory: Path) -> list[Path]:
    """Every file of a report written to `directory`."""
    return [directory / name for name in FILES.values()]


def read_report(directory: Path) -> dict[str, Any]:
    path = directory / FILES["json"]
    if not path.exists():
        raise FileNotFoundError(
            f"no evaluation report at {path}: materialize evaluation_report first"
        )
    return json.loads(path.read_text())
