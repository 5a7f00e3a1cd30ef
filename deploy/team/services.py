"""The team profile on one machine: every service on 127.0.0.1, each with its data under one
folder, started and stopped by PID (what each service is, and its settings: settings.py).

    python deploy/team/services.py up [--dir DIR] [--ports-from N] [--ray-cpus N] [--delta-url U]
    python deploy/team/services.py down|status [--dir DIR]
    python deploy/team/services.py stop|start SERVICE [--dir DIR]

Services, in the order they start: postgres (Dagster's and MLflow's databases), s3 (moto's
S3-compatible server: MLflow's artifacts, the dumps and the published tables), ray (a head
node for model search), code_server (Dagster's gRPC server for nova_assets; runs are launched
from it), mlflow (tracking server: Postgres backend, artifacts proxied to s3), daemon and
webserver (Dagster's, both reading the workspace that points at the code server).

`up` writes `<dir>/env.sh`, which `deploy/team/env` sources: after it, `dg launch`, `mlflow`,
`nova_assets.predict` and `nova_assets.published` use these services.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

if not __package__:  # run as a script: the repository's root is where `deploy` is found
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from deploy.team.settings import (  # noqa: E402
    BIN,
    CREDENTIALS,
    DEFAULT_PORTS_FROM,
    REPO,
    SERVICES,
    Profile,
    ProfileError,
    as_postgres_user,
    commands,
    load_profile,
    postgres_bin,
    save_profile,
    write_settings,
)
from nova_assets.lib.publishing.object_store import ObjectStore  # noqa: E402


def forget_lost_state(profile: Profile) -> None:
    """The local S3 stand-in keeps its objects in memory: once it stopped, the artifacts the
    databases and the warehouse refer to are gone, so they go too and the profile starts empty."""
    if running(profile, "s3") or not profile.pgdata.exists():
        return
    if any(running(profile, service) for service in SERVICES):
        raise ProfileError("the s3 service stopped while others run: deploy/team/down first")
    print("the local S3 stand-in lost its objects when it stopped: starting empty")
    for folder in (profile.pgdata, profile.dagster_home, profile.root / "data"):
        shutil.rmtree(folder, ignore_errors=True)


def init_postgres(profile: Profile) -> None:
    if (profile.pgdata / "PG_VERSION").exists():
        return
    profile.pgdata.mkdir(parents=True, mode=0o700)
    user = as_postgres_user()
    if user:
        shutil.chown(profile.pgdata, "postgres", "postgres")
    command = [postgres_bin("initdb"), "-D", str(profile.pgdata), "-A", "trust", "-U", "nova"]
    done = subprocess.run(command, capture_output=True, text=True, **user)
    if done.returncode != 0:
        reach = " (the postgres user must be able to enter every folder above it)" if user else ""
        raise ProfileError(f"initdb in {profile.pgdata} failed{reach}: {done.stderr.strip()}")


def start(profile: Profile, service: str) -> None:
    """Start `service` in its own session (so stopping it stops what it started), its output
    in its log, its PID in its pid file."""
    if running(profile, service):
        raise ProfileError(f"{service} is already running (pid {read_pid(profile, service)})")
    profile.log(service).parent.mkdir(parents=True, exist_ok=True)
    profile.pid_file(service).parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **profile.env(), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    if service == "mlflow":
        env["MLFLOW_S3_ENDPOINT_URL"] = profile.url("s3")
        # Its job runner (seven worker processes, 1.4 GB) serves GenAI scorers we do not use.
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    user = as_postgres_user() if service == "postgres" else {}
    with profile.log(service).open("ab") as log:
        process = subprocess.Popen(
            commands(profile)[service],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **user,
        )
    profile.pid_file(service).write_text(str(process.pid))


def read_pid(profile: Profile, service: str) -> int | None:
    try:
        return int(profile.pid_file(service).read_text())
    except (FileNotFoundError, ValueError):
        return None


def running(profile: Profile, service: str) -> bool:
    pid = read_pid(profile, service)
    return pid is not None and bool(session_members(pid))


def session_members(session: int) -> list[tuple[int, int]]:
    """(pid, resident bytes) of each live process of `session`: what a service started in its
    own session, zombies left out."""
    members = []
    page = os.sysconf("SC_PAGE_SIZE")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append((int(stat.parent.name), int(fields[21]) * page))
    return members


def stop(profile: Profile, service: str, grace: float = 20.0) -> None:
    """Stop `service`: its polite signal to its process group, then SIGKILL to every process
    of its session still there after `grace` seconds."""
    pid = read_pid(profile, service)
    if pid is not None and running(profile, service):
        # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client to leave).
        polite = signal.SIGINT if service == "postgres" else signal.SIGTERM
        # A Ray head drains for 30 s on SIGTERM; a local one has nothing worth the wait.
        with suppress(ProcessLookupError):
            os.killpg(pid, polite)
        if not wait_for(lambda: not running(profile, service), 3.0 if service == "ray" else grace):
            for member, _ in session_members(pid):
                with suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            wait_for(lambda: not running(profile, service), 10.0)
    profile.pid_file(service).unlink(missing_ok=True)


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def answers(check: Callable[[], object]) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            check()
            return True
        except Exception:
            return False

    return ready


def port_open(port: int) -> Callable[[], object]:
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()


def http_ok(url: str) -> Callable[[], object]:
    return lambda: urllib.request.urlopen(url, timeout=2).close()


def readiness(profile: Profile) -> dict[str, Callable[[], object]]:
    import psycopg2

    return {
        "postgres": lambda: psycopg2.connect(
            profile.postgres_url("postgres", driver=""), connect_timeout=1
        ).close(),
        "s3": http_ok(profile.url("s3")),
        "ray": port_open(profile.port("ray")),
        "code_server": port_open(profile.port("code_server")),
        "mlflow": http_ok(f"{profile.url('mlflow')}/health"),
        "daemon": lambda: None,
        "webserver": http_ok(f"{profile.url('webserver')}/server_info"),
    }


def wait_ready(profile: Profile, service: str, seconds: float = 120.0) -> None:
    ready = answers(readiness(profile)[service])
    if not wait_for(lambda: ready() or not running(profile, service), seconds) or not ready():
        tail = profile.log(service).read_text(errors="replace")[-2000:]
        state = "exited" if not running(profile, service) else f"not ready after {seconds:.0f} s"
        raise ProfileError(f"{service} {state}; the end of {profile.log(service)}:\n{tail}")


def create_databases(profile: Profile) -> None:
    import psycopg2

    con = psycopg2.connect(profile.postgres_url("postgres", driver=""))
    con.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with con.cursor() as cursor:
            for name in ("dagster", "mlflow"):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        con.close()


def create_dagster_storage(profile: Profile) -> None:
    """Dagster's tables, made once here: the daemon and the webserver would race to."""
    os.environ["DAGSTER_HOME"] = str(profile.dagster_home)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.run_storage.get_runs_count()
        instance.event_log_storage.get_concurrency_keys()
        instance.schedule_storage.all_instigator_state()


def create_bucket(profile: Profile) -> None:
    ObjectStore(profile.object_store, profile.url("s3")).create_bucket()


def up(profile: Profile) -> dict[str, float]:
    """Start every service not running yet; seconds from the start of `up` until each is
    ready. On any failure, what this call started is stopped again."""
    started_at = time.monotonic()
    profile.root.mkdir(parents=True, exist_ok=True)
    os.environ.update(CREDENTIALS)
    started: list[str] = []
    ready_after: dict[str, float] = {}

    def bring(*services: str) -> None:
        for service in services:
            if not running(profile, service):
                start(profile, service)
                started.append(service)
        for service in services:
            wait_ready(profile, service)
            ready_after[service] = time.monotonic() - started_at

    try:
        forget_lost_state(profile)
        init_postgres(profile)
        write_settings(profile)
        bring("postgres", "s3", "ray")
        create_databases(profile)
        create_bucket(profile)
        create_dagster_storage(profile)
        # The code server opens the instance as it loads the definitions, and keeps the error
        # if the database is not there yet.
        bring("code_server", "mlflow")
        bring("daemon", "webserver")
    except BaseException:
        for service in reversed(started):
            stop(profile, service)
        raise
    save_profile(profile)
    return ready_after


def status(profile: Profile) -> list[tuple[str, int | None, float]]:
    """Each service: its PID if running, and the memory its processes hold."""
    rows = []
    for service in SERVICES:
        pid = read_pid(profile, service)
        members = session_members(pid) if pid is not None else []
        rows.append((service, pid if members else None, sum(rss for _, rss in members) / 2**20))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "start", "stop"])
    parser.add_argument("service", nargs="?", choices=SERVICES)
    default_dir = os.environ.get("NOVA_TEAM_DIR") or str(REPO / "data" / "team")
    parser.add_argument("--dir", default=default_dir, help="where every service keeps its data")
    parser.add_argument(
        "--ports-from", type=int, help=f"first of eight ports (default {DEFAULT_PORTS_FROM})"
    )
    parser.add_argument("--ray-cpus", type=int, default=0, help="the Ray head's cores")
    parser.add_argument(
        "--delta-url",
        help="NOVA_DELTA_URL for the services: OFF's delta index.txt URL or a folder (up; kept)",
    )
    args = parser.parse_args(argv)
    if (args.action in ("start", "stop")) != bool(args.service):
        parser.error("start and stop take one SERVICE; up, down and status take none")
    delta_url = args.delta_url
    if delta_url and "://" not in delta_url:
        delta_url = str(Path(delta_url).expanduser().resolve())  # the services' cwd is the repo
    profile = load_profile(Path(args.dir).resolve(), args.ports_from, args.ray_cpus, delta_url)
    try:
        if args.action == "up":
            for service, seconds in up(profile).items():
                print(f"{service:12} ready after {seconds:5.1f} s")
            print(f"Dagster UI {profile.url('webserver')}, MLflow {profile.url('mlflow')}")
            print(f"then: source deploy/team/env   (NOVA_TEAM_DIR={profile.root})")
        elif args.action == "down":
            for service in reversed(SERVICES):
                stop(profile, service)
        elif args.action == "start":
            start(profile, args.service)
            wait_ready(profile, args.service)
        elif args.action == "stop":
            stop(profile, args.service)
        else:
            for service, pid, mib in status(profile):
                state = f"pid {pid:<8} {mib:7.0f} MiB" if pid else "stopped"
                print(f"{service:12} {state}")
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
