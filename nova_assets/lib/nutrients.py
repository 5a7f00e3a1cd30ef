"""Nutrients per 100 g: which ones the platform keeps, where each comes from in a dump, and
which values are impossible (typos, wrong units), so they become NULL and are counted instead
of teaching the model nonsense.

In `products` a nutrient is a DOUBLE column named as the CSV export names it with `-` written
`_` (`energy-kcal_100g` is `energy_kcal_100g`); the model's input takes the CSV's own names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nova_assets.lib.database import sql_literal, sql_name

if TYPE_CHECKING:
    import numpy as np
    from scipy import sparse

KJ_PER_KCAL = 4.184
SALT_PER_SODIUM = 2.5
MAX_KCAL = 1000.0
"""Pure fat is 900 kcal per 100 g; more is a typo or kJ written as kcal."""
MAX_GRAMS = 100.0
GRAM_EDGES = (0.1, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 80)
"""The thresholds a nutrient in grams is compared with, unless it has its own."""


@dataclass(frozen=True)
class Nutrient:
    """One nutrient: its CSV column, the export's `nutriments` name, and a fallback (another
    column, and the factor that turns it into this one) where the first is missing."""

    csv: str
    label: str
    unit: str = "g"
    fallback: str | None = None
    factor: float = 1.0
    whole: str | None = None
    """The nutrient this one is part of (saturated fat of fat, sugars of carbohydrates)."""
    edges: tuple[float, ...] = GRAM_EDGES
    """Thresholds its value is compared with: "more than 10 g of sugars" is one design column.
    Fixed, not learned, so that the columns mean the same in every model and on every dump."""

    @property
    def column(self) -> str:
        """Its column in `products`."""
        return self.csv.replace("-", "_")

    @property
    def name(self) -> str:
        """Its name in the Parquet export's `nutriments` list (the CSV name less `_100g`)."""
        return self.csv.removesuffix("_100g")

    @property
    def limit(self) -> float:
        return MAX_KCAL if self.unit == "kcal" else MAX_GRAMS


NUTRIENTS = (
    Nutrient(
        "energy-kcal_100g",
        "energy",
        "kcal",
        fallback="energy_100g",
        factor=1 / KJ_PER_KCAL,
        edges=(5, 20, 40, 70, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600),
    ),
    Nutrient("fat_100g", "fat"),
    Nutrient("saturated-fat_100g", "saturated fat", whole="fat_100g"),
    Nutrient("carbohydrates_100g", "carbohydrates"),
    Nutrient("sugars_100g", "sugars", whole="carbohydrates_100g"),
    Nutrient("fiber_100g", "fiber", edges=(0.1, 0.5, 1, 2, 3, 4, 6, 8, 12, 20)),
    Nutrient("proteins_100g", "proteins"),
    Nutrient(
        "salt_100g",
        "salt",
        fallback="sodium_100g",
        factor=SALT_PER_SODIUM,
        edges=(0.01, 0.05, 0.1, 0.25, 0.5, 0.8, 1.2, 1.6, 2.2, 3, 5, 10, 30),
    ),
)
NUTRIENT_COLUMNS = tuple(n.column for n in NUTRIENTS)
"""The nutrient columns of `products`, in order."""
CSV_COLUMNS = tuple(n.csv for n in NUTRIENTS)
"""The model's optional nutrient input columns, named as the CSV names them."""
SOURCE_COLUMNS = tuple(
    dict.fromkeys(c for n in NUTRIENTS for c in (n.csv, n.fallback) if c is not None)
)
"""Every CSV column a nutrient is read from."""
_BY_CSV = {n.csv: n for n in NUTRIENTS}


def raw_tsv_sql(present: set[str]) -> str:
    """The staged raw value of each nutrient from a TSV dump's text fields (`raw_<column>`):
    the column as a number, else its fallback converted, else NULL."""

    def number(csv: str) -> str:
        if csv not in present:
            return "CAST(NULL AS DOUBLE)"
        return f"TRY_CAST(nullif(trim({sql_name(csv)}), '') AS DOUBLE)"

    return ", ".join(
        f"coalesce({number(n.csv)}, {number(n.fallback)} * {n.factor!r}) AS raw_{n.column}"
        if n.fallback
        else f"{number(n.csv)} AS raw_{n.column}"
        for n in NUTRIENTS
    )


def raw_parquet_sql(columns: dict[str, str]) -> str:
    """The staged raw value of each nutrient from the Parquet export's `nutriments` list of
    `{name, 100g, …}` entries: the entry's per-100 g value, else its fallback's converted."""
    if "nutriments" not in columns or "100g" not in columns["nutriments"]:
        return ", ".join(f"CAST(NULL AS DOUBLE) AS raw_{n.column}" for n in NUTRIENTS)

    def value(name: str) -> str:
        # Through text: the export's float32 28.9 is 28.9, as the CSV writes it, not
        # 28.899999618530273.
        entry = f"list_filter(nutriments, lambda x: x.name = {sql_literal(name)})[1]"
        return f'CAST(CAST({entry}."100g" AS VARCHAR) AS DOUBLE)'

    parts = []
    for n in NUTRIENTS:
        own = value(n.name)
        if n.fallback:
            own = f"coalesce({own}, {value(n.fallback.removesuffix('_100g'))} * {n.factor!r})"
        parts.append(f"{own} AS raw_{n.column}")
    return ", ".join(parts)


def _valid_sql(n: Nutrient) -> str:
    """Whether `raw_<column>` is a possible value: finite, 0..limit, and not above its whole."""
    raw = f"raw_{n.column}"
    valid = f"(isfinite({raw}) AND {raw} BETWEEN 0 AND {n.limit!r})"
    if n.whole:
        whole = f"raw_{_BY_CSV[n.whole].column}"
        whole_ok = f"(isfinite({whole}) AND {whole} BETWEEN 0 AND {MAX_GRAMS!r})"
        valid = f"({valid} AND NOT coalesce({whole_ok} AND {raw} > {whole} + 0.001, false))"
    return valid


def clean_sql() -> str:
    """The `products` nutrient columns from the staged raw values: impossible ones NULL."""
    return ", ".join(
        f"CASE WHEN {_valid_sql(n)} THEN raw_{n.column} END AS {n.column}" for n in NUTRIENTS
    )


def invalid_count_sql() -> str:
    """How many of a staged row's nutrient values are impossible (and so made NULL)."""
    return " + ".join(
        f"CAST(raw_{n.column} IS NOT NULL AND NOT coalesce({_valid_sql(n)}, false) AS INTEGER)"
        for n in NUTRIENTS
    )


def describe(csv: str, value: float) -> str:
    """A nutrient value as a person reads it: 'sugars 48 g / 100 g'."""
    n = _BY_CSV[csv]
    shown = f"{value:.0f}" if value >= 10 else f"{value:.2g}"
    return f"{n.label} {shown} {n.unit} / 100 g"


NUTRIENT_FEATURES = sum(len(n.edges) + 1 for n in NUTRIENTS)
"""Design columns of the nutrients: per nutrient, "known", then one per threshold passed."""


def nutrient_design(values: np.ndarray, scale: float = 1.0) -> sparse.csr_matrix:
    """Nutrient values (rows x NUTRIENTS, NaN for unknown) as thermometer columns: per
    nutrient a "known" column, then one column per threshold the value exceeds. Ordered
    columns let a linear model weigh "more sugar" smoothly, and an unknown value is all zeros
    beside its "known" column, so it says nothing instead of "zero grams"."""
    import numpy as np
    from scipy import sparse

    blocks = []
    for k, n in enumerate(NUTRIENTS):
        column = values[:, k]
        known = ~np.isnan(column)
        edges = np.asarray(n.edges)
        above = np.nan_to_num(column, nan=-np.inf)[:, None] > edges[None, :]
        blocks.append(np.column_stack([known, above]))
    dense = np.hstack(blocks).astype(np.float32) * np.float32(scale)
    return sparse.csr_matrix(dense)


def as_model_input_sql() -> str:
    """The nutrient columns of `products` under the model input's (CSV) names."""
    return ", ".join(f'{n.column} AS "{n.csv}"' for n in NUTRIENTS)
