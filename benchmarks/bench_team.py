"""The team profile against the embedded one, on the same dump, in the same run.

Brings the profile up with `deploy/team/services.py` (timing each service until it answers),
lets it rest and reads each service's resident memory (every process of its session), then
runs what a user types, `dg launch --job all_assets`, once embedded (sqlite instance and MLflow
store, model search on this machine's cores) and once with `deploy/team/env`'s settings
(PostgreSQL instance, the MLflow server with S3 artifacts, tables and dump copied to S3, model
search on the Ray head), each in a fresh data dir, and prints wall time, peak RSS and each
step's time side by side. The sensors see no dump during the measure (NOVA_DUMP_URL points at
nothing for the services), so the daemon starts no run of its own.

Usage: python benchmarks/bench_team.py [--rows 1000000] [--dump PATH] [--ray-cpus 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_pipeline import ASSETS, child  # noqa: E402
from deploy.team import services, settings  # noqa: E402


def launch(env: dict[str, str], label: str) -> dict:
    result = child(["--launch"], env)
    if not result["success"]:
        raise RuntimeError(f"{label} dg launch failed:\n{result['log_tail']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dump", type=Path, help="a dump to measure instead of a generated one")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--rest-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith(settings.OWN_SETTINGS)]:
        del os.environ[name]

    workdir = Path(tempfile.mkdtemp(prefix="nova-bench-team-", dir="/tmp"))
    workdir.chmod(0o755)  # PostgreSQL runs as its own user
    dump = args.dump
    if dump is None:
        from benchmarks.generate_dump import generate_dump

        dump = workdir / f"off_{args.rows}.tsv.gz"
        generate_dump(args.rows, dump, seed=0, gzip=True)
    profile = settings.Profile(workdir / "team", settings.free_ports(8), args.ray_cpus)
    try:
        embedded = launch(
            {"NOVA_DATA_DIR": str(workdir / "embedded"), "NOVA_DUMP_URL": str(dump)}, "embedded"
        )

        os.environ["NOVA_DUMP_URL"] = str(workdir / "no-dump-for-the-sensors")
        started = time.perf_counter()
        ready_after = services.up(profile)
        up_seconds = time.perf_counter() - started
        time.sleep(args.rest_seconds)
        at_rest = {service: mib for service, _, mib in services.status(profile)}
        team = launch({**profile.env(), "NOVA_DUMP_URL": str(dump)}, "team")
        after_run = {service: mib for service, _, mib in services.status(profile)}
    finally:
        for service in reversed(settings.SERVICES):
            services.stop(profile, service)
        shutil.rmtree(profile.ray_temp, ignore_errors=True)

    print(f"\nteam profile up in {up_seconds:.1f} s (2 cores); memory per service:")
    print(f"{'service':<12} {'ready after':>12} {'at rest':>10} {'after a run':>12}")
    for service in settings.SERVICES:
        print(
            f"{service:<12} {ready_after.get(service, 0):10.1f} s {at_rest[service]:6.0f} MiB "
            f"{after_run[service]:8.0f} MiB"
        )
    print(
        f"{'total':<12} {'':>12} {sum(at_rest.values()):6.0f} MiB {sum(after_run.values()):8.0f} MiB"
    )

    print(f"\ndg launch --job all_assets on {dump.name} ({dump.stat().st_size / 1e6:,.0f} MB)")
    print(f"{'':<20} {'embedded':>10} {'team':>10} {'team/embedded':>14}")
    for step in ASSETS:
        e, t = embedded["steps"][step], team["steps"][step]
        print(f"{step:<20} {e:8.1f} s {t:8.1f} s {t / e if e else 0:13.2f}")
    for key, label in (("checks_seconds", "checks"), ("seconds", "wall time")):
        e, t = embedded[key], team[key]
        print(f"{label:<20} {e:8.1f} s {t:8.1f} s {t / e:13.2f}")
    e, t = embedded["peak_rss_mb"], team["peak_rss_mb"]
    print(f"{'peak RSS (launch)':<20} {e:6.0f} MiB {t:6.0f} MiB {t / e:13.2f}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
