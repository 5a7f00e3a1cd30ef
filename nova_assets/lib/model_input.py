"""Raw tag input from users (MLflow serving, `python -m nova_assets.predict`), checked so a bad
request gets a message saying what is wrong instead of a stack trace.

The error is an `MlflowException` with INVALID_PARAMETER_VALUE, which MLflow's scoring server
answers with HTTP 400 and the message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from nova_assets.lib.features import FAMILIES

INPUT_COLUMNS = tuple(f"{family}_tags" for family in FAMILIES)
EXPECTED = (
    "each product needs the columns "
    + ", ".join(INPUT_COLUMNS)
    + ', each a list of OFF tags such as ["en:sugar", "en:palm-oil"] (or one comma-separated string)'
)


class BadModelInput(MlflowException, ValueError):
    """A request the model cannot answer; the message says why.

    An MlflowException so `mlflow models serve` answers 400, a ValueError so scikit-learn callers
    catch it as the bad input it is.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def as_tags(value: object, *, row: int = 0, column: str = "tags") -> list[str]:
    """One cell as a list of tags: a list/array of strings, OFF's comma-separated string, or
    nothing (None, NaN, pandas' NA, as DuckDB's `.df()` gives for a NULL list) for no tags."""
    if value is None or value is pd.NA:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, float) and np.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        items = list(value)
        wrong = [t for t in items if not isinstance(t, str)]
        if wrong:
            raise BadModelInput(
                f"row {row}, column {column}: tags must be strings, got {type(wrong[0]).__name__} "
                f"{wrong[0]!r}; {EXPECTED}"
            )
        return [t for t in items if t]
    raise BadModelInput(
        f"row {row}, column {column}: expected a list of tags, got {type(value).__name__} "
        f"{value!r}; {EXPECTED}"
    )


def tag_lists(X: object) -> dict[str, list[list[str]]]:
    """The three tag columns of `X` as lists of tag lists, or BadModelInput saying what is wrong:
    not a table, no product, a column missing, a cell that is not tags, a product without any tag.
    """
    if not isinstance(X, pd.DataFrame):
        raise BadModelInput(f"expected a table of products, got {type(X).__name__}; {EXPECTED}")
    if len(X) == 0:
        raise BadModelInput(f"the request has no product: {EXPECTED}")
    missing = [c for c in INPUT_COLUMNS if c not in X.columns]
    if missing:
        raise BadModelInput(f"missing column(s) {', '.join(missing)}: {EXPECTED}")
    columns = {
        c: [as_tags(v, row=i, column=c) for i, v in enumerate(X[c].tolist())] for c in INPUT_COLUMNS
    }
    empty = [i for i in range(len(X)) if not any(columns[c][i] for c in INPUT_COLUMNS)]
    if empty:
        raise BadModelInput(
            f"product(s) at row {_rows(empty)} have no tags at all: nothing to predict from"
        )
    return columns


def _rows(rows: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")
