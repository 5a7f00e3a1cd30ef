"""OFF's NOVA markers among the columns of a tag vocabulary, for the model and the `rules`
baseline alike: both decide the group with `nova_rules.rules_group`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from nova_assets.lib.features import FAMILIES, split_feature
from nova_assets.lib.nova_rules import marker_group, rules_group

MARKER_GROUPS = (2, 3, 4)


class Markers:
    """Which columns of `features` are markers, of which family and group."""

    def __init__(self, features: Sequence[str]):
        self.groups = np.array(
            [marker_group(*split_feature(f)) or 0 for f in features], dtype=np.int8
        )
        families = np.array([split_feature(f)[0] for f in features], dtype=object)
        self.indicator = np.zeros((len(features), len(FAMILIES) * len(MARKER_GROUPS)), np.float32)
        for col, (family, group) in enumerate(self.columns()):
            self.indicator[:, col] = (families == family) & (self.groups == group)

    @staticmethod
    def columns() -> list[tuple[str, int]]:
        """(family, group) of each "has a marker" column, in order."""
        return [(family, group) for family in FAMILIES for group in MARKER_GROUPS]

    def present(self, X: sparse.csr_matrix) -> np.ndarray:
        """Per row and (family, group): whether the row has such a marker."""
        return np.asarray(X @ self.indicator) > 0

    def highest(self, X: sparse.csr_matrix, present: np.ndarray | None = None) -> np.ndarray:
        """Per row, the group OFF's markers give (`rules_group`; 1 when there is none)."""
        present = self.present(X) if present is None else present
        by_group = present.reshape(len(present), len(FAMILIES), len(MARKER_GROUPS)).any(axis=1)
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
