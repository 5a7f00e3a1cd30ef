"""A real `dg dev` for end-to-end tests: own DAGSTER_HOME, data dir and port, stopped by PID.

It runs in its own process group (like a job under `set -m`), so SIGTERM reaches the webserver,
the daemon and the code server together, and nothing else on the machine is touched.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from nova_assets.lib.paths import REPO_ROOT
from nova_assets_tests.helpers import free_port, stop_group


class DagsterUI:
    """A Dagster webserver at `url`, driven as the UI drives it (GraphQL); `log` is the file
    quoted when a wait times out."""

    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log_path = log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(answer["errors"])
        return answer["data"]

    def location_loaded(self) -> bool:
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name "
                "locationOrLoadError { __typename } } } } }"
            )
        except OSError:
            return False
        entries = data["workspaceOrError"]["locationEntries"]
        return (
            bool(entries)
            and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        )

    def runs(self) -> list[dict]:
        data = self.graphql(
            "{ runsOrError { ... on Runs { results { runId status tags { key value } "
            "assetSelection { path } } } } }"
        )
        return data["runsOrError"]["results"]

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(1)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; log tail:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def location(self) -> str:
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
        )
        return data["workspaceOrError"]["locationEntries"][0]["name"]

    def start_sensor(self, sensor: str) -> None:
        """Turn `sensor` on, as its toggle in the UI does."""
        data = self.graphql(
            """mutation($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
                 __typename ... on Sensor { sensorState { status } } ... on PythonError { message }
               } }""",
            {
                "selector": {
                    "repositoryLocationName": self.location(),
                    "repositoryName": "__repository__",
                    "sensorName": sensor,
                }
            },
        )["startSensor"]
        if data["__typename"] != "Sensor" or data["sensorState"]["status"] != "RUNNING":
            raise RuntimeError(f"starting {sensor} failed: {data}")

    def launch(self, assets: list[str]) -> str:
        """Launch a run of `assets` the way the UI's Materialize button does; its run id."""
        name = self.location()
        data = self.graphql(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                 __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": name,
                        "repositoryName": "__repository__",
                        "jobName": "__ASSET_JOB",
                        "assetSelection": [{"path": [a]} for a in assets],
                        "assetCheckSelection": [],
                    },
                    "mode": "default",
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {data}")
        return data["run"]["runId"]


class DagsterDev(DagsterUI):
    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(
            REPO_ROOT / "data" / "dagster_home" / "dagster.yaml", self.home / "dagster.yaml"
        )
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", root / "dagster_dev.log")
        self.log = self.log_path.open("w")
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "NOVA_", "DAGSTER_"))
        }
        self.env = {
            **inherited,
            "DAGSTER_HOME": str(self.home),
            "NOVA_DATA_DIR": str(root / "data"),
            "NOVA_SENSOR_SECONDS": "5",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120, *, in_background: bool = False) -> "DagsterDev":
        """Start `dg dev`, in a process group of its own, as from a terminal; `in_background`:
        as `dg dev &` in a shell script, which POSIX shells start with SIGINT ignored."""
        dg_cli = Path(sys.executable).with_name("dg")
        command = [str(dg_cli), "dev", "-h", "127.0.0.1", "-p", str(self.port)]
        if in_background:
            command = ["sh", "-c", f"{shlex.join(command)} & wait"]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_until(self._ready, timeout, "dg dev to serve its code location")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            stop_group(self.process, grace=60)
        self.log.close()

    def group(self) -> list[str]:
        """The live processes of dg dev's process group (pid and command), zombies left out."""
        assert self.process is not None
        self.process.poll()  # reap the leader if it has exited
        return group_members(self.process.pid)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"dg dev exited: {self.tail()}")
        return self.location_loaded()

    def tail(self, chars: int = 4000) -> str:
        self.log.flush()
        return super().tail(chars)

    def warnings(self) -> list[str]:
        """Python warnings printed by dg dev and what it started (none should reach a user)."""
        self.log.flush()
        text = (self.root / "dagster_dev.log").read_text(errors="replace")
        return [line for line in text.splitlines() if re.search(r"\w+Warning: ", line)]


def group_members(pgid: int) -> list[str]:
    """The live processes of process group `pgid` on this machine, as "pid command"."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # ended meanwhile
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(f"{stat.parent.name} {command[:120].decode(errors='replace')}")
    return members


def settled(dev: DagsterUI, predictions_runs: int) -> bool:
    """All runs finished, and `predictions_runs` of them refreshed nova_predictions."""
    runs = dev.runs()
    if any(r["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED") for r in runs):
        return False
    refreshed = [r for r in runs if {"path": ["nova_predictions"]} in (r["assetSelection"] or [])]
    return len(refreshed) >= predictions_runs
