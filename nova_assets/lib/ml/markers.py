"""OFF's NOVA markers among the columns of a tag vocabulary, for the model and the `rules`
baseline alike: both decide the group with `nova_rules.rules_group`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from nova_assets.lib.ml.feature_matrix import FAMILIES, WATER_FEATURES, split_feature
from nova_assets.lib.warehouse.nova_rules import marker_group, rules_group

MARKER_GROUPS = (2, 3, 4)
ADDITIVES_IN_INGREDIENTS = "additives-in-ingredients"
"""E-numbers among the ingredient tags that are additive markers. OFF's rules read additives
from `additives_tags` only; the model also reads them here, so a product whose additives are
missing keeps their evidence (OFF writes `en:e322` among the ingredients too)."""


class Markers:
    """Which columns of `features` are markers, of which family and group."""

    def __init__(self, features: Sequence[str]):
        split = [split_feature(f) for f in features]
        self.groups = np.array([marker_group(*s) or 0 for s in split], dtype=np.int8)
        families = np.array([family for family, _ in split], dtype=object)
        in_ingredients = np.array(
            [
                marker_group("additives", tag) or 0 if family == "ingredients" else 0
                for family, tag in split
            ],
            dtype=np.int8,
        )
        self.indicator = np.zeros((len(features), len(self.columns())), np.float32)
        for col, (family, group) in enumerate(self.columns()):
            if family == ADDITIVES_IN_INGREDIENTS:
                self.indicator[:, col] = in_ingredients == group
            else:
                self.indicator[:, col] = (families == family) & (self.groups == group)

        index = {f: i for i, f in enumerate(features)}
        self.waters = [index[f] for f in WATER_FEATURES[:1] if f in index]
        self.flavoured_waters = [index[f] for f in WATER_FEATURES[1:] if f in index]

    def plain_water(self, X: sparse.csr_matrix) -> np.ndarray:
        """Rows filed under en:waters and not under a flavoured water: OFF keeps such a product
        in group 1 when it has no ingredients."""
        if not self.waters:
            return np.zeros(X.shape[0], dtype=bool)
        water = np.asarray(X[:, self.waters].sum(axis=1)).ravel() > 0
        if self.flavoured_waters:
            water &= np.asarray(X[:, self.flavoured_waters].sum(axis=1)).ravel() == 0
        return water

    @staticmethod
    def columns() -> list[tuple[str, int]]:
        """(family, group) of each "has a marker" column, in order: OFF's, then the model's own."""
        return [(family, group) for family in FAMILIES for group in MARKER_GROUPS] + [
            (ADDITIVES_IN_INGREDIENTS, 3),
            (ADDITIVES_IN_INGREDIENTS, 4),
        ]

    def present(self, X: sparse.csr_matrix) -> np.ndarray:
        """Per row and (family, group) of `columns()`: whether the row has such a marker."""
        return np.asarray(X @ self.indicator) > 0

    def highest(self, X: sparse.csr_matrix, present: np.ndarray | None = None) -> np.ndarray:
        """Per row, the group OFF's markers give (`rules_group`; 1 when there is none)."""
        present = self.present(X) if present is None else present
        offs = present[:, : len(FAMILIES) * len(MARKER_GROUPS)]
        by_group = offs.reshape(len(offs), len(FAMILIES), len(MARKER_GROUPS)).any(axis=1)
        return rules_group(by_group[:, 0], by_group[:, 1], by_group[:, 2]).astype(np.int8)

    @staticmethod
    def feature_names() -> list[str]:
        return [f"markers:{family}:group-{g}" for family, g in Markers.columns()] + [
            f"markers:highest:group-{g}" for g in range(1, 5)
        ]


def rules_prediction(features: Sequence[str], X: sparse.csr_matrix) -> np.ndarray:
    """OFF's rules on whatever evidence each row has: markers only, no guard (the `rules`
    baseline, `nova_rules.marker_nova_group` on a matrix)."""
    return Markers(features).highest(X)
