"""Drift between the newest dump and the one measured before it, set-wise in DuckDB: class
shares, vocabulary, changed labels and the champion on them. What is kept of each dump for the
next comparison is in drift_history.py.

A dump is never loaded into Python: only the products whose label changed are, to be scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
from sklearn.pipeline import Pipeline

from nova_assets.lib.database import sql_literal, table_exists
from nova_assets.lib.drift.history import ensure_tables, previous_measured, record
from nova_assets.lib.ml.calibration import GROUPS
from nova_assets.lib.ml.classifiers import predict
from nova_assets.lib.ml.feature_matrix import FAMILIES, product_matrix, tag_pairs_sql

EXAMPLES = 5
"""New and vanished tags shown per family (the most frequent first)."""


@dataclass(frozen=True)
class Profile:
    """One dump as drift sees it: product counts, class shares and vocabulary sizes."""

    dump_sha256: str
    products: int
    labelled: int
    shares: dict[int, float]
    """Share of each group among labelled products (all 0 when none is labelled)."""
    vocabulary: dict[str, int]
    """Tags per family carried by at least `min_count` products."""

    @property
    def labelled_share(self) -> float:
        return self.labelled / self.products if self.products else 0.0


@dataclass(frozen=True)
class VocabularyChange:
    """One family: a tag is new when it reaches `min_count` products now and was in none
    before, vanished when it had `min_count` before and is in none now (a tag that merely
    crosses the threshold is neither: that is sampling noise, not a new word)."""

    family: str
    previous: int
    current: int
    new: int
    vanished: int
    union: int
    new_examples: list[str]
    vanished_examples: list[str]


@dataclass(frozen=True)
class LabelChanges:
    """Products labelled in both dumps, and those whose group changed."""

    common_labelled: int
    changed: int
    transitions: dict[tuple[int, int], int]

    @property
    def share(self) -> float | None:
        return self.changed / self.common_labelled if self.common_labelled else None


@dataclass(frozen=True)
class Champion:
    """The model asked about changed labels: its registry version and the pipeline."""

    version: str
    pipeline: Pipeline


@dataclass(frozen=True)
class ChampionScore:
    """The champion on the products whose label changed (their new label is the truth), and
    on those of them in the test split, which no model has trained on."""

    version: str
    rows: int
    accuracy: float | None
    test_rows: int
    test_accuracy: float | None


@dataclass
class Drift:
    """The newest dump against the previous one measured (None for the first)."""

    current: Profile
    previous: Profile | None
    min_count: int
    vocabulary: list[VocabularyChange] = field(default_factory=list)
    labels: LabelChanges | None = None
    champion: ChampionScore | None = None
    champion_note: str = ""

    @property
    def class_share_distance(self) -> float | None:
        """Total variation distance between the class shares: half the sum of the absolute
        differences, 0 (same shares) to 1 (no group in common)."""
        if self.previous is None or not self.previous.labelled or not self.current.labelled:
            return None
        return 0.5 * sum(abs(self.current.shares[g] - self.previous.shares[g]) for g in GROUPS)

    @property
    def labelled_share_change(self) -> float | None:
        if self.previous is None:
            return None
        return self.current.labelled_share - self.previous.labelled_share

    @property
    def new_vocabulary(self) -> int | None:
        return sum(v.new for v in self.vocabulary) if self.previous else None

    @property
    def vanished_vocabulary(self) -> int | None:
        return sum(v.vanished for v in self.vocabulary) if self.previous else None

    @property
    def vocabulary_change_share(self) -> float | None:
        """New plus vanished tags over the tags of either vocabulary."""
        union = sum(v.union for v in self.vocabulary)
        if self.previous is None or not union:
            return None
        return (self.new_vocabulary + self.vanished_vocabulary) / union

    def figures(self) -> dict[str, Any]:
        """The numbers kept per dump in `nova_drift` (None where nothing was compared)."""
        score = self.champion
        return {
            "dump_sha256": self.current.dump_sha256,
            "previous_sha256": self.previous.dump_sha256 if self.previous else None,
            "min_count": self.min_count,
            "products": self.current.products,
            "labelled": self.current.labelled,
            "labelled_share": self.current.labelled_share,
            **{f"share_{g}": self.current.shares[g] for g in GROUPS},
            "vocabulary": sum(self.current.vocabulary.values()),
            "class_share_distance": self.class_share_distance,
            "labelled_share_change": self.labelled_share_change,
            "new_vocabulary": self.new_vocabulary,
            "vanished_vocabulary": self.vanished_vocabulary,
            "vocabulary_change_share": self.vocabulary_change_share,
            "common_labelled": self.labels.common_labelled if self.labels else None,
            "changed_labels": self.labels.changed if self.labels else None,
            "changed_label_share": self.labels.share if self.labels else None,
            "champion_version": score.version if score else None,
            "champion_rows": score.rows if score else None,
            "champion_accuracy": score.accuracy if score else None,
            "champion_test_rows": score.test_rows if score else None,
            "champion_test_accuracy": score.test_accuracy if score else None,
        }

    def details(self) -> dict[str, Any]:
        return {
            "vocabulary": [v.__dict__ for v in self.vocabulary],
            "transitions": {
                f"{a}->{b}": n
                for (a, b), n in (self.labels.transitions if self.labels else {}).items()
            },
            "champion_note": self.champion_note,
        }


def _profile(
    con: duckdb.DuckDBPyConnection,
    sha256: str,
    products: int,
    labels: str,
    tags: str,
    min_count: int,
) -> Profile:
    """Class shares from a (code, nova_group) relation, vocabulary from a (family, tag,
    products) relation."""
    counts = dict(con.execute(f"SELECT nova_group, count(*) FROM {labels} GROUP BY ALL").fetchall())
    labelled = sum(counts.values())
    sizes = dict(
        con.execute(
            f"SELECT family, count(*) FROM {tags} WHERE products >= ? GROUP BY ALL", [min_count]
        ).fetchall()
    )
    return Profile(
        dump_sha256=sha256,
        products=products,
        labelled=labelled,
        shares={g: counts.get(g, 0) / labelled if labelled else 0.0 for g in GROUPS},
        vocabulary={f: int(sizes.get(f, 0)) for f in FAMILIES},
    )


def _stage_current(con: duckdb.DuckDBPyConnection) -> tuple[str, int]:
    """Labels and tag counts of `products` into temp tables; returns its dump and size."""
    sha256, products = con.execute(
        "SELECT any_value(dump_sha256), count(*) FROM products"
    ).fetchone()
    if not products:
        raise ValueError("products is empty: materialize it on a dump first")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE drift_current_labels AS "
        "SELECT code, nova_group FROM products WHERE nova_group IS NOT NULL"
    )
    # One row per product, its tags de-duplicated, so a tag's count is count(*).
    rows = (
        "SELECT code AS row_key, "
        + ", ".join(f"list_distinct({f}_tags) AS {f}_tags" for f in FAMILIES)
        + " FROM products"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE drift_current_tags AS
        SELECT family, tag, count(*) AS products
        FROM ({tag_pairs_sql(rows)})
        WHERE tag IS NOT NULL AND tag <> ''
        GROUP BY ALL
        """
    )
    return sha256, products


def _vocabulary(
    con: duckdb.DuckDBPyConnection, previous: str, min_count: int
) -> list[VocabularyChange]:
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE drift_vocabulary AS
        SELECT family, tag, c.products AS now, p.products AS before
        FROM drift_current_tags c
        FULL JOIN (SELECT family, tag, products FROM drift_tags WHERE dump_sha256 = ?) p
            USING (family, tag)
        WHERE coalesce(c.products, 0) >= ? OR coalesce(p.products, 0) >= ?
        """,
        [previous, min_count, min_count],
    )
    counts = {
        r[0]: r[1:]
        for r in con.execute(
            """
            SELECT family, count(*) FILTER (before >= $1), count(*) FILTER (now >= $1),
                   count(*) FILTER (now >= $1 AND before IS NULL),
                   count(*) FILTER (before >= $1 AND now IS NULL), count(*)
            FROM drift_vocabulary GROUP BY ALL
            """,
            [min_count],
        ).fetchall()
    }
    examples: dict[tuple[str, str], list[str]] = {}
    for kind, condition, weight in (
        ("new", "now >= $1 AND before IS NULL", "now"),
        ("vanished", "before >= $1 AND now IS NULL", "before"),
    ):
        for family, tag in con.execute(
            f"""
            SELECT family, tag FROM drift_vocabulary WHERE {condition}
            QUALIFY row_number() OVER (PARTITION BY family ORDER BY {weight} DESC, tag) <= $2
            ORDER BY family, {weight} DESC, tag
            """,
            [min_count, EXAMPLES],
        ).fetchall():
            examples.setdefault((family, kind), []).append(tag)
    con.execute("DROP TABLE drift_vocabulary")
    changes = []
    for family in FAMILIES:
        before, now, new, vanished, union = counts.get(family, (0, 0, 0, 0, 0))
        changes.append(
            VocabularyChange(
                family,
                int(before),
                int(now),
                int(new),
                int(vanished),
                int(union),
                examples.get((family, "new"), []),
                examples.get((family, "vanished"), []),
            )
        )
    return changes


def _label_changes(con: duckdb.DuckDBPyConnection, previous: str) -> LabelChanges:
    """Same code labelled in both dumps; the changed ones are kept in `drift_changed`."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE drift_common AS
        SELECT c.code, p.nova_group AS before, c.nova_group AS now
        FROM drift_current_labels c JOIN drift_labels p ON p.code = c.code AND p.dump_sha256 = ?
        """,
        [previous],
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE drift_changed AS SELECT code FROM drift_common "
        "WHERE before <> now"
    )
    pairs = con.execute("SELECT before, now, count(*) FROM drift_common GROUP BY ALL").fetchall()
    con.execute("DROP TABLE drift_common")
    return LabelChanges(
        common_labelled=sum(n for _, _, n in pairs),
        changed=sum(n for a, b, n in pairs if a != b),
        transitions={(int(a), int(b)): int(n) for a, b, n in sorted(pairs) if a != b},
    )


CHANGED_ROWS_SQL = """
    SELECT p.rowid AS row_key, p.code, p.ingredients_tags, p.additives_tags, p.categories_tags,
           p.product_name, p.nova_group
    FROM products p JOIN drift_changed USING (code)
"""


def _score(con: duckdb.DuckDBPyConnection, champion: Champion) -> ChampionScore:
    """The champion's accuracy against the new labels of the products whose label changed."""
    features = list(champion.pipeline.named_steps["products"].features)
    matrix = product_matrix(con, CHANGED_ROWS_SQL, features)
    test_codes = np.array([], dtype=str)
    if table_exists(con, "test_split"):
        test_codes = np.asarray(
            [
                r[0]
                for r in con.execute(
                    "SELECT code FROM drift_changed JOIN test_split USING (code) "
                    "WHERE split = 'test'"
                ).fetchall()
            ],
            dtype=str,
        )
    if len(matrix) == 0:
        return ChampionScore(champion.version, 0, None, 0, None)
    right = predict(champion.pipeline, matrix).groups == matrix.labels
    in_test = np.isin(matrix.codes, test_codes)
    return ChampionScore(
        version=champion.version,
        rows=len(right),
        accuracy=float(right.mean()),
        test_rows=int(in_test.sum()),
        test_accuracy=float(right[in_test].mean()) if in_test.any() else None,
    )


def update_drift(
    con: duckdb.DuckDBPyConnection,
    *,
    min_count: int = 2,
    champion: Callable[[], Champion | None] | None = None,
) -> Drift:
    """Measure `products` against the dump measured before it, and record it.

    `champion` loads the model to score on changed labels; it is called only when some label
    changed. The dump's row in `nova_drift`, its labels and tag counts are written in one
    transaction, which also drops the snapshots of every dump but these two.
    """
    ensure_tables(con)
    sha256, products = _stage_current(con)
    current = _profile(
        con, sha256, products, "drift_current_labels", "drift_current_tags", min_count
    )
    before = previous_measured(con, sha256)
    drift = Drift(current=current, previous=None, min_count=min_count)
    if before is None:
        drift.champion_note = "no previous dump"
    else:
        previous = before["dump_sha256"]
        snapshot = f"WHERE dump_sha256 = {sql_literal(previous)}"
        drift.previous = _profile(
            con,
            previous,
            before["products"],
            f"(SELECT * FROM drift_labels {snapshot})",
            f"(SELECT * FROM drift_tags {snapshot})",
            min_count,
        )
        drift.vocabulary = _vocabulary(con, previous, min_count)
        drift.labels = _label_changes(con, previous)
        model = champion() if champion is not None and drift.labels.changed else None
        if not drift.labels.changed:
            drift.champion_note = "no label changed"
        elif model is None:
            drift.champion_note = "no champion model: not scored"
        else:
            drift.champion = _score(con, model)
        con.execute("DROP TABLE drift_changed")
    record(con, drift.figures(), drift.details())
    return drift
