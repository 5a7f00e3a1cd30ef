"""Evidence a product carries, and test products with evidence hidden the way OFF's blank
products lack it.

OFF leaves a product without `nova_group` because a family of evidence is missing or
unreliable: no ingredients, no category, too many unknown ingredients. A model judged only on
complete products says nothing about those. So the test split is also evaluated with the
evidence hidden (`SLICES`), and the model itself keeps one expert per evidence state
(`STATES`), each trained on every training product with its evidence hidden that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from nova_assets.lib.ml.feature_matrix import EVIDENCE, FAMILIES, ProductMatrix, split_feature

INGREDIENTS, ADDITIVES, CATEGORIES, NAME, NUTRIENTS = (EVIDENCE.index(e) for e in EVIDENCE)


@dataclass(frozen=True)
class Slice:
    """A way to hide evidence: families (or nutrients) removed, or half of each product's
    ingredient tags."""

    name: str
    description: str
    hide: tuple[str, ...] = ()
    half_ingredients: bool = False
    needs: str | None = None
    """Evidence a product must still carry to be in the slice (nutrients, for the products
    known by their name and nutrients)."""


SLICES: dict[str, Slice] = {
    s.name: s
    for s in (
        Slice("as_is", "the test products as they are"),
        Slice(
            "no_categories",
            "categories removed (as OFF's missing_category products)",
            hide=("categories",),
        ),
        Slice(
            "no_ingredients",
            "ingredients and additives removed: categories and name only (as OFF's "
            "missing_ingredients products)",
            hide=("ingredients", "additives"),
        ),
        Slice(
            "half_ingredients",
            "half of each product's ingredient tags removed, the ingredients marked partly "
            "unknown (as OFF's too_many_unknown_ingredients products)",
            half_ingredients=True,
        ),
        Slice("no_additives", "additives removed", hide=("additives",)),
        Slice(
            "name_nutrients",
            "only the product name and its nutrients (as OFF's missing_ingredients products "
            "without categories that carry a nutrition table)",
            hide=FAMILIES,
            needs="nutrients",
        ),
        Slice(
            "name_only",
            "only the product name (as OFF's missing_ingredients products without categories "
            "nor nutrients)",
            hide=(*FAMILIES, "nutrients"),
        ),
    )
}

# Evidence states, each served by its own expert. A state is what a product carries, so a
# product is routed by its evidence alone; each state's training products are the training
# rows hidden by its slice. `no_additives` trains none: a product without additives looks like
# one whose additives were hidden, and taught as such, the complete products' expert would
# doubt every product without a marker.
STATES = ("complete", "no_categories", "partial", "no_ingredients", "nutrients", "name_only")
STATE_SLICE: dict[str, str] = {
    "complete": "as_is",
    "no_categories": "no_categories",
    "partial": "half_ingredients",
    "no_ingredients": "no_ingredients",
    "nutrients": "name_nutrients",
    "name_only": "name_only",
}


def states(matrix: ProductMatrix) -> np.ndarray:
    """Index into STATES of each product's evidence state.

    Additives count as ingredients (OFF reads them off the ingredients text). Ingredients without
    categories go to `no_categories` whether partial or not (OFF names a product without
    categories `missing_category`), and a product with neither ingredients nor categories to
    `nutrients` if it carries some, else to `name_only`.
    """
    ev = matrix.evidence
    ingredients = ev[:, INGREDIENTS] | ev[:, ADDITIVES]
    categories = ev[:, CATEGORIES]
    state = np.full(len(matrix), STATES.index("name_only"), dtype=np.int8)
    state[~ingredients & ~categories & ev[:, NUTRIENTS]] = STATES.index("nutrients")
    state[~ingredients & categories] = STATES.index("no_ingredients")
    state[ingredients & ~categories] = STATES.index("no_categories")
    state[ingredients & categories & matrix.partial] = STATES.index("partial")
    state[ingredients & categories & ~matrix.partial] = STATES.index("complete")
    return state


def evidence_labels(matrix: ProductMatrix) -> list[list[str]]:
    """Per product, the names (EVIDENCE) of what it carries."""
    return [[EVIDENCE[k] for k in np.flatnonzero(row)] for row in matrix.evidence]


def has_evidence(matrix: ProductMatrix) -> np.ndarray:
    """Products that carry anything at all (a tag of some family, a name, or nutrients)."""
    return matrix.evidence.any(axis=1)


def known_evidence(matrix: ProductMatrix) -> np.ndarray:
    """Products carrying something the model reads: a tag in its vocabulary (OFF's markers always
    are), a name, or nutrients. Tags outside the vocabulary count as evidence (`has_evidence`)
    but tell the model nothing: a product with only those has no known evidence."""
    tags = np.asarray(matrix.X.getnnz(axis=1)) > 0
    return tags | matrix.evidence[:, NAME] | matrix.evidence[:, NUTRIENTS]


def family_of_columns(features: list[str]) -> np.ndarray:
    """Index into EVIDENCE of each vocabulary column's family."""
    return np.array([EVIDENCE.index(split_feature(f)[0]) for f in features], dtype=np.int8)


def hide(matrix: ProductMatrix, name: str, *, seed: int = 0) -> ProductMatrix:
    """`matrix` with the evidence of slice `name` hidden. Half the ingredients: each product
    keeps a random half (rounded up) of its ingredient tags, the same for a given seed."""
    spec = SLICES[name]
    if not spec.hide and not spec.half_ingredients:
        return matrix
    X = matrix.X.copy()
    family = family_of_columns(matrix.features)[X.indices]
    drop = np.isin(family, [EVIDENCE.index(f) for f in spec.hide])
    evidence = matrix.evidence.copy()
    for f in spec.hide:
        evidence[:, EVIDENCE.index(f)] = False
    nutrients = matrix.nutrients
    if "nutrients" in spec.hide:
        nutrients = np.full_like(nutrients, np.nan)
    partial = matrix.partial
    if spec.half_ingredients:
        drop |= _half_of_ingredients(X, family == INGREDIENTS, seed)
        partial = partial | evidence[:, INGREDIENTS]
    X.data[drop] = 0
    X.eliminate_zeros()
    return replace(matrix, X=X, evidence=evidence, partial=partial, nutrients=nutrients)


def _half_of_ingredients(X, is_ingredient: np.ndarray, seed: int) -> np.ndarray:
    """Entries to drop: in each row, the lower half (rounded down) of its ingredient entries by
    a random key."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    entries = np.flatnonzero(is_ingredient)
    keys = np.random.default_rng(seed).random(len(entries))
    order = entries[np.lexsort((keys, rows[entries]))]
    per_row = np.bincount(rows[entries], minlength=X.shape[0])
    starts = np.cumsum(per_row) - per_row
    rank = np.arange(len(order)) - np.repeat(starts, per_row)
    drop = np.zeros(len(X.data), dtype=bool)
    drop[order[rank < np.repeat(per_row // 2, per_row)]] = True
    return drop


def population_weights(counts: Mapping[str, int]) -> dict[str, float]:
    """Slice weights like the unlabelled population: each state's share of the unlabelled food
    products that carry some evidence, given to the slice that hides evidence that way
    (`complete` to `as_is`, `partial` to `half_ingredients`, …; `no_additives` gets none).
    Equal weights over every slice when there is no such product."""
    total = sum(counts.get(state, 0) for state in STATES)
    if total == 0:
        return {name: 1 / len(SLICES) for name in SLICES}
    weights = {name: 0.0 for name in SLICES}
    for state, slice_name in STATE_SLICE.items():
        weights[slice_name] = counts.get(state, 0) / total
    return weights


SLICE_SEED = 0


def slice_rows(test: ProductMatrix, slice_name: str, seed: int = SLICE_SEED) -> ProductMatrix:
    """The test products with the slice's evidence hidden, those still carrying some (and the
    evidence the slice needs)."""
    masked = hide(test, slice_name, seed=seed)
    keep = has_evidence(masked)
    needs = SLICES[slice_name].needs
    if needs is not None:
        keep &= masked.evidence[:, EVIDENCE.index(needs)]
    return masked.take(np.flatnonzero(keep))
