"""Benchmark the `products` ingest against a bare DuckDB scan and a classic pandas script.

One run, one dump file (plain TSV, .gz, OFF's Parquet export or its JSONL export), three methods,
each in a fresh subprocess so its peak RSS is its own:

- ours: `ingest_products` into a fresh temp warehouse opened with `warehouse.connect`;
- floor: `SELECT count(*)` over the same `read_csv` call, the least DuckDB can do per line (for
  a Parquet export: a bare `read_parquet` decoding every value of the columns `products` uses;
  for a JSONL export: `SELECT count(*)` over the same `read_json` call);
- reference: pandas `read_csv` in chunks, tags split, `nova_group` coerced, codes de-duplicated
  (latest `last_modified_t` wins), as a careful hand-written script would do it (TSV only).

Prints one table, the ratios (goal: ours reaches at least half the floor's throughput) and a
final `BENCH_JSON {...}` line for pasting results into docs/performance.md.

Usage: python benchmarks/bench_ingest.py DUMP [--memory-limit 1536MB] [--threads N] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from nova_assets.lib.database import MEMORY_LIMIT, default_threads  # noqa: E402

METHODS = ("floor", "ours", "reference")
REFERENCE_COLUMNS = (
    "code",
    "product_name",
    "brands",
    "ingredients_tags",
    "additives_tags",
    "categories_tags",
    "countries_tags",
    "nova_group",
    "created_t",
    "last_modified_t",
)
REFERENCE_TAGS = ("ingredients_tags", "additives_tags", "categories_tags", "countries_tags")
REFERENCE_CHUNK_ROWS = 100_000
READ_CHUNK = 8 << 20
MB = 1_000_000
JSON_PREFIX = "BENCH_JSON "
RESULT_PREFIX = "BENCH_RESULT "


def _open_dump(path: Path):
    """Plain or gzip by suffix, as `Dump.gzipped` and pandas decide it."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def measure_file(path: Path) -> tuple[int, int]:
    """(bytes on disk, uncompressed bytes), reading the whole file once.

    Reading it also warms the page cache, so no method pays the first cold read alone.
    """
    raw = 0
    with _open_dump(path) as handle:
        while chunk := handle.read(READ_CHUNK):
            raw += len(chunk)
    return path.stat().st_size, raw


def _peak_rss_mb() -> float:
    """This process's peak RSS; Linux reports KiB, macOS bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if platform.system() == "Darwin" else 1024) / MB


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: on a shared machine it is steadier than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dump_in_place(dump_path: Path):
    """The file as a `Dump` read where it lies, not copied into a raw folder."""
    from nova_assets.lib.ingest.dump import Dump

    return Dump(
        path=str(dump_path),
        sha256="bench",
        bytes=dump_path.stat().st_size,
        source=str(dump_path),
        gzipped=dump_path.suffix == ".gz",
    )


def run_ours(dump_path: Path, memory_limit: str, threads: int, workdir: Path) -> dict[str, Any]:
    """The real `products` path, into a fresh warehouse, without copying the dump."""
    import duckdb

    from nova_assets.lib.database import connect
    from nova_assets.lib.warehouse.products import ingest_products

    dump = dump_in_place(dump_path)
    baseline = _peak_rss_mb()
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    with connect(
        workdir / "warehouse.duckdb",
        memory_limit=memory_limit,
        temp_directory=workdir / "duckdb_tmp",
        threads=threads,
    ) as con:
        stats = ingest_products(con, dump)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "lines": stats.lines_read,
        "products": stats.products,
        "baseline_rss_mb": baseline,
        "details": {
            "skipped_lines": stats.skipped_lines,
            "rows_without_code": stats.rows_without_code,
            "duplicate_rows": stats.duplicate_rows,
            "invalid_nova_groups": stats.invalid_nova_groups,
            "warehouse_mb": (workdir / "warehouse.duckdb").stat().st_size / MB,
            "duckdb": duckdb.__version__,
        },
    }


def floor_sql(dump_path: Path) -> str:
    """The least DuckDB can do to read the dump: a TSV parsed with our `read_csv` options, every
    line; a Parquet export's columns that `products` uses, every value of each read; a JSONL
    export's documents, parsed by our `read_json` call."""
    from nova_assets.lib.database import sql_literal
    from nova_assets.lib.ingest import jsonl_dump, parquet_dump
    from nova_assets.lib.ingest.dump_format import (
        OPTIONAL_COLUMNS,
        REQUIRED_COLUMNS,
        dump_header,
        read_csv_sql,
    )

    if jsonl_dump.is_jsonl(dump_path):
        layout = jsonl_dump.check_jsonl(dump_path)
        return f"SELECT count(*) FROM {jsonl_dump.read_json_sql(layout)}"
    if not parquet_dump.is_parquet(dump_path):
        source = read_csv_sql(str(dump_path), dump_header(str(dump_path)))
        return f"SELECT count(*) FROM {source}"
    present = parquet_dump.schema(dump_path)
    used = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in present]
    # min() of each value's length or of the value itself touches every value, not only the
    # null masks, so the column is really decoded.
    touched = ", ".join(
        f"min(len({c}))" if present[c].endswith("[]") else f"min({c})" for c in used
    )
    return f"SELECT count(*), {touched} FROM read_parquet({sql_literal(dump_path)})"


def run_floor(dump_path: Path, memory_limit: str, threads: int, workdir: Path) -> dict[str, Any]:
    """Only read the dump (see `floor_sql`): the ceiling for ours."""
    import duckdb

    baseline = _peak_rss_mb()
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    con = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(workdir / "duckdb_tmp"),
        },
    )
    try:
        lines = con.execute(floor_sql(dump_path)).fetchone()[0]
    finally:
        con.close()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "lines": lines,
        "products": None,
        "baseline_rss_mb": baseline,
        "details": {"duckdb": duckdb.__version__},
    }


def _split_tags(value: str) -> list[str]:
    return [tag for tag in value.strip().split(",") if tag]


def _bad_line_numbers(dump_path: Path) -> tuple[set[int], int]:
    """Physical line numbers whose field count differs from the header's, and that count.

    pandas' C parser keeps lines with too many fields whenever `usecols` is given (it silently
    takes the first N fields, misaligned; pandas issue #40049), so `on_bad_lines='skip'` alone
    would let them through. The documented workaround is this pre-pass feeding `skiprows`.
    """
    bad: set[int] = set()
    with _open_dump(dump_path) as handle:
        expected = handle.readline().count(b"\t")
        for number, line in enumerate(handle, start=1):
            if line.count(b"\t") != expected:
                bad.add(number)
    return bad, expected + 1


def run_reference(
    dump_path: Path, memory_limit: str, threads: int, workdir: Path
) -> dict[str, Any]:
    """The classic pandas script; memory_limit/threads have no pandas equivalent."""
    import csv

    import pandas as pd

    baseline = _peak_rss_mb()
    cpu_started = _cpu_seconds()
    started = time.perf_counter()
    bad, _ = _bad_line_numbers(dump_path)
    prepass_seconds = time.perf_counter() - started

    lines = 0
    kept: list[pd.DataFrame] = []
    reader = pd.read_csv(
        dump_path,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        usecols=list(REFERENCE_COLUMNS),
        dtype=str,
        chunksize=REFERENCE_CHUNK_ROWS,
        on_bad_lines="skip",
        engine="c",
        skiprows=bad,
    )
    with reader:
        for chunk in reader:
            lines += len(chunk)
            code = chunk["code"].str.strip()
            chunk = chunk.assign(code=code.where(code != "")).dropna(subset=["code"])
            for column in ("product_name", "brands"):
                text = chunk[column].str.strip()
                chunk[column] = text.where(text != "")
            for column in REFERENCE_TAGS:
                chunk[column] = chunk[column].map(_split_tags, na_action="ignore")
            nova = pd.to_numeric(chunk["nova_group"], errors="coerce")
            chunk["nova_group"] = nova.where(nova.isin([1, 2, 3, 4])).astype("Int8")
            for column in ("created_t", "last_modified_t"):
                epoch = pd.to_numeric(chunk[column], errors="coerce")
                chunk[column] = pd.to_datetime(epoch, unit="s")
            kept.append(chunk)

    products_frame = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    kept.clear()
    if len(products_frame):
        products_frame = products_frame.sort_values(
            "last_modified_t", kind="stable", na_position="first"
        ).drop_duplicates("code", keep="last")
    products = len(products_frame)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "lines": lines,
        "products": products,
        "baseline_rss_mb": baseline,
        "details": {
            "bad_lines_skipped": len(bad),
            "prepass_seconds": prepass_seconds,
            "pandas": pd.__version__,
        },
    }


RUNNERS: dict[str, Callable[[Path, str, int, Path], dict[str, Any]]] = {
    "ours": run_ours,
    "floor": run_floor,
    "reference": run_reference,
}


def child_main(method: str, dump_path: Path, memory_limit: str, threads: int, workdir: Path) -> int:
    """Run one method in this (fresh) process and print its result as one JSON line."""
    result = RUNNERS[method](dump_path, memory_limit, threads, workdir)
    result["method"] = method
    result["peak_rss_mb"] = _peak_rss_mb()
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_child(
    method: str, dump_path: Path, memory_limit: str, threads: int, workdir: Path
) -> dict[str, Any]:
    """Start a fresh interpreter for `method` so its peak RSS and caches are its own."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        str(dump_path),
        "--memory-limit",
        memory_limit,
        "--threads",
        str(threads),
        "--child",
        method,
        "--workdir",
        str(workdir),
    ]
    return child_result(method, command)


def child_result(method: str, command: list[str]) -> dict[str, Any]:
    """Run a benchmark's child process and return the result it printed last."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{method} failed (exit {done.returncode}):\n{done.stderr.strip()[-4000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def add_rates(result: dict[str, Any], disk_bytes: int, raw_bytes: int) -> None:
    seconds = result["seconds"]
    result["lines_per_s"] = result["lines"] / seconds if seconds else 0.0
    result["mb_per_s"] = disk_bytes / MB / seconds if seconds else 0.0
    result["raw_mb_per_s"] = raw_bytes / MB / seconds if seconds else 0.0


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Same file for every method, so throughput ratios are inverse time ratios."""
    ours, floor, reference = (results.get(m) for m in ("ours", "floor", "reference"))
    out: dict[str, float | None] = {
        "ours_vs_floor_throughput": None,
        "ours_vs_floor_cpu": None,
        "ours_vs_reference_speedup": None,
        "reference_vs_ours_peak_rss": None,
    }
    if ours and floor:
        out["ours_vs_floor_throughput"] = floor["seconds"] / ours["seconds"]
        out["ours_vs_floor_cpu"] = floor["cpu_seconds"] / ours["cpu_seconds"]
    if ours and reference:
        out["ours_vs_reference_speedup"] = reference["seconds"] / ours["seconds"]
        out["reference_vs_ours_peak_rss"] = reference["peak_rss_mb"] / ours["peak_rss_mb"]
    return out


def format_table(results: dict[str, dict[str, Any]], gzipped: bool) -> str:
    """A Markdown table, so it pastes into docs/performance.md as is."""
    headers = ["method", "seconds", "CPU s", "lines", "products", "lines/s", "MB/s (disk)"]
    if gzipped:
        headers.append("MB/s (raw)")
    headers += ["peak RSS MB", "idle RSS MB"]
    rows = [headers, ["---"] * len(headers)]
    for method in METHODS:
        if method not in results:
            continue
        r = results[method]
        row = [
            method,
            f"{r['seconds']:.2f}",
            f"{r['cpu_seconds']:.2f}",
            f"{r['lines']:,}",
            "-" if r["products"] is None else f"{r['products']:,}",
            f"{r['lines_per_s']:,.0f}",
            f"{r['mb_per_s']:.1f}",
        ]
        if gzipped:
            row.append(f"{r['raw_mb_per_s']:.1f}")
        row += [f"{r['peak_rss_mb']:.0f}", f"{r['baseline_rss_mb']:.0f}"]
        rows.append(row)
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def format_ratios(found: dict[str, float | None]) -> str:
    lines = []
    floor = found["ours_vs_floor_throughput"]
    if floor is not None:
        verdict = "meets" if floor >= 0.5 else "BELOW"
        lines.append(f"ours/floor throughput: {floor:.2f} ({verdict} the 0.5 goal)")
        # Wall time swings with other load on a shared machine; CPU time much less.
        lines.append(f"floor/ours CPU seconds: {found['ours_vs_floor_cpu']:.2f}")
    speedup = found["ours_vs_reference_speedup"]
    if speedup is not None:
        lines.append(f"ours/reference speedup: {speedup:.2f}x")
    memory = found["reference_vs_ours_peak_rss"]
    if memory is not None:
        lines.append(f"reference/ours peak RSS: {memory:.2f}x")
    return "\n".join(lines)


def benchmark(
    dump_path: Path, memory_limit: str, threads: int, skip_pandas: bool
) -> dict[str, Any]:
    """Run every method on `dump_path` in its own subprocess; temp files go and are removed."""
    from nova_assets.lib.ingest.jsonl_dump import is_jsonl
    from nova_assets.lib.ingest.parquet_dump import is_parquet

    disk_bytes, raw_bytes = measure_file(dump_path)
    # The reference is the classic TSV script; an export is measured against its own floor.
    skip_pandas = skip_pandas or is_parquet(dump_path) or is_jsonl(dump_path)
    methods = [m for m in METHODS if not (skip_pandas and m == "reference")]
    scratch = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for method in methods:
            print(f"running {method} ...", file=sys.stderr, flush=True)
            result = run_child(method, dump_path, memory_limit, threads, scratch / method)
            add_rates(result, disk_bytes, raw_bytes)
            results[method] = result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "dump": str(dump_path),
        "gzipped": dump_path.suffix == ".gz",
        "bytes": disk_bytes,
        "raw_bytes": raw_bytes,
        "memory_limit": memory_limit,
        "threads": threads,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "methods": results,
        "ratios": ratios(results),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; `--child` is the internal per-method mode the parent starts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "dump", type=Path, help="OFF TSV dump (plain or .gz), Parquet export or JSONL export"
    )
    parser.add_argument(
        "--memory-limit", default=MEMORY_LIMIT, help="DuckDB memory_limit (the platform's)"
    )
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (all CPUs)")
    parser.add_argument("--skip-pandas", action="store_true", help="leave out the reference")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    dump_path = args.dump.resolve()
    if not dump_path.is_file():
        parser.error(f"{args.dump} is not a file")
    threads = args.threads or default_threads()
    if args.child:
        return child_main(args.child, dump_path, args.memory_limit, threads, args.workdir)

    report = benchmark(dump_path, args.memory_limit, threads, args.skip_pandas)
    size = f"{report['bytes'] / MB:,.0f} MB on disk"
    if report["gzipped"]:
        size += f", {report['raw_bytes'] / MB:,.0f} MB uncompressed"
    print(f"dump {dump_path} ({size}); memory_limit={args.memory_limit} threads={threads}")
    print(format_table(report["methods"], report["gzipped"]))
    print(format_ratios(report["ratios"]))
    print(JSON_PREFIX + json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
