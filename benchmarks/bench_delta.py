"""Benchmark a day of OFF changes: one delta applied, a full refresh and the classic script on
the day-later dump, and the JSONL export's ingest beside a bare DuckDB read, in one run.

Setup, not timed, in a process of its own: a generated base dump of ROWS products
(`generate_dump`), ingested and split, a model fitted on its labelled train rows, and every
blank product scored, as the graph would leave them; then a day of changes to it
(`generate_dump.write_delta`): `--share` of ROWS (10,000 at 1 M), `--new-share` of those new
codes and the rest modified, as OFF's delta file and as the day-later full dump. Then, each in its own
process, the delta and the full refresh on their own copy of that warehouse:

- delta: the job's lib calls, from the delta file to fresh predictions: `fetch_delta` from the
  folder, then `apply_delta` (upsert, split, the touched codes rescored, recorded) in one
  transaction;
- full: a full refresh of the same tables on the day-later dump: `ingest_products`,
  `extend_test_split`, `write_predictions` (no retraining: `all_assets` would also rebuild the
  features and refit the model, so a real full refresh costs more than this);
- classic: the classic script (classic.py, the one bench_pipeline runs) on the day-later dump:
  pandas reads it, a naive Bayes is trained, every blank product predicted;
- jsonl_floor and jsonl_ours: bench_ingest's bare `read_json` count and the `products` path on
  the day-later dump written as OFF's JSONL export (`--no-jsonl` leaves them out).

Delta and full must end with the same `products` and the same predictions (checked once their
processes ended). Seconds are the timed work (the model already loaded, the interpreter
started); peak RSS is the largest resident set of any process of the path, as GNU
`time -f %M` reports it (the process's `wait4`), in MiB. Prints a Markdown table, each path's
time and memory against the full refresh, and a final `BENCH_JSON {...}` line.

Usage: python benchmarks/bench_delta.py [--rows 1000000] [--share 0.01] [--new-share 0.2]
       [--threads N] [--workdir DIR] [--no-jsonl]
(a --workdir prepared by an earlier run with the same options is reused: the setup is untimed)
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_ingest import RESULT_PREFIX, _cpu_seconds  # noqa: E402
from bench_predictions import JSON_PREFIX  # noqa: E402

from nova_assets.lib.database import MEMORY_LIMIT, default_threads  # noqa: E402

METHODS = ("delta", "full", "classic")
CHECK_MEMORY_LIMIT = "8GB"
JSONL = ("jsonl_floor", "jsonl_ours")
"""bench_ingest's floor and ours, on the day-later dump as OFF's JSONL export."""
KIND = "evidence_logistic_regression"
TRAIN_ROWS = 200_000
CONTENT = "SELECT count(*), hash(list(t ORDER BY t)) FROM (SELECT * EXCLUDE (dump_sha256) FROM products) t"
GROUPS = (
    "SELECT count(*), hash(list((code, predicted_nova_group, probability) ORDER BY code)) "
    "FROM nova_predictions"
)


def _rss_mib() -> float:
    """This process's peak RSS so far, in MiB (Linux's KiB / 1024, as `time -f %M` / 1024)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _connect(database: Path, threads: int, read_only: bool = False):
    from nova_assets.lib.database import connect

    return connect(
        database,
        read_only=read_only,
        memory_limit=MEMORY_LIMIT,
        temp_directory=database.parent / "tmp",
        threads=threads,
    )


def prepare(
    workdir: Path, rows: int, share: float, new_share: float, threads: int, jsonl: bool
) -> dict:
    """The base warehouse with its model and predictions, the day of changes, and the day-later
    dump as OFF's JSONL export if `jsonl`."""
    import numpy as np
    from generate_dump import generate_dump, write_delta, write_jsonl

    from nova_assets.lib.ingest.dump import Dump
    from nova_assets.lib.ml.batch_predictions import write_predictions
    from nova_assets.lib.ml.classifiers import fit_pipeline
    from nova_assets.lib.ml.feature_matrix import (
        build_vocabulary,
        labelled_rows_sql,
        product_matrix,
    )
    from nova_assets.lib.warehouse.products import ingest_products
    from nova_assets.lib.warehouse.split import extend_test_split, validation_mask

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
    changed = round(rows * share)
    new = round(changed * new_share)
    day = write_delta(base, workdir / "day", changed - new, new, seed=2)
    base.unlink()
    if jsonl:
        write_jsonl(day.later, workdir / "later.jsonl.gz")
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
    from nova_assets.lib.ingest.delta_files import fetch_delta, list_deltas
    from nova_assets.lib.ml.batch_predictions import rescore_codes
    from nova_assets.lib.warehouse.delta_apply import apply_delta

    pipeline = _pipeline(workdir)
    loaded = _rss_mib()
    database = _fresh_copy(workdir, "delta")
    with _connect(database, threads) as con:
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        (delta,) = list_deltas(str(workdir / "day"))
        file = fetch_delta(str(workdir / "day"), delta, database.parent / "raw")
        stats = apply_delta(con, file, lambda c, codes: rescore_codes(c, pipeline, 1, codes))
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return _figures(seconds, cpu, loaded, stats.products, stats.predictions)


def run_full(workdir: Path, threads: int) -> dict[str, Any]:
    from nova_assets.lib.ingest.dump import Dump
    from nova_assets.lib.ml.batch_predictions import write_predictions
    from nova_assets.lib.warehouse.products import ingest_products
    from nova_assets.lib.warehouse.split import extend_test_split

    pipeline = _pipeline(workdir)
    loaded = _rss_mib()
    database = _fresh_copy(workdir, "full")
    later = workdir / "day" / "later.tsv"
    dump = Dump(str(later), "later", later.stat().st_size, str(later), False)
    with _connect(database, threads) as con:
        cpu_started, started = _cpu_seconds(), time.perf_counter()
        stats = ingest_products(con, dump)
        extend_test_split(con)
        scored = write_predictions(con, pipeline, model_version=1)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    return _figures(seconds, cpu, loaded, stats.products, scored.rows)


def run_classic(workdir: Path, threads: int) -> dict[str, Any]:
    """classic.py on the day-later dump; it holds its products and predictions, writes none."""
    import pandas  # noqa: F401 - imported before the CPU clock starts, as the script's own timer
    import sklearn.naive_bayes  # noqa: F401
    from classic import run_classic as classic

    cpu_started = _cpu_seconds()
    result = classic(str(workdir / "day" / "later.tsv"))
    facts = result["metadata"]
    return {
        "seconds": result["seconds"],
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "model_loaded_rss_mb": None,
        "products_written": facts["products"],
        "predictions_written": facts["predictions"],
    }


def _figures(
    seconds: float, cpu: float, loaded: float, products: int, predictions: int
) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "model_loaded_rss_mb": loaded,
        "products_written": products,
        "predictions_written": predictions,
    }


def tables_hash(workdir: Path, method: str, threads: int) -> tuple[list, list]:
    """What a path left in its warehouse, read after its process ended: its products (all
    columns but `dump_sha256`) and its predictions (code, group, probability)."""
    from nova_assets.lib.database import connect

    database = workdir / method / "warehouse.duckdb"
    # Hashing a list of every row needs them all in memory at once: no step's limit.
    with connect(database, read_only=True, memory_limit=CHECK_MEMORY_LIMIT, threads=threads) as con:
        return list(con.execute(CONTENT).fetchone()), list(con.execute(GROUPS).fetchone())


def measured_child(name: str, command: list[str]) -> dict[str, Any]:
    """Run a child to its end; what it printed last, with the largest resident set of it and
    any process it waited for (`wait4`, what GNU `time -f %M` reports) and its whole time."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith(RESULT_PREFIX)]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"{name} failed (exit {process.returncode}):\n{err.read()[-4000:]}")
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["process_seconds"] = seconds
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


RUNNERS = {"delta": run_delta, "full": run_full, "classic": run_classic}


def format_table(report: dict[str, Any]) -> str:
    """The three paths, with their time and peak memory against the full refresh's."""
    full = report["methods"]["full"]
    headers = ["path", "products", "predictions", "seconds", "CPU s", "process s"]
    headers += ["peak RSS MiB", "model loaded MiB", "full / this, time", "this / full, memory"]
    rows = [headers, ["---"] * len(headers)]
    for method, r in report["methods"].items():
        loaded = r["model_loaded_rss_mb"]
        rows.append(
            [
                method,
                f"{r['products_written']:,}",
                f"{r['predictions_written']:,}",
                f"{r['seconds']:.2f}",
                f"{r['cpu_seconds']:.2f}",
                f"{r['process_seconds']:.2f}",
                f"{r['peak_rss_mb']:,.0f}",
                "" if loaded is None else f"{loaded:,.0f}",
                f"{full['seconds'] / r['seconds']:.2f}",
                f"{r['peak_rss_mb'] / full['peak_rss_mb']:.2f}",
            ]
        )
    return _markdown(rows)


def format_jsonl(report: dict[str, Any]) -> str:
    """The JSONL export's ingest beside a bare DuckDB read of the same file."""
    headers = ["JSONL export", "documents", "seconds", "CPU s", "rows/s", "peak RSS MiB"]
    rows = [headers, ["---"] * len(headers)]
    for method, r in report["jsonl"].items():
        rows.append(
            [
                method,
                f"{r['lines']:,}",
                f"{r['seconds']:.2f}",
                f"{r['cpu_seconds']:.2f}",
                f"{r['lines'] / r['seconds']:,.0f}",
                f"{r['peak_rss_mb']:,.0f}",
            ]
        )
    return _markdown(rows)


def _markdown(rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def benchmark(
    rows: int, share: float, new_share: float, threads: int, workdir: Path, jsonl: bool
) -> dict:
    options = ["--rows", str(rows), "--share", str(share), "--new-share", str(new_share)]
    options += ["--threads", str(threads), "--workdir", str(workdir)]
    options += [] if jsonl else ["--no-jsonl"]
    script = str(Path(__file__).resolve())
    setup = workdir / "prepared.json"
    wanted = {"rows": rows, "share": share, "new_share": new_share, "jsonl": jsonl}
    if setup.exists() and json.loads(setup.read_text())["options"] == wanted:
        print(f"reusing the setup in {workdir}", file=sys.stderr, flush=True)
        prepared = json.loads(setup.read_text())["prepared"]
    else:
        print("preparing base warehouse, model and delta ...", file=sys.stderr, flush=True)
        command = [sys.executable, script, *options, "--child", "prepare"]
        prepared = measured_child("prepare", command)
        setup.write_text(json.dumps({"options": wanted, "prepared": prepared}))
    methods = {}
    for method in METHODS:
        print(f"running {method} ...", file=sys.stderr, flush=True)
        command = [sys.executable, script, *options, "--child", method]
        methods[method] = measured_child(method, command)
    ingests = {}
    if jsonl:
        bench_ingest = str(Path(__file__).resolve().with_name("bench_ingest.py"))
        for method, child in zip(JSONL, ("floor", "ours"), strict=True):
            print(f"running {method} ...", file=sys.stderr, flush=True)
            command = [sys.executable, bench_ingest, str(workdir / "later.jsonl.gz")]
            command += ["--memory-limit", MEMORY_LIMIT, "--threads", str(threads)]
            command += ["--child", child, "--workdir", str(workdir / method)]
            ingests[method] = measured_child(method, command)
    # Checked once every measured child ended: a child's wait4 figure counts the memory of this
    # process it was forked from, and hashing every row here takes gigabytes.
    products = {m: tables_hash(workdir, m, threads) for m in ("delta", "full")}
    delta, full = products["delta"], products["full"]
    return {
        "rows": rows,
        "threads": threads,
        "cpus": os.cpu_count(),
        **{k: v for k, v in prepared.items() if k not in ("process_seconds", "peak_rss_mb")},
        "methods": methods,
        "jsonl": ingests,
        "same_products": delta[0] == full[0],
        "same_predictions": delta[1] == full[1],
        "full_vs_delta_speedup": methods["full"]["seconds"] / methods["delta"]["seconds"],
        "classic_vs_delta_speedup": methods["classic"]["seconds"] / methods["delta"]["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; `--child` is the internal per-step mode the parent starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="products in the base dump")
    parser.add_argument("--share", type=float, default=0.01, help="changes, as a share of --rows")
    parser.add_argument("--new-share", type=float, default=0.2, help="share of changes new")
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (all CPUs)")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (kept)")
    parser.add_argument("--no-jsonl", action="store_true", help="leave out the JSONL ingest")
    parser.add_argument("--child", choices=("prepare", *METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = args.threads or default_threads()
    if args.child:
        if args.child == "prepare":
            result = prepare(
                args.workdir, args.rows, args.share, args.new_share, threads, not args.no_jsonl
            )
        else:
            result = RUNNERS[args.child](args.workdir, threads)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_delta_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = benchmark(
            args.rows, args.share, args.new_share, threads, workdir.resolve(), not args.no_jsonl
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"base {report['products']:,} products; delta {report['delta']} "
        f"({report['delta_bytes']:,} bytes): {report['modified']:,} modified, "
        f"{report['new']:,} new; day-later dump {report['later_bytes']:,} bytes; "
        f"threads={threads}"
    )
    print(format_table(report))
    print(
        f"full refresh / delta: {report['full_vs_delta_speedup']:.1f}x; "
        f"classic / delta: {report['classic_vs_delta_speedup']:.1f}x"
    )
    print(
        f"same products: {report['same_products']}; same predictions: {report['same_predictions']}"
    )
    if report["jsonl"]:
        print(format_jsonl(report))
        floor, ours = report["jsonl"]["jsonl_floor"], report["jsonl"]["jsonl_ours"]
        print(f"JSONL ingest / bare read_json: {ours['seconds'] / floor['seconds']:.1f}x the time")
    print(JSON_PREFIX + json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
