"""Raw product input from users (MLflow serving, `python -m nova_assets.predict`, the Python
API), checked so a bad request gets a message saying what is wrong instead of a stack trace,
and turned into the ProductMatrix the models read (the first step of every Pipeline).

The error is an `MlflowException` with INVALID_PARAMETER_VALUE, which MLflow's scoring server
answers with HTTP 400 and the message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from nova_assets.lib.ml.evidence import known_evidence
from nova_assets.lib.ml.feature_matrix import (
    EVIDENCE,
    FAMILIES,
    ProductMatrix,
    csr_from_pairs,
    nutrient_evidence,
)
from nova_assets.lib.nutrients import CSV_COLUMNS, NUTRIENTS
from nova_assets.lib.warehouse.nova_rules import marker_group

INPUT_COLUMNS = tuple(f"{family}_tags" for family in FAMILIES)
NAME_COLUMN = "product_name"
PARTIAL_COLUMN = "partial_ingredients"
NUTRIENT_INPUTS = CSV_COLUMNS
OPTIONAL_COLUMNS = (NAME_COLUMN, PARTIAL_COLUMN, *NUTRIENT_INPUTS)
EXPECTED = (
    "each product needs the columns "
    + ", ".join(INPUT_COLUMNS)
    + ', each a list of OFF tags such as ["en:sugar", "en:palm-oil"] ([] for none), and may '
    f"have {NAME_COLUMN} (text), {PARTIAL_COLUMN} (true when many of its ingredients are "
    "unknown to OFF) and nutrients per 100 g as numbers named as OFF's CSV names them ("
    + ", ".join(NUTRIENT_INPUTS)
    + ")"
)


@cache
def _bad_model_input() -> type[ValueError]:
    """BadModelInput, made on first use: it derives from MLflow's exception, and importing MLflow
    costs seconds that a process only fitting or scoring models (a trial's worker) never needs.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    class BadModelInput(MlflowException, ValueError):
        """A request the model cannot answer; the message says why.

        An MlflowException so `mlflow models serve` answers 400, a ValueError so scikit-learn
        callers catch it as the bad input it is.
        """

        def __init__(self, message: str) -> None:
            super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    BadModelInput.__module__ = __name__
    return BadModelInput


def __getattr__(name: str) -> object:
    if name == "BadModelInput":
        return _bad_model_input()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing(value: object) -> bool:
    """None, NaN or pandas' NA (as DuckDB's `.df()` gives for a NULL)."""
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


TAG_FORM = "OFF's tags look like en:palm-oil"
_LANGUAGE = re.compile(r"^[a-z]{2}:")
_SEPARATORS = re.compile(r"[\s_]+")


def normalise_tag(tag: str) -> str:
    """A tag as OFF spells its taxonomy ids, from the ways people write one: `Palm oil`,
    ` palm_oil `, `en:Palm Oil` all give `en:palm-oil` (lowercase, trimmed, spaces and
    underscores to hyphens, `en:` when no language `xx:` is given). OFF's own ids are kept."""
    tag = _SEPARATORS.sub("-", re.sub(r"\s*:\s*", ":", tag.strip().lower())).strip("-")
    if not tag or _LANGUAGE.match(tag):
        return tag
    return f"en:{tag}"


def as_tags(value: object, *, row: int = 0, column: str = "tags") -> list[str]:
    """One cell as a list of tags spelt as OFF does (`normalise_tag`): a list/array of strings,
    OFF's comma-separated string, or nothing (None, NaN, pandas' NA) for no tags."""
    if _missing(value):
        return []
    if isinstance(value, str):
        return [t for t in map(normalise_tag, value.split(",")) if t]
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        items = list(value)
        wrong = [t for t in items if not isinstance(t, str)]
        if wrong:
            raise _bad_model_input()(
                f"row {row}, column {column}: tags must be strings, got {type(wrong[0]).__name__} "
                f"{wrong[0]!r}; {EXPECTED}"
            )
        return [t for t in map(normalise_tag, items) if t]
    raise _bad_model_input()(
        f"row {row}, column {column}: expected a list of tags, got {type(value).__name__} "
        f"{value!r}; {EXPECTED}"
    )


def as_name(value: object, *, row: int = 0) -> str:
    """One product name cell: text, or nothing."""
    if _missing(value):
        return ""
    if not isinstance(value, str):
        raise _bad_model_input()(
            f"row {row}, column {NAME_COLUMN}: expected text, got {type(value).__name__} "
            f"{value!r}; {EXPECTED}"
        )
    return value.strip()


def as_flag(value: object, *, row: int = 0) -> bool:
    """One `partial_ingredients` cell: a boolean, or nothing for false."""
    if _missing(value):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise _bad_model_input()(
        f"row {row}, column {PARTIAL_COLUMN}: expected true or false, got "
        f"{type(value).__name__} {value!r}; {EXPECTED}"
    )


def as_nutrient(value: object, *, row: int = 0, column: str = "fat_100g") -> float:
    """One nutrient cell: a possible amount per 100 g, or nothing (NaN)."""
    if _missing(value):
        return float("nan")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise _bad_model_input()(
            f"row {row}, column {column}: expected a number per 100 g, got "
            f"{type(value).__name__} {value!r}; {EXPECTED}"
        )
    limit = NUTRIENTS[NUTRIENT_INPUTS.index(column)].limit
    if not np.isfinite(value) or not 0 <= value <= limit:
        raise _bad_model_input()(
            f"row {row}, column {column}: {value!r} per 100 g is impossible (0 to {limit:g})"
        )
    return float(value)


@dataclass(frozen=True)
class RawProducts:
    """Checked raw input: per product, its tag lists, name, whether its ingredients are partly
    unknown, and its nutrients (rows x NUTRIENTS, NaN where not given)."""

    tags: dict[str, list[list[str]]]
    names: list[str]
    partial: list[bool]
    nutrients: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


def read_products(X: object) -> RawProducts:
    """The products of `X`, or BadModelInput saying what is wrong: not a table, no product, a
    tag column missing, a cell of the wrong kind or an impossible nutrient, a product with no
    tag, no name and no nutrient."""
    if not isinstance(X, pd.DataFrame):
        raise _bad_model_input()(
            f"expected a table of products, got {type(X).__name__}; {EXPECTED}"
        )
    if len(X) == 0:
        raise _bad_model_input()(f"the request has no product: {EXPECTED}")
    missing = [c for c in INPUT_COLUMNS if c not in X.columns]
    if missing:
        raise _bad_model_input()(f"missing column(s) {', '.join(missing)}: {EXPECTED}")
    tags = {
        c: [as_tags(v, row=i, column=c) for i, v in enumerate(X[c].tolist())] for c in INPUT_COLUMNS
    }
    n = len(X)
    names = (
        [as_name(v, row=i) for i, v in enumerate(X[NAME_COLUMN].tolist())]
        if NAME_COLUMN in X.columns
        else [""] * n
    )
    partial = (
        [as_flag(v, row=i) for i, v in enumerate(X[PARTIAL_COLUMN].tolist())]
        if PARTIAL_COLUMN in X.columns
        else [False] * n
    )
    nutrients = np.full((n, len(NUTRIENT_INPUTS)), np.nan, dtype=np.float32)
    for k, column in enumerate(NUTRIENT_INPUTS):
        if column in X.columns:
            nutrients[:, k] = [
                as_nutrient(v, row=i, column=column) for i, v in enumerate(X[column].tolist())
            ]
    known = ~np.isnan(nutrients).all(axis=1)
    empty = [
        i
        for i in range(n)
        if not names[i] and not known[i] and not any(tags[c][i] for c in INPUT_COLUMNS)
    ]
    if empty:
        raise _bad_model_input()(
            f"product(s) at row {_rows(empty)} have no tags, no name and no nutrient at all: "
            "nothing to predict from"
        )
    return RawProducts(tags, names, partial, nutrients)


def _rows(rows: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


class ProductVectorizer(TransformerMixin, BaseEstimator):
    """Raw products (tag list columns, optional `product_name`, `partial_ingredients` and
    nutrients) to the ProductMatrix of a fixed vocabulary.

    `refuse_unknown`: `transform` refuses a product the model knows nothing of (no tag in the
    vocabulary, no name, no nutrient), naming its tags. Set on the pipelines the project logs:
    MLflow serving answers with groups only, so a group made of nothing would pass for an answer.
    """

    def __init__(self, features: Sequence[str] = (), refuse_unknown: bool = False):
        self.features = features
        self.refuse_unknown = refuse_unknown

    def fit(self, X=None, y=None):
        self.index_ = {f: i for i, f in enumerate(self.features)}
        return self

    def transform(self, X: pd.DataFrame) -> ProductMatrix:
        """Raises BadModelInput (HTTP 400 when served) on input that is not products."""
        matrix, unknown = self.read(X)
        if getattr(self, "refuse_unknown", False):
            refuse_unknown_products(matrix, unknown)
        return matrix

    def read(self, X: pd.DataFrame) -> tuple[ProductMatrix, list[dict[str, list[str]]]]:
        """The products of `X` as a ProductMatrix, and per product its tags the model does not
        read (`unknown_tags`); raises BadModelInput on input that is not products."""
        raw = read_products(X)
        index = getattr(self, "index_", None) or self.fit().index_
        rows, cols = [], []
        for family, column in zip(FAMILIES, INPUT_COLUMNS, strict=True):
            for row, tags in enumerate(raw.tags[column]):
                for tag in tags:
                    col = index.get(f"{family}:{tag}")
                    if col is not None:
                        rows.append(row)
                        cols.append(col)
        n = len(raw)
        evidence = np.column_stack(
            [[bool(t) for t in raw.tags[c]] for c in INPUT_COLUMNS]
            + [[bool(s) for s in raw.names], nutrient_evidence(raw.nutrients)]
        ).reshape(n, len(EVIDENCE))
        matrix = ProductMatrix(
            X=csr_from_pairs(np.array(rows), np.array(cols), n, len(self.features)),
            codes=np.arange(n).astype(str),
            labels=np.zeros(n, dtype=np.int8),
            features=list(self.features),
            names=np.array(raw.names, dtype=object),
            evidence=evidence,
            partial=np.array(raw.partial, dtype=bool),
            nutrients=raw.nutrients,
        )
        return matrix, unknown_tags(index, raw)


def unknown_tags(index: dict[str, int], raw: RawProducts) -> list[dict[str, list[str]]]:
    """Per product, column -> the tags the model does not read: outside its vocabulary (`index`:
    `family:tag` -> column) and not one of OFF's markers. Columns without any are left out."""
    out: list[dict[str, list[str]]] = [{} for _ in range(len(raw))]
    for family, column in zip(FAMILIES, INPUT_COLUMNS, strict=True):
        for row, tags in enumerate(raw.tags[column]):
            unknown = [
                t for t in tags if f"{family}:{t}" not in index and marker_group(family, t) is None
            ]
            if unknown:
                out[row][column] = unknown
    return out


def refuse_unknown_products(matrix: ProductMatrix, unknown: list[dict[str, list[str]]]) -> None:
    """BadModelInput naming the products with no known evidence, and their tags."""
    nothing = np.flatnonzero(~known_evidence(matrix)).tolist()
    if not nothing:
        return
    said = "; ".join(
        f"row {i} " + (" ".join(f"{c}: {', '.join(t)}" for c, t in unknown[i].items()) or "none")
        for i in nothing[:10]
    )
    raise _bad_model_input()(
        f"product(s) at row {_rows(nothing)} have no tag the model knows, no name and no "
        f"nutrient: nothing to predict from. Tags not understood: {said}; {TAG_FORM}"
    )


def example_input() -> pd.DataFrame:
    """Two real-looking products as raw tags (parents included, as OFF writes them) and names.

    Used as MLflow's input example; every cell is non-empty so each column's type is clear.
    """
    return pd.DataFrame(
        {
            "ingredients_tags": [
                [
                    "en:sugar",
                    "en:added-sugar",
                    "en:palm-oil",
                    "en:vegetable-oil-and-fat",
                    "en:hazelnut",
                    "en:cocoa",
                    "en:emulsifier",
                    "en:lecithins",
                    "en:soya-lecithin",
                    "en:e322",
                    "en:flavouring",
                ],
                ["en:water", "en:mineral-water"],
            ],
            "additives_tags": [["en:e322", "en:e322i"], ["en:e290"]],
            "categories_tags": [
                ["en:breakfasts", "en:spreads", "en:sweet-spreads", "en:hazelnut-spreads"],
                ["en:beverages", "en:waters", "en:mineral-waters"],
            ],
            "product_name": ["Hazelnut spread with cocoa", "Eau minérale naturelle"],
            "partial_ingredients": [False, False],
            **{
                column: [spread, water]
                for column, spread, water in zip(
                    NUTRIENT_INPUTS,
                    (539.0, 30.9, 10.6, 57.5, 56.3, 3.5, 6.3, 0.107),
                    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01),
                    strict=True,
                )
            },
        }
    )
