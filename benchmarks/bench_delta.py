"""Benchmark a day of OFF changes: one delta applied against a full refresh on the day-later dump.

Setup, not timed, in a process of its own: a generated base dump of ROWS products
(`generate_dump`), ingested and split, a model fitted on its labelled train rows, and every
blank product scored, as the graph would leave them; then a day of changes to it
(`generate_dump.write_delta`): `--share` of the products, `--new-share` of those new codes and
the rest modified, as OFF's delta file and as the day-later full dump. Then, each in its own
process (so its peak RSS is its own), on its own copy of that warehouse:

- delta: the job's lib calls, from the delta file to fresh predictions: `fetch_delta` from the
  folder, then `apply_delta` (upsert, split, the touched codes rescored, recorded) in one
  transaction;
- full: a full refresh of the same tables on the day-later dump: `ingest_products`,
  `extend_test_split`, `write_predictions` (no retraining: `all_assets` would also rebuild the
  features and refit the model, so a real full refresh costs more than this).

Both must end with the same `products` and the same predicted groups. Peak RSS is taken when
the timed work ends (before the checks, which read every row), with the part already reached
once the model is loaded. Prints a Markdown table
and a final `BENCH_JSON {...}` line.

Usage: python benchmarks/bench_delta.py [--rows 1000000] [--share 0.01] [--new-share 0.2]
       [--threads N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_ingest import RESULT_PREFIX, _cpu_seconds, _peak_rss_mb, child_result  # noqa: E402
from bench_predictions import JSON_PREFIX, MEMORY_LIMIT  # noqa: E402

from nova_assets.lib.warehouse import default_threads  # noqa: E402

METHODS = ("delta", "full")
KIND = "evidence_logistic_regression"
TRAIN_ROWS = 200_000
CONTENT = "SELECT count(*), hash(list(t ORDER BY t)) FROM (SELECT * EXCLUDE (dump_sha256) FROM products) t"
GROUPS = (
    "SELECT count(*), hash(list((code, predicted_nova_group, probability) ORDER BY code)) "
    "FROM nova_predictions"
)


def _connect(database: Path, threads: int):
    from nova_assets.lib.warehouse import connect

    return connect(
        database, memory_limit=MEMORY_LIMIT, temp_directory=database.parent / "tmp", threads=threads
    )


def prepare(workdir: Path, rows: int, share: float, new_share: float, threads: int) -> dict:
    """The base warehouse with its model and predictions, and the day of changes."""
    import numpy as np
    from generate_dump import generate_dump, write_delta

    from nova_assets.lib.dump import Dump
    from nova_assets.lib.features import build_vocabulary, labelled_rows_sql, product_matrix
    from nova_assets.lib.models import fit_pipeline
    from nova_assets.lib.predictions import write_predictions
    from nova_assets.lib.products import ingest_products
    from nova_assets.lib.split import extend_test_split, validation_mask

    base = workdir / "base.tsv"
    generate_dump(rows, base, seed=1)
    dump = Dump(str(base), "base", base.stat().st_size, str(base), False)
    with _connect(workdir / "base.duckdb", threads) as con:
        stats = ingest_products(con, dump)
        extend_test_split(con)
        features = build_vocabulary(con, min_count=2)
        train = product_matrix(con, labelled_rows_sql("train"), features)
        validation = validation_mask(train.codes, 20)
        fit_rows = np.random.default_rng(0).permutation(np.flatnonzero(~validation))[:TRAIN_ROWS]
        fitted = train.take(np.sort(fit_rows))
        pipeline = fit_pipeline(KIND, fitted, fitted.labels)
        held_out = train.take(np.flatnonzero(validation))
        pipeline.named_steps["classifier"].calibrate(held_out, held_out.labels)
        write_predictions(con, pipeline, model_version=1)
    with (workdir / "pipeline.pkl").open("wb") as handle:
        pickle.dump(pipeline, handle)
    changed = round(stats.products * share)
    new = round(changed * new_share)
    day = write_delta(base, workdir / "day", changed - new, new, seed=2)
    base.unlink()
    return {
        "products": stats.products,
        "modified": len(day.modified),
        "new": len(day.new),
        "delta": day.delta.name,
        "delta_bytes": day.delta.stat().st_size,
        "later_bytes": day.later.stat().st_size,
    }


def _pipeline(workdir: Path):
    """The model `prepare` fitted; a pickle this benchmark wrote itself a moment ago."""
    with (workdir / "pipeline.pkl").open("rb") as handle:
        return pickle.load(handle)  # noqa: S301


def _fresh_copy(workdir: Path, method: str) -> Path:
    database = workdir / method / "warehouse.duckdb"
    database.parent.mkdir(exist_ok=True)
    shutil.copyfile(workdir / "base.duckdb", database)
    return database


def run_delta(workdir: Path, threads: int) -> dict[str, Any]:
    from nova_assets.lib.delta_apply import apply_delta
    from nova_assets.lib.deltas import fetch_delta, list_deltas
    from nova_assets.lib.predictions import rescore_codes

    pipeline = _pipeline(workdir)
    loaded = _peak_rss_mb()
    database = _fresh_copy(workdir, "delta")
    with _connect(database, threads) as con:
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        (delta,) = list_deltas(str(workdir / "day"))
        file = fetch_delta(str(workdir / "day"), delta, database.parent / "raw")
        stats = apply_delta(con, file, lambda c, codes: rescore_codes(c, pipeline, 1, codes))
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        return _measured(con, seconds, cpu, loaded, stats.products, stats.predictions)


def run_full(workdir: Path, threads: int) -> dict[str, Any]:
    from nova_assets.lib.dump import Dump
    from nova_assets.lib.predictions import write_predictions
    from nova_assets.lib.products import ingest_products
    from nova_assets.lib.split import extend_test_split

    pipeline = _pipeline(workdir)
    loaded = _peak_rss_mb()
    database = _fresh_copy(workdir, "full")
    later = workdir / "day" / "later.tsv"
    dump = Dump(str(later), "later", later.stat().st_size, str(later), False)
    with _connect(database, threads) as con:
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        stats = ingest_products(con, dump)
        extend_test_split(con)
        scored = write_predictions(con, pipeline, model_version=1)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        return _measured(con, seconds, cpu, loaded, stats.products, scored.rows)


def _measured(
    con, seconds: float, cpu: float, loaded: float, products: int, predictions: int
) -> dict[str, Any]:
    """A path's figures, its peak RSS taken before the checks, which read every row."""
    peak = _peak_rss_mb()
    content, groups = con.execute(CONTENT).fetchone(), con.execute(GROUPS).fetchone()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "model_loaded_rss_mb": loaded,
        "peak_rss_mb": peak,
        "products_written": products,
        "predictions_written": predictions,
        "products_hash": list(content),
        "groups_hash": list(groups),
    }


RUNNERS = {"delta": run_delta, "full": run_full}


def format_table(report: dict[str, Any]) -> str:
    headers = ["path", "products written", "predictions written", "seconds", "CPU s"]
    headers += ["peak RSS MB", "of which model loaded MB"]
    rows = [headers, ["---"] * len(headers)]
    for method, r in report["methods"].items():
        rows.append(
            [
                method,
                f"{r['products_written']:,}",
                f"{r['predictions_written']:,}",
                f"{r['seconds']:.2f}",
                f"{r['cpu_seconds']:.2f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['model_loaded_rss_mb']:.0f}",
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def benchmark(rows: int, share: float, new_share: float, threads: int, workdir: Path) -> dict:
    options = ["--rows", str(rows), "--share", str(share), "--new-share", str(new_share)]
    options += ["--threads", str(threads), "--workdir", str(workdir)]
    script = str(Path(__file__).resolve())
    print("preparing base warehouse, model and delta ...", file=sys.stderr, flush=True)
    prepared = child_result("prepare", [sys.executable, script, *options, "--child", "prepare"])
    methods = {}
    for method in METHODS:
        print(f"running {method} ...", file=sys.stderr, flush=True)
        methods[method] = child_result(
            method, [sys.executable, script, *options, "--child", method]
        )
    delta, full = methods["delta"], methods["full"]
    return {
        "rows": rows,
        "threads": threads,
        "cpus": os.cpu_count(),
        **prepared,
        "methods": methods,
        "same_products": delta["products_hash"] == full["products_hash"],
        "same_predictions": delta["groups_hash"] == full["groups_hash"],
        "full_vs_delta_speedup": full["seconds"] / delta["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; `--child` is the internal per-step mode the parent starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="products in the base dump")
    parser.add_argument("--share", type=float, default=0.01, help="share of products changed")
    parser.add_argument("--new-share", type=float, default=0.2, help="share of changes new")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (all CPUs)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (kept)")
    parser.add_argument("--child", choices=("prepare", *METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()
    if args.child:
        if args.child == "prepare":
            result = prepare(args.workdir, args.rows, args.share, args.new_share, threads)
        else:
            result = RUNNERS[args.child](args.workdir, threads)
        result.setdefault("peak_rss_mb", _peak_rss_mb())
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_delta_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = benchmark(args.rows, args.share, args.new_share, threads, workdir.resolve())
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"base {report['products']:,} products; delta {report['delta']} "
        f"({report['delta_bytes']:,} bytes): {report['modified']:,} modified, "
        f"{report['new']:,} new; threads={threads}"
    )
    print(format_table(report))
    print(f"full refresh / delta: {report['full_vs_delta_speedup']:.1f}x")
    print(
        f"same products: {report['same_products']}; same predictions: {report['same_predictions']}"
    )
    print(JSON_PREFIX + json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
