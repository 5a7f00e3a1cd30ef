"""The team profile on one machine: every service on 127.0.0.1, each with its data under one
folder, started and stopped by PID. The same settings point the same code at managed services
elsewhere (docs/deploy.md).

    python deploy/team/services.py up [--dir DIR] [--ports-from N] [--ray-cpus N]
    python deploy/team/services.py down|status [--dir DIR]
    python deploy/team/services.py stop|start SERVICE [--dir DIR]

Services, in the order they start: postgres (Dagster's and MLflow's databases), s3 (moto's
S3-compatible server: MLflow's artifacts, the dumps and the published tables), ray (a head
node for model search), code_server (Dagster's gRPC server for nova_assets; runs are launched
from it), mlflow (tracking server: Postgres backend, artifacts proxied to s3), daemon and
webserver (Dagster's, both reading the workspace that points at the code server).

`up` writes `<dir>/env.sh`, which `deploy/team/env` sources: after it, `dg launch`, `dg dev`,
`mlflow`, `nova_assets.predict` and `nova_assets.published` use these services.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import yaml

from nova_assets.lib.object_store import ObjectStore

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EMBEDDED_INSTANCE = REPO / "data" / "dagster_home" / "dagster.yaml"
SERVICES = ("postgres", "s3", "ray", "code_server", "mlflow", "daemon", "webserver")
"""In the order they start; `down` stops them in the reverse order."""
PORTS = {"webserver": 0, "mlflow": 1, "postgres": 2, "s3": 3, "code_server": 4, "ray": 5}
RAY_CLIENT_PORT = 6
RAY_DASHBOARD_PORT = 7
BUCKET = "nova"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "nova",
    "AWS_SECRET_ACCESS_KEY": "nova-local-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ProfileError(RuntimeError):
    """Something the user can fix; printed as one line."""


@dataclass(frozen=True)
class Profile:
    root: Path
    ports_from: int = 6400
    ray_cpus: int = 0

    def port(self, service: str) -> int:
        return self.ports_from + PORTS[service]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def ray_temp(self) -> Path:
        """Ray's session folder: its socket paths must stay under 108 bytes, so not in `root`."""
        return Path("/tmp") / f"nova-ray-{self.port('ray')}"

    def postgres_url(self, database: str, driver: str = "+psycopg2") -> str:
        """SQLAlchemy's URL (its default PostgreSQL driver is psycopg 3; we ship psycopg2)."""
        return f"postgresql{driver}://nova@127.0.0.1:{self.port('postgres')}/{database}"

    def pid_file(self, service: str) -> Path:
        return self.root / "pids" / f"{service}.pid"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def env(self) -> dict[str, str]:
        """What a user's shell, the code server and its runs need to use the team services."""
        return {
            "NOVA_TEAM_DIR": str(self.root),
            "DAGSTER_HOME": str(self.dagster_home),
            "NOVA_DATA_DIR": str(self.root / "data"),
            "MLFLOW_TRACKING_URI": self.url("mlflow"),
            "NOVA_MLFLOW_UI_URL": self.url("mlflow"),
            "NOVA_DAGSTER_UI_URL": self.url("webserver"),
            "RAY_ADDRESS": f"127.0.0.1:{self.port('ray')}",
            # Local heads only listen on 127.0.0.1; a shared cluster uses Ray's token auth.
            "RAY_AUTH_MODE": "disabled",
            "NOVA_OBJECT_STORE": f"s3://{BUCKET}/platform",
            "AWS_ENDPOINT_URL": self.url("s3"),
            **CREDENTIALS,
        }


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them per version under /usr/lib/postgresql."""
    found = shutil.which(name) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), default="")
    if not found:
        raise ProfileError(f"no {name}: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


def as_postgres_user() -> dict:
    """PostgreSQL refuses to run as root: as root, its programs run as the `postgres` user."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


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


def commands(profile: Profile) -> dict[str, list[str]]:
    workspace = profile.root / "workspace.yaml"
    cpus = profile.ray_cpus or os.cpu_count() or 1
    return {
        "postgres": [
            postgres_bin("postgres"),
            "-D",
            str(profile.pgdata),
            "-p",
            str(profile.port("postgres")),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
        ],
        "s3": [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(profile.port("s3"))],
        "ray": [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={profile.port('ray')}",
            f"--ray-client-server-port={profile.ports_from + RAY_CLIENT_PORT}",
            f"--dashboard-port={profile.ports_from + RAY_DASHBOARD_PORT}",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={cpus}",
            "--object-store-memory=1000000000",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={profile.ray_temp}",
        ],
        "code_server": [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-m",
            "nova_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(profile.port("code_server")),
            "--location-name",
            "nova_assets",
        ],
        "mlflow": [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            profile.postgres_url("mlflow"),
            "--artifacts-destination",
            f"s3://{BUCKET}/mlflow",
            "--host",
            "127.0.0.1",
            "--port",
            str(profile.port("mlflow")),
            "--workers",
            "1",
        ],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
        "webserver": [
            str(BIN / "dagster-webserver"),
            "-w",
            str(workspace),
            "-h",
            "127.0.0.1",
            "-p",
            str(profile.port("webserver")),
        ],
    }


def write_settings(profile: Profile) -> None:
    """The instance (the embedded one's concurrency rules, storage in Postgres), the workspace
    (the code server) and env.sh."""
    instance = yaml.safe_load(EMBEDDED_INSTANCE.read_text())
    # Runs submitted from the UI, sensors and schedules wait in the queued run coordinator
    # (Dagster's default) under the concurrency rules above.
    instance["storage"] = {"postgres": {"postgres_url": profile.postgres_url("dagster")}}
    profile.dagster_home.mkdir(parents=True, exist_ok=True)
    (profile.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance, sort_keys=False))
    workspace = {
        "load_from": [
            {
                "grpc_server": {
                    "host": "127.0.0.1",
                    "port": profile.port("code_server"),
                    "location_name": "nova_assets",
                }
            }
        ]
    }
    (profile.root / "workspace.yaml").write_text(yaml.safe_dump(workspace, sort_keys=False))
    lines = [f"export {name}={shlex.quote(value)}" for name, value in profile.env().items()]
    (profile.root / "env.sh").write_text("\n".join(lines) + "\n")


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
    ObjectStore(f"s3://{BUCKET}/platform", profile.url("s3")).create_bucket()


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
    (profile.root / "ports.json").write_text(json.dumps({"ports_from": profile.ports_from}))
    return ready_after


def status(profile: Profile) -> list[tuple[str, int | None, float]]:
    """Each service: its PID if running, and the memory its processes hold."""
    rows = []
    for service in SERVICES:
        pid = read_pid(profile, service) if running(profile, service) else None
        rows.append((service, pid, sum(rss for _, rss in session_members(pid or 0)) / 2**20))
    return rows


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports nothing listens on (for tests and benchmarks)."""
    for first in range(23000, 60000, 97):
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise ProfileError("no free ports")


def load_profile(root: Path, ports_from: int | None, ray_cpus: int = 0) -> Profile:
    """The profile in `root`: its ports are the ones it was brought up with, unless given."""
    saved = root / "ports.json"
    if ports_from is None:
        ports_from = json.loads(saved.read_text())["ports_from"] if saved.exists() else 6400
    return Profile(root=root, ports_from=ports_from, ray_cpus=ray_cpus)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "start", "stop"])
    parser.add_argument("service", nargs="?", choices=SERVICES)
    default_dir = os.environ.get("NOVA_TEAM_DIR") or str(REPO / "data" / "team")
    parser.add_argument("--dir", default=default_dir, help="where every service keeps its data")
    parser.add_argument("--ports-from", type=int, help="first of eight ports (default 6400)")
    parser.add_argument("--ray-cpus", type=int, default=0, help="the Ray head's cores")
    args = parser.parse_args(argv)
    if (args.action in ("start", "stop")) != bool(args.service):
        parser.error("start and stop take one SERVICE; up, down and status take none")
    profile = load_profile(Path(args.dir).resolve(), args.ports_from, args.ray_cpus)
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
