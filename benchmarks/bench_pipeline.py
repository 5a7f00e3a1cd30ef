"""Time and peak memory of the whole graph at several dump sizes, and the classic pipeline beside it.

Ours is what a user types: one `dg launch --job all_assets` from the dump file to predictions
and drift, in a fresh data dir, timed from the command's start to its end (start-up included),
its peak RSS the largest of its processes, overall and per step (step_memory.py); the per-asset
breakdown comes from the run's own step timings, and start-up is the rest. The classic
reference (classic.py: pandas `read_csv` in chunks + `DictVectorizer` + `BernoulliNB`, the way
this task is usually done) runs on the same dump in its own process. The scaling exponent is
the slope of log(time) over log(rows). For each size it also prints what the evaluation measured
on the test split, slice by slice: the model's macro-F1 beside OFF's rules and the reference,
its calibration error and its coverage at the thresholds (on generated dumps, whose labels are
OFF's rules, these check the pipeline, not the model).

Usage: python benchmarks/bench_pipeline.py [--rows 100000 300000 1000000] [--workdir DIR]
       python benchmarks/bench_pipeline.py --rows 4500000 --dump off_4500000.tsv --no-reference
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

ASSETS = (
    "off_dump",
    "products",
    "test_split",
    "feature_matrix",
    "nova_model",
    "evaluation_report",
    "champion_model",
    "nova_drift",
    "nova_predictions",
)


STEP_TIME = re.compile(r'Finished execution of step "([^"]+)" in ([\d.hms ]+)\.')
RATE = re.compile(r"\(([\d,]+) rows/s\)")


def duration(text: str) -> float:
    """Dagster's step duration (`512ms`, `4.2s`, `1m 3s`, `1h 2m 3s`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(
        float(value) * units[unit] for value, unit in re.findall(r"([\d.]+)(ms|h|m|s)", text)
    )


def run_launch() -> dict:
    """`dg launch --job all_assets` as a user runs it; the environment says on which dump. Its
    peak RSS is the largest of any of its processes, overall and per step (step_memory.py)."""
    from benchmarks.step_memory import run_measured

    dg_cli = Path(sys.executable).with_name("dg")
    out = run_measured([str(dg_cli), "launch", "--job", "all_assets"], REPO_ROOT)
    log = out.output
    steps = {name: duration(taken) for name, taken in STEP_TIME.findall(log)}
    rate = RATE.search(log)
    return {
        "success": out.returncode == 0 and "RUN_SUCCESS" in log,
        "seconds": out.seconds,
        "peak_rss_mb": out.peak_mib,
        "step_peak_rss_mb": out.step_peaks_mib,
        "steps": {a: steps.get(a, 0.0) for a in ASSETS},
        "checks_seconds": sum(v for k, v in steps.items() if k not in ASSETS),
        "predictions_per_second": int(rate.group(1).replace(",", "")) if rate else None,
        "log_tail": "" if out.returncode == 0 else log[-3000:],
    }


def child(args: list[str], env: dict[str, str], attempts: int = 2) -> dict:
    """Run one measurement in a fresh process; a process killed by a signal is run again once."""
    for attempt in range(1, attempts + 1):
        out = subprocess.run(
            [sys.executable, "-X", "faulthandler", __file__, *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode == 0 and lines:
            return json.loads(lines[-1].removeprefix("RESULT "))
        if out.returncode >= 0 or attempt == attempts:
            raise RuntimeError(f"{args} failed ({out.returncode}):\n{out.stderr[-3000:]}")
        crash = out.stderr[out.stderr.find("Fatal Python") :][:1500]
        print(f"  {args} killed by signal {-out.returncode}; running it again\n{crash}", flush=True)
    raise AssertionError("unreachable")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log(y) over log(x)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(max(y, 1e-9)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )


def measure(rows: int, workdir: Path, seed: int, reference: bool, dump: Path | None = None) -> dict:
    from benchmarks.generate_dump import generate_dump

    dump = dump or workdir / f"off_{rows}.tsv.gz"
    if not dump.exists():
        generate_dump(rows, dump, seed=seed, gzip=True)
    data = workdir / f"data_{rows}"
    shutil.rmtree(data, ignore_errors=True)
    env = {"NOVA_DATA_DIR": str(data), "NOVA_DUMP_URL": str(dump)}
    ours = child(["--launch"], env)
    if not ours["success"]:
        raise RuntimeError(f"dg launch failed at {rows} rows:\n{ours['log_tail']}")
    startup = ours["seconds"] - sum(ours["steps"].values()) - ours["checks_seconds"]
    peaks = ours["step_peak_rss_mb"]
    for asset, seconds in ours["steps"].items():
        peak = peaks.get(asset, 0.0)
        print(f"  {rows:>9,} {asset:<18} {seconds:8.2f} s {peak:8.0f} MiB peak", flush=True)
    checks_peak = max((v for k, v in peaks.items() if k not in ASSETS), default=0.0)
    print(
        f"  {rows:>9,} {'checks, start-up':<18} {ours['checks_seconds']:8.2f} s "
        f"{checks_peak:8.0f} MiB peak",
        flush=True,
    )
    print(f"  {rows:>9,} {'start-up and rest':<18} {startup:8.2f} s", flush=True)
    print(
        f"  {rows:>9,} {'dg launch':<18} {ours['seconds']:8.2f} s {ours['peak_rss_mb']:8.0f} MB",
        flush=True,
    )
    result = {
        "rows": rows,
        "dump_bytes": dump.stat().st_size,
        "steps": ours["steps"],
        "checks_seconds": ours["checks_seconds"],
        "startup_seconds": startup,
        "total_seconds": ours["seconds"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "step_peak_rss_mb": peaks,
        "predictions_per_second": ours["predictions_per_second"],
        "evaluation": evaluation_summary(data / "reports" / "evaluation.json"),
    }
    if reference:
        result["reference"] = child(["--reference", str(dump)], {})
        print(
            f"  {rows:>9,} {'classic reference':<18} {result['reference']['seconds']:8.2f} s "
            f"{result['reference']['peak_rss_mb']:8.0f} MB",
            flush=True,
        )
    shutil.rmtree(data, ignore_errors=True)
    return result


def evaluation_summary(path: Path) -> dict:
    """Per slice (and the mix): macro-F1 of the model, OFF's rules and the reference; the model's
    calibration error and coverage at its thresholds."""
    report = json.loads(path.read_text())
    summary = {
        name: {
            "model": entry["model"]["macro_f1"],
            "rules": entry["rules"]["macro_f1"],
            "reference": entry["reference"]["macro_f1"],
            "ece": entry["model"]["ece"],
            "coverage": entry["model"]["at_thresholds"]["coverage"],
            "precision": entry["model"]["at_thresholds"]["precision"],
        }
        for name, entry in report["slices"].items()
    }
    summary["mix"] = {k: report[k]["macro_f1"] for k in ("model", "rules", "reference")}
    return summary


def print_evaluation(result: dict) -> None:
    print(f"\nmacro-F1 on the test split at {result['rows']:,} rows (generated: a pipeline check)")
    print("slice            | model  | rules  | reference | model - rules | ECE    | coverage")
    for name, e in result["evaluation"].items():
        line = f"{name:<16} | {e['model']:.4f} | {e['rules']:.4f} | {e['reference']:.4f}    |"
        line += f" {e['model'] - e['rules']:+.4f}       |"
        if "ece" in e:
            line += f" {e['ece']:.4f} | {e['coverage']:.3f}"
        print(line)


def report(results: list[dict]) -> None:
    print("\nrows       | ours: dg launch | peak RSS | classic reference | peak RSS | speed-up")
    for r in results:
        ref = r.get("reference")
        line = f"{r['rows']:>10,} | {r['total_seconds']:13.1f} s | {r['peak_rss_mb']:5.0f} MB"
        if ref:
            line += (
                f" | {ref['seconds']:15.1f} s | {ref['peak_rss_mb']:5.0f} MB"
                f" | {ref['seconds'] / r['total_seconds']:.2f}x"
            )
        print(line)
    if len(results) > 1:
        xs = [r["rows"] for r in results]
        print(
            f"\nscaling exponent, ours end-to-end: {slope(xs, [r['total_seconds'] for r in results]):.2f}"
        )
        for asset in ASSETS:
            ys = [r["steps"][asset] for r in results]
            print(f"  {asset:<18} {slope(xs, ys):.2f}")
        if all("reference" in r for r in results):
            ys = [r["reference"]["seconds"] for r in results]
            print(f"scaling exponent, classic reference: {slope(xs, ys):.2f}")
    last = results[-1]
    print_evaluation(last)
    predictions = last["predictions_per_second"]
    if predictions:
        print(f"batch predictions at {last['rows']:,} rows: {predictions:,.0f} rows/s")
    print("BENCH_JSON " + json.dumps(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip the classic pipeline")
    parser.add_argument(
        "--dump", type=Path, help="measure on this dump (of --rows rows) instead of generating one"
    )
    parser.add_argument("--launch", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.launch:
        print("RESULT " + json.dumps(run_launch()))
        return 0
    if args.reference:
        from benchmarks.classic import run_classic

        print("RESULT " + json.dumps(run_classic(args.reference)))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="nova-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}; {os.cpu_count()} cores")
    if args.dump and len(args.rows) != 1:
        parser.error("--dump takes the one --rows count of that dump")
    results = [
        measure(n, workdir, args.seed, not args.no_reference, args.dump) for n in sorted(args.rows)
    ]
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
