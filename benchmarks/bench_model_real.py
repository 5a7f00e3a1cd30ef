"""Benchmark the model where it is used: real OFF products of sources it never saw, with their
evidence cut the way OFF's blank products lack it.

`data/real/products.jsonl.gz` holds real products from 18 public sources, each one shop,
country or language. The labelled ones are split into `--folds` groups of whole sources
(scikit-learn's GroupKFold); each fold's model is trained as `nova_model` trains it (the same
candidates, grids, validation carve-out and calibration) on the other sources (and the embedded
sample, unless `--no-sample`), then judged on the fold's sources. Every product is scored once,
by the model that never saw its source; figures are over all of them.

Beside the model, on the same rows and evidence: OFF's rules on the evidence left, the
reference (naive Bayes on ingredients), the majority group, a plain logistic regression on
tags + name n-grams + nutrient thresholds fitted on the products as they are, and gradient
boosting on the nutrients alone. `mix` weighs the slices like real_dev's own 2,440 blank
products. Then coverage and precision of `confident` answers, per slice and per group.

`--sample-only` trains on the embedded sample alone instead, and scores every real product:
what the model knows without the real products `feature_matrix` adds to a dump's own.

Usage: python benchmarks/bench_model_real.py [--folds 5] [--no-sample | --sample-only]
       [--workers 2]
Prints the tables (Markdown) and a final `BENCH_JSON {...}` line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from nova_assets.lib.evaluation.evaluate import rules_answers  # noqa: E402
from nova_assets.lib.ingest.dump import fetch_dump  # noqa: E402
from nova_assets.lib.markdown import table  # noqa: E402
from nova_assets.lib.ml.calibration import GROUPS, PRECISION_TARGET, choose_threshold  # noqa: E402
from nova_assets.lib.ml.classifiers import NUTRIENT_SCALE, predict  # noqa: E402
from nova_assets.lib.ml.evidence import (  # noqa: E402
    SLICES,
    STATES,
    population_weights,
    slice_rows,
    states,
)
from nova_assets.lib.ml.feature_matrix import (  # noqa: E402
    ProductMatrix,
    build_vocabulary,
    labelled_rows_sql,
    product_matrix,
)
from nova_assets.lib.ml.metrics import at_thresholds, classification_metrics, majority_class  # noqa: E402
from nova_assets.lib.ml.training import train  # noqa: E402
from nova_assets.lib.nutrients import NUTRIENT_COLUMNS, nutrient_design  # noqa: E402
from nova_assets.lib.paths import REAL_PRODUCTS, SAMPLE_DUMP  # noqa: E402
from nova_assets.lib.warehouse.products import ingest_products  # noqa: E402
from nova_assets.lib.warehouse.real_products import load_real_products  # noqa: E402
from nova_assets.lib.warehouse.split import validation_mask  # noqa: E402

CANDIDATES = [
    "reference_bernoulli_nb",
    "marker_logistic_regression",
    "evidence_logistic_regression",
]
GRIDS = {"C": [0.3, 1.0], "alpha": [0.1, 1.0], "max_depth": [12, 24], "max_iter": [2000]}
SAMPLE_SOURCE = "embedded sample"
SAMPLE_CODES_SQL = f"SELECT code FROM products WHERE source = '{SAMPLE_SOURCE}'"
METHODS = ("model", "rules", "reference", "majority", "plain_lr", "gbm_nutrients")


def load(con: duckdb.DuckDBPyConnection, with_sample: bool, scratch: Path) -> None:
    """The real products, and the embedded sample (a source that is always trained on)."""
    load_real_products(con, REAL_PRODUCTS)
    if not with_sample:
        return
    sample = duckdb.connect(str(scratch / "sample.duckdb"))
    ingest_products(sample, fetch_dump(str(SAMPLE_DUMP), scratch / "raw"))
    sample.close()
    con.execute(f"ATTACH '{scratch / 'sample.duckdb'}' AS sample (READ_ONLY)")
    columns = [r[0] for r in con.execute("DESCRIBE products").fetchall() if r[0] != "source"]
    con.execute(
        f"INSERT INTO products BY NAME SELECT {', '.join(columns)}, '{SAMPLE_SOURCE}' AS source "
        "FROM sample.products WHERE code NOT IN (SELECT code FROM products)"
    )


def unlabelled_weights(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Slice weights like real_dev's own blank products (by evidence state)."""
    blank = product_matrix(
        con,
        "SELECT rowid AS row_key, code, ingredients_tags, additives_tags, categories_tags, "
        f"product_name, {', '.join(NUTRIENT_COLUMNS)} FROM products "
        f"WHERE nova_group IS NULL AND source <> '{SAMPLE_SOURCE}'",
        [],
    )
    keep = blank.evidence.any(axis=1)
    counts = np.bincount(states(blank)[keep], minlength=len(STATES))
    return population_weights({s: int(c) for s, c in zip(STATES, counts, strict=True)})


def plain_design(matrix: ProductMatrix) -> sparse.csr_matrix:
    return sparse.hstack(
        [matrix.X, matrix.name_vectors(), nutrient_design(matrix.nutrients, NUTRIENT_SCALE)],
        format="csr",
    )


def fold_answers(
    con: duckdb.DuckDBPyConnection, weights: dict[str, float], workers: int
) -> dict[str, dict[str, np.ndarray]]:
    """Per slice: the test rows' labels, and each method's answers (the model's probability and
    confidence too), for the fold whose sources `test_split` marks as test."""
    features = build_vocabulary(con, 2)
    train_m = product_matrix(con, labelled_rows_sql("train"), features)
    test_m = product_matrix(con, labelled_rows_sql("test"), features)
    # As `nova_model` sees them: the sample is the dump, the real products a corpus beside it.
    sample = {c for (c,) in con.execute(SAMPLE_CODES_SQL).fetchall()}
    train_m = replace(train_m, corpus=np.array([c not in sample for c in train_m.codes]))
    trained = train(
        CANDIDATES,
        GRIDS,
        train_m,
        validation_mask(train_m.codes, 20),
        weights,
        tuning_rows=30_000,
        fit_rows=150_000,
        validation_rows=60_000,
        workers=workers,
    )
    plain = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    plain.fit(plain_design(train_m), train_m.labels)
    gbm = HistGradientBoostingClassifier(random_state=0, class_weight="balanced")
    gbm.fit(train_m.nutrients, train_m.labels)
    majority = majority_class(train_m.labels)
    sources = dict(con.execute("SELECT code, source FROM products").fetchall())
    out = {}
    for name in SLICES:
        rows = slice_rows(test_m, name)
        if len(rows) == 0:
            continue
        model = predict(trained.model, rows)
        out[name] = {
            "labels": rows.labels,
            "codes": rows.codes,
            "model": model.groups,
            "probability": model.probability,
            "confident": model.confident,
            "state": states(rows),
            "source": np.array([sources.get(c, SAMPLE_SOURCE) for c in rows.codes]),
            "rules": rules_answers(rows).groups,
            "reference": predict(trained.reference, rows).groups,
            "majority": np.full(len(rows), majority),
            "plain_lr": plain.predict(plain_design(rows)),
            "gbm_nutrients": gbm.predict(rows.nutrients),
        }
    out["_chosen"] = f"{trained.chosen.kind} {trained.chosen.params}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-sample", action="store_true")
    parser.add_argument(
        "--sample-only",
        action="store_true",
        help="train on the embedded sample alone and score every real product: a model that "
        "learns from no real product of data/real/",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench-model-real-"))
    con = duckdb.connect(str(scratch / "real.duckdb"))
    load(con, not args.no_sample, scratch)
    weights = unlabelled_weights(con)
    labelled = con.execute(
        f"SELECT code, source FROM products WHERE nova_group IS NOT NULL "
        f"AND source <> '{SAMPLE_SOURCE}' ORDER BY code"
    ).fetchall()
    codes = np.array([c for c, _ in labelled])
    sources = np.array([s for _, s in labelled])
    pooled: dict[str, dict[str, list]] = {}
    chosen = []
    splits = (
        [(None, np.arange(len(codes)))]
        if args.sample_only
        else GroupKFold(args.folds).split(codes, groups=sources)
    )
    for fold, (_, test_index) in enumerate(splits):
        con.execute("CREATE OR REPLACE TABLE test_split (code VARCHAR, split VARCHAR)")
        con.execute("INSERT INTO test_split SELECT code, 'train' FROM products")
        test_codes = codes[test_index].tolist()
        con.execute(
            "UPDATE test_split SET split = 'test' WHERE code IN (SELECT unnest(?))", [test_codes]
        )
        answers = fold_answers(con, weights, args.workers)
        chosen.append(answers.pop("_chosen"))
        print(
            f"fold {fold + 1}: {len(test_codes)} test products from "
            f"{len(set(sources[test_index]))} sources; chose {chosen[-1]}",
            file=sys.stderr,
        )
        for name, values in answers.items():
            for key, value in values.items():
                pooled.setdefault(name, {}).setdefault(key, []).append(value)
    results = {
        name: {k: np.concatenate(v) for k, v in values.items()} for name, values in pooled.items()
    }
    report = summarise(results, weights)
    report["chosen"] = chosen
    report["seconds"] = round(time.perf_counter() - began, 1)
    print_tables(report)
    print("BENCH_JSON " + json.dumps(report))
    return 0


def summarise(results: dict[str, dict[str, np.ndarray]], weights: dict[str, float]) -> dict:
    slices = {}
    for name, r in results.items():
        y = r["labels"]
        accepted = at_thresholds(y, r["model"], r["confident"])
        slices[name] = {
            "rows": int(len(y)),
            **{m: classification_metrics(y, r[m])["macro_f1"] for m in METHODS},
            "model_accuracy": float(np.mean(r["model"] == y)),
            "confident_share": accepted["coverage"],
            "confident_precision": accepted["precision"],
            "confident_precision_by_group": {
                g: c["precision"] for g, c in accepted["per_class"].items()
            },
            **confidence_bounds(r),
        }
    total = sum(weights.get(n, 0.0) for n in slices) or 1.0
    mix = {
        m: sum(weights.get(n, 0.0) * s[m] for n, s in slices.items()) / total
        for m in (*METHODS, "confident_share", "ceiling_share", "other_sources_share")
    }
    return {"slices": slices, "mix": mix, "weights": weights}


def confidence_bounds(r: dict[str, np.ndarray]) -> dict[str, float | None]:
    """What any threshold on these probabilities could do, per evidence state and answered
    group as the model sets them: `ceiling`, thresholds fitted on these very products (the
    most coverage at the target precision that the probabilities' ranking allows, an upper
    bound no honest threshold reaches); `other_sources`, each source's thresholds fitted on
    every other source's products (calibration out of source: how thresholds travel)."""
    y, answers, probability = r["labels"], r["model"], r["probability"]

    def accepted(fit: np.ndarray, group: int) -> np.ndarray:
        """Every product at or above the threshold that the `fit` rows give `group`."""
        right = y[fit] == group
        return probability >= choose_threshold(
            probability[fit], right, PRECISION_TARGET, unmeasured=np.inf
        )

    ceiling = np.zeros(len(y), dtype=bool)
    other = np.zeros(len(y), dtype=bool)
    for state in np.unique(r["state"]):
        for group in GROUPS:
            cell = (r["state"] == state) & (answers == group)
            ceiling |= cell & accepted(cell, group)
            for source in np.unique(r["source"][cell]):
                held_out = r["source"] == source
                other |= cell & held_out & accepted(cell & ~held_out, group)
    bounds = {}
    for name, mask in (("ceiling", ceiling), ("other_sources", other)):
        scores = at_thresholds(y, answers, mask)
        bounds[f"{name}_share"] = scores["coverage"]
        bounds[f"{name}_precision"] = scores["precision"]
    return bounds


def print_tables(report: dict) -> None:
    header = [
        "slice",
        "products",
        *METHODS,
        "model - rules",
        "model - best short baseline",
        "confident share",
        "confident precision",
    ]
    rows = []
    for name, s in [*report["slices"].items(), ("mix (real blank products' weights)", None)]:
        s = s or {**report["mix"], "rows": "", "confident_precision": None}
        short = max(s["plain_lr"], s["gbm_nutrients"])
        precision = s["confident_precision"]
        rows.append(
            [
                name,
                str(s["rows"]),
                *(f"{s[m]:.3f}" for m in METHODS),
                f"{s['model'] - s['rules']:+.3f}",
                f"{s['model'] - short:+.3f}",
                f"{s['confident_share']:.0%}",
                _shown(precision),
            ]
        )
    print("\n".join(table(header, rows)))
    print()
    by_group = [
        [name, *(_shown(s["confident_precision_by_group"][str(g)]) for g in GROUPS)]
        for name, s in report["slices"].items()
    ]
    print("\n".join(table(["slice", *(f"confident {g} precision" for g in GROUPS)], by_group)))
    print()
    bounds = [
        [
            name,
            f"{s['confident_share']:.0%} / {_shown(s['confident_precision'])}",
            f"{s['ceiling_share']:.0%} / {_shown(s['ceiling_precision'])}",
            f"{s['other_sources_share']:.0%} / {_shown(s['other_sources_precision'])}",
        ]
        for name, s in report["slices"].items()
    ]
    mix = report["mix"]
    bounds.append(
        [
            "mix",
            *(f"{mix[k]:.0%}" for k in ("confident_share", "ceiling_share", "other_sources_share")),
        ]
    )
    header = ["slice", "confident", "ceiling (thresholds fit here)", "thresholds of other sources"]
    print("\n".join(table(header, bounds)))


def _shown(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
