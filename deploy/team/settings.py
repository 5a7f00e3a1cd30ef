"""What each service of the team profile is: its port, its command line, its settings files,
and the variables that point the project at it (`Profile.env`, written to `env.sh`). The same
variables point the same code at managed services elsewhere (docs/deploy.md).
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EMBEDDED_INSTANCE = REPO / "data" / "dagster_home" / "dagster.yaml"
SERVICES = ("postgres", "s3", "ray", "code_server", "mlflow", "daemon", "webserver")
"""In the order they start; `down` stops them in the reverse order."""
PORTS = {"webserver": 0, "mlflow": 1, "postgres": 2, "s3": 3, "code_server": 4, "ray": 5}
RAY_CLIENT_PORT = 6
RAY_DASHBOARD_PORT = 7
DEFAULT_PORTS_FROM = 6400
BUCKET = "nova"
OWN_SETTINGS = ("MLFLOW_", "NOVA_", "DAGSTER_", "RAY_", "AWS_")
"""Prefixes of the variables that point the project somewhere: a shell (or test) that starts a
profile clears them first, so that nothing of another setup leaks in."""
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
    ports_from: int = DEFAULT_PORTS_FROM
    ray_cpus: int = 0
    delta_url: str = ""
    """OFF's deltas for the daemon's `new_delta_sensor` and `apply_deltas` (NOVA_DELTA_URL)."""

    def port(self, service: str) -> int:
        return self.ports_from + PORTS[service]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port(service)}"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def workspace(self) -> Path:
        """Dagster's workspace: the code server, for the daemon and the webserver."""
        return self.root / "workspace.yaml"

    @property
    def object_store(self) -> str:
        """Where the platform copies its dumps and published tables."""
        return f"s3://{BUCKET}/platform"

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
            "NOVA_OBJECT_STORE": self.object_store,
            "AWS_ENDPOINT_URL": self.url("s3"),
            **CREDENTIALS,
            **({"NOVA_DELTA_URL": self.delta_url} if self.delta_url else {}),
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


def commands(profile: Profile) -> dict[str, list[str]]:
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
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(profile.workspace)],
        "webserver": [
            str(BIN / "dagster-webserver"),
            "-w",
            str(profile.workspace),
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
    profile.workspace.write_text(yaml.safe_dump(workspace, sort_keys=False))
    lines = [f"export {name}={shlex.quote(value)}" for name, value in profile.env().items()]
    (profile.root / "env.sh").write_text("\n".join(lines) + "\n")


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


def save_profile(profile: Profile) -> None:
    """Remember the ports and the delta URL `up` used, for `down`, `status`, `start` and the
    tests."""
    saved = {"ports_from": profile.ports_from, "delta_url": profile.delta_url}
    (profile.root / "ports.json").write_text(json.dumps(saved))


def load_profile(
    root: Path, ports_from: int | None, ray_cpus: int = 0, delta_url: str | None = None
) -> Profile:
    """The profile in `root`: its ports and delta URL are the ones it was brought up with,
    unless given."""
    path = root / "ports.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    if ports_from is None:
        ports_from = saved.get("ports_from", DEFAULT_PORTS_FROM)
    if delta_url is None:
        delta_url = saved.get("delta_url", "")
    return Profile(root=root, ports_from=ports_from, ray_cpus=ray_cpus, delta_url=delta_url)
