"""Benchmark batch predictions: our `nova_predictions` path against the classic pandas way.

Setup, not timed, in a process of its own: the dump is ingested into a temp warehouse
(`ingest_products`), split, its vocabulary learned, and a model of `--kind` fitted on up to
`--train-rows` labelled train rows outside the validation carve-out, then calibrated on it.
Then each method answers every unlabelled food product with some evidence, in its own
subprocess (so its peak RSS is its own), `--repeats` times:

- ours: `write_predictions`, the asset's code: product matrix built in DuckDB, group,
  calibrated probability, confidence, evidence and top-3 reasons, written to `nova_predictions`
  in one transaction;
- reference: the classic way, and what a served model does: the rows fetched as pandas frames
  (tag lists, names) in chunks, `pipeline.predict` on each (the pipeline's own vectorizer), no
  probability, reasons or table, so it does less than ours.

Prints a table, ours/reference speedup and a final `BENCH_JSON {...}` line.

Usage: python benchmarks/bench_predictions.py DUMP [--kind evidence_logistic_regression]
       [--train-rows 200000] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_ingest import (  # noqa: E402
    RESULT_PREFIX,
    _cpu_seconds,
    _peak_rss_mb,
    child_result,
    dump_in_place,
)

from nova_assets.lib.database import default_threads  # noqa: E402

METHODS = ("ours", "reference")
REFERENCE_CHUNK_ROWS = 100_000
MEMORY_LIMIT = "4GB"
JSON_PREFIX = "BENCH_JSON "


def prepare(dump_path: Path, workdir: Path, kind: str, train_rows: int, threads: int) -> dict:
    """Warehouse and fitted model for the methods to share; returns what was built."""
    import numpy as np

    from nova_assets.lib.ml.classifiers import fit_pipeline
    from nova_assets.lib.ml.feature_matrix import (
        build_vocabulary,
        labelled_rows_sql,
        product_matrix,
    )
    from nova_assets.lib.warehouse.products import ingest_products
    from nova_assets.lib.warehouse.split import extend_test_split, validation_mask

    dump = dump_in_place(dump_path)
    with _warehouse(workdir, threads) as con:
        stats = ingest_products(con, dump)
        extend_test_split(con)
        features = build_vocabulary(con, min_count=2)
        train = product_matrix(con, labelled_rows_sql("train"), features)
    if len(train) == 0:
        raise SystemExit(f"{dump_path} has no labelled training product: nothing to fit")
    validation = validation_mask(train.codes, 20)
    fit_rows = np.random.default_rng(0).permutation(np.flatnonzero(~validation))[:train_rows]
    fitted = train.take(np.sort(fit_rows))
    pipeline = fit_pipeline(kind, fitted, fitted.labels)
    held_out = train.take(np.flatnonzero(validation))
    pipeline.named_steps["classifier"].calibrate(held_out, held_out.labels)
    rows = fit_rows
    with (workdir / "pipeline.pkl").open("wb") as handle:
        pickle.dump(pipeline, handle)
    return {"products": stats.products, "features": len(features), "train_rows": len(rows)}


def run_ours(workdir: Path, threads: int, repeats: int) -> dict[str, Any]:
    from nova_assets.lib.ml.batch_predictions import write_predictions

    pipeline = _pipeline(workdir)
    seconds, cpu = [], []
    with _warehouse(workdir, threads) as con:
        for _ in range(repeats):
            cpu_started, started = _cpu_seconds(), time.perf_counter()
            stats = write_predictions(con, pipeline, model_version=1)
            seconds.append(time.perf_counter() - started)
            cpu.append(_cpu_seconds() - cpu_started)
    return {
        "rows": stats.rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "by_group": {str(g): n for g, n in stats.by_group.items()},
    }


def run_reference(workdir: Path, threads: int, repeats: int) -> dict[str, Any]:
    import numpy as np

    from nova_assets.lib.database import connect
    from nova_assets.lib.ml.batch_predictions import UNLABELLED_SQL
    from nova_assets.lib.nutrients import as_model_input_sql

    pipeline = _pipeline(workdir)
    # A batch scores every product, as nova_predictions does: the refusal of a product the
    # model knows nothing of is the server's answer to a request, not a batch's.
    pipeline.named_steps["products"].set_params(refuse_unknown=False)
    seconds, cpu = [], []
    with connect(workdir / "warehouse.duckdb", read_only=True, threads=threads) as con:
        for _ in range(repeats):
            cpu_started, started = _cpu_seconds(), time.perf_counter()
            result = con.execute(
                f"SELECT code, ingredients_tags, additives_tags, categories_tags, product_name, "
                f"partial_ingredients, {as_model_input_sql()} FROM ({UNLABELLED_SQL})"
            )
            groups = []
            while len(frame := result.fetch_df_chunk(REFERENCE_CHUNK_ROWS // 2048)):
                groups.append(pipeline.predict(frame))
            predicted = np.concatenate(groups) if groups else np.array([], dtype=int)
            seconds.append(time.perf_counter() - started)
            cpu.append(_cpu_seconds() - cpu_started)
    found, counts = np.unique(predicted, return_counts=True)
    return {
        "rows": int(len(predicted)),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "by_group": {str(int(g)): int(n) for g, n in zip(found, counts, strict=True)},
    }


RUNNERS = {"ours": run_ours, "reference": run_reference}


def _warehouse(workdir: Path, threads: int):
    """The benchmark's warehouse, opened for writing as the assets open theirs."""
    from nova_assets.lib.database import connect

    return connect(
        workdir / "warehouse.duckdb",
        memory_limit=MEMORY_LIMIT,
        temp_directory=workdir / "duckdb_tmp",
        threads=threads,
    )


def _pipeline(workdir: Path):
    """The model `prepare` fitted; a pickle this benchmark wrote itself a moment ago."""
    with (workdir / "pipeline.pkl").open("rb") as handle:
        return pickle.load(handle)  # noqa: S301


def run_child(method: str, workdir: Path, options: list[str]) -> dict[str, Any]:
    """Start a fresh interpreter for `method` so its peak RSS is its own (Linux hands a
    parent's peak down through fork and exec, so the parent itself stays small)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        *options,
        "--child",
        method,
        "--workdir",
        str(workdir),
    ]
    return child_result(method, command)


def summarise(result: dict[str, Any]) -> None:
    """Best and median of the repeats: the best is the least disturbed by a noisy machine."""
    best, median = min(result["seconds"]), statistics.median(result["seconds"])
    result["best_seconds"], result["median_seconds"] = best, median
    result["rows_per_s_best"] = result["rows"] / best if best else 0.0
    result["rows_per_s_median"] = result["rows"] / median if median else 0.0


def format_table(results: dict[str, dict[str, Any]]) -> str:
    headers = ["method", "rows", "best s", "median s", "rows/s (best)", "rows/s (median)"]
    headers += ["CPU s (best)", "peak RSS MB"]
    rows = [headers, ["---"] * len(headers)]
    for method, r in results.items():
        rows.append(
            [
                method,
                f"{r['rows']:,}",
                f"{r['best_seconds']:.2f}",
                f"{r['median_seconds']:.2f}",
                f"{r['rows_per_s_best']:,.0f}",
                f"{r['rows_per_s_median']:,.0f}",
                f"{min(r['cpu_seconds']):.2f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def benchmark(
    dump_path: Path, kind: str, train_rows: int, repeats: int, threads: int
) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench_predictions_"))
    try:
        options = [str(dump_path), "--kind", kind, "--train-rows", str(train_rows)]
        options += ["--repeats", str(repeats), "--threads", str(threads)]
        print("preparing warehouse and model ...", file=sys.stderr, flush=True)
        prepared = run_child("prepare", scratch, options)
        results: dict[str, dict[str, Any]] = {}
        for method in METHODS:
            print(f"running {method} ...", file=sys.stderr, flush=True)
            results[method] = run_child(method, scratch, options)
            summarise(results[method])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ours, reference = results["ours"], results["reference"]
    return {
        "dump": str(dump_path),
        "kind": kind,
        "threads": threads,
        "cpus": os.cpu_count(),
        "repeats": repeats,
        **prepared,
        "methods": results,
        "same_groups": ours["by_group"] == reference["by_group"],
        "ours_vs_reference_speedup": reference["best_seconds"] / ours["best_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; `--child` is the internal per-method mode the parent starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path, nargs="?", help="OFF TSV dump, plain or .gz")
    parser.add_argument("--kind", default="evidence_logistic_regression", help="model kind")
    parser.add_argument("--train-rows", type=int, default=200_000, help="rows to fit on")
    parser.add_argument("--repeats", type=int, default=3, help="scorings per method")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (all CPUs)")
    parser.add_argument("--child", choices=("prepare", *METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()
    if args.child == "prepare":
        result = prepare(args.dump, args.workdir, args.kind, args.train_rows, threads)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.child:
        result = RUNNERS[args.child](args.workdir, threads, args.repeats)
        result["peak_rss_mb"] = _peak_rss_mb()
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    if args.dump is None or not args.dump.is_file():
        parser.error(f"{args.dump} is not a file")
    report = benchmark(args.dump.resolve(), args.kind, args.train_rows, args.repeats, threads)
    print(
        f"dump {report['dump']}: {report['products']:,} products; {args.kind} fitted on "
        f"{report['train_rows']:,} rows, {report['features']:,} features; threads={threads}"
    )
    print(format_table(report["methods"]))
    print(f"ours/reference speedup: {report['ours_vs_reference_speedup']:.2f}x")
    print(f"same predicted groups: {report['same_groups']}")
    print(JSON_PREFIX + json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
