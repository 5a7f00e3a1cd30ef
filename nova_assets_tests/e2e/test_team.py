"""The team profile brought up for real with `deploy/team/up`: PostgreSQL for Dagster and MLflow,
an S3-compatible server (moto), a Ray head, Dagster's code server, daemon and webserver, and an
MLflow tracking server with its artifacts in S3. Dumps flow through the sensors, the queue and
the daemon as in a team's deployment, while readers query the object store and services fail.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pyarrow.fs as pafs
import pytest
from mlflow import MlflowClient

from nova_assets.lib.ml.registry import EXPERIMENT, MODEL_NAME, takes_current_input
from nova_assets.lib.paths import REPO_ROOT
from nova_assets.lib.publishing.object_store import ObjectStore
from nova_assets.published import connect
from nova_assets_tests.e2e.dagster_dev import DagsterUI, settled

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.generate_dump import generate_dump, write_delta  # noqa: E402
from deploy.team.services import forget_lost_state, session_members  # noqa: E402
from deploy.team.settings import (  # noqa: E402
    OWN_SETTINGS,
    Profile,
    ProfileError,
    free_ports,
    load_profile,
)

pytestmark = pytest.mark.slow

TEAM = REPO_ROOT / "deploy" / "team"


@dataclass
class Team:
    root: Path
    env: dict[str, str]
    ui: DagsterUI

    def services(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(TEAM / "services.py"), *args, "--dir", str(self.root)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def pid(self, service: str) -> int:
        return int((self.root / "pids" / f"{service}.pid").read_text())

    def postgres(self, database: str):
        return psycopg2.connect(load_profile(self.root, None).postgres_url(database, driver=""))

    def mlflow(self) -> MlflowClient:
        uri = self.env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def store(self, prefix: str = "platform") -> ObjectStore:
        return ObjectStore(f"s3://nova/{prefix}", self.env["AWS_ENDPOINT_URL"])


def read_env(path: Path) -> dict[str, str]:
    """The variables `deploy/team/env` exports, as a shell that sourced it would have them."""
    out = subprocess.run(
        ["bash", "-c", f"source {TEAM / 'env'} && env -0"],
        env={"PATH": os.environ["PATH"], "NOVA_TEAM_DIR": str(path)},
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@pytest.fixture(scope="module")
def team():
    base = Path(tempfile.mkdtemp(prefix="nova-team-", dir="/tmp"))
    base.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data folder
    root = base / "profile"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    clean["NOVA_SENSOR_SECONDS"] = "3"
    ports_from = free_ports(8)
    up = [str(TEAM / "up"), "--dir", str(root), "--ports-from", str(ports_from), "--ray-cpus", "2"]
    (base / "deltas").mkdir()  # OFF's delta folder, empty until a test publishes one
    up += ["--delta-url", str(base / "deltas")]
    try:
        started = subprocess.run(up, env=clean, capture_output=True, text=True, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        env = {k: v for k, v in read_env(root).items() if k.startswith(OWN_SETTINGS)}
        ui = DagsterUI(env["NOVA_DAGSTER_UI_URL"], root / "logs" / "daemon.log")
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            yield Team(root, env, ui)
    finally:
        subprocess.run([str(TEAM / "down"), "--dir", str(root)], env=clean, timeout=300)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(f"/tmp/nova-ray-{ports_from + 5}", ignore_errors=True)


class StoreReader(threading.Thread):
    """Queries the published tables from the object store, a new connection each time, as a
    reader on another machine would, while runs write."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(daemon=True)
        self.store, self.counts, self.errors, self.stop = store, set(), [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                con = connect(self.store.url, self.store.endpoint_url)
                self.counts.add(con.execute("SELECT count(*) FROM products").fetchone()[0])
                con.close()
            except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                self.errors.append(repr(exc))
            time.sleep(0.3)


class TrialKiller(threading.Thread):
    """SIGKILLs the first Ray worker process it sees running a model-search trial."""

    def __init__(self, session: int) -> None:
        super().__init__(daemon=True)
        self.session, self.killed, self.stop = session, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and not self.killed:
            for pid, _ in session_members(self.session):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if title.startswith(b"ray::_trial"):
                    os.kill(pid, signal.SIGKILL)
                    self.killed.append(pid)
                    break
            time.sleep(0.05)


def model_versions(team: Team) -> list:
    return sorted(
        team.mlflow().search_model_versions(f"name = '{MODEL_NAME}'"), key=lambda v: int(v.version)
    )


def test_the_first_dump_flows_through_the_daemon_onto_postgres_mlflow_s3_and_ray(team):
    ui = team.ui
    ui.wait_until(lambda: settled(ui, 1), 420, "the sample to flow to nova_predictions")
    runs = {r["runId"]: r["status"] for r in ui.runs()}
    assert set(runs.values()) == {"SUCCESS"} and len(runs) >= 2, ui.tail()

    # Dagster's runs and their events are in PostgreSQL.
    with team.postgres("dagster") as con, con.cursor() as cursor:
        cursor.execute("SELECT run_id, status FROM runs")
        assert dict(cursor.fetchall()) == runs
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = ANY(%s)", (list(runs),))
        assert cursor.fetchone()[0] > 100

    # The training's MLflow run is on the server, its trials ran on Ray, its model is whole in S3.
    client = team.mlflow()
    [version] = model_versions(team)
    assert takes_current_input(version)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    trials = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{version.run_id}'"
    )
    assert trials and {t.data.tags.get("ran_on") for t in trials} == {"ray"}
    assert client.get_run(version.run_id).data.tags["dagster_run_id"] in runs
    artifacts = team.store("mlflow").filesystem.get_file_info(
        pafs.FileSelector("nova/mlflow", recursive=True)
    )
    assert any(info.base_name == "MLmodel" for info in artifacts)
    assert not (Path(team.env["NOVA_DATA_DIR"]) / "mlflow").exists()  # nothing kept locally

    # The README's predict command, in a shell that sourced deploy/team/env.
    answer = subprocess.run(
        [sys.executable, "-m", "nova_assets.predict", "--name", "Cola zero", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["nova_group"] in (1, 2, 3, 4)

    # The dump is archived and the tables are published in the object store.
    store = team.store()
    dump = json.loads((Path(team.env["NOVA_DATA_DIR"]) / "raw" / "latest.json").read_text())
    assert store.size(f"raw/{Path(dump['path']).name}") == dump["bytes"]
    reader = connect(store.url, store.endpoint_url)
    assert reader.execute("SELECT count(*) FROM products").fetchone() == (1000,)
    assert reader.execute("SELECT count(*) FROM nova_predictions").fetchone()[0] > 0


def test_a_dropped_dump_survives_an_mlflow_restart_a_killed_daemon_and_a_killed_ray_worker(
    team, tmp_path
):
    ui = team.ui
    runs_before = {r["runId"] for r in ui.runs()}
    team.services("stop", "mlflow")
    team.services("start", "mlflow")

    readers = [StoreReader(team.store()) for _ in range(2)]
    killer = TrialKiller(team.pid("ray"))
    for thread in (*readers, killer):
        thread.start()
    dump = generate_dump(20000, tmp_path / "new.tsv.gz", seed=3, gzip=True)
    incoming = Path(team.env["NOVA_DATA_DIR"]) / "incoming"
    shutil.copy(tmp_path / "new.tsv.gz", incoming / "off_new.tsv.gz")

    def training_started() -> bool:
        return any(
            r["runId"] not in runs_before
            and r["status"] == "STARTED"
            and {"path": ["nova_model"]} in (r["assetSelection"] or [])
            for r in ui.runs()
        )

    ui.wait_until(training_started, 300, "the new dump's training run to start")
    os.killpg(team.pid("daemon"), signal.SIGKILL)
    team.services("stop", "daemon")  # forgets the dead daemon's PID
    team.services("start", "daemon")
    ui.wait_until(lambda: settled(ui, 2), 600, "the new dump to flow to nova_predictions")
    for thread in (*readers, killer):
        thread.stop.set()
        thread.join(30)

    new_runs = [r for r in ui.runs() if r["runId"] not in runs_before]
    assert new_runs and {r["status"] for r in new_runs} == {"SUCCESS"}, ui.tail()
    assert killer.killed, "no model-search trial was seen on a Ray worker"
    versions = model_versions(team)
    assert [int(v.version) for v in versions] == [1, 2]
    assert all(takes_current_input(v) for v in versions)  # nothing half-registered
    rows = dump["rows"] - dump["broken_lines"] - dump["duplicates"]
    for reader in readers:
        assert reader.errors == [] and reader.counts <= {1000, rows} and reader.counts
    final = connect(team.store().url, team.store().endpoint_url)
    assert final.execute("SELECT count(*) FROM products").fetchone() == (rows,)


def test_runs_launched_together_from_the_ui_wait_in_the_queue(team):
    ui = team.ui
    launched = [ui.launch(["products", "test_split"]) for _ in range(2)]
    ui.wait_until(lambda: settled(ui, 0), 300, "both launched runs to finish")
    with team.postgres("dagster") as con, con.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, status, start_time, end_time FROM runs WHERE run_id = ANY(%s) "
            "ORDER BY start_time",
            (launched,),
        )
        (_, first, _, first_end), (_, second, second_start, _) = cursor.fetchall()
    assert first == second == "SUCCESS"
    assert second_start >= first_end  # max_concurrent_runs 1: the second waited in the queue


def test_a_delta_is_archived_in_the_object_store_and_applied_by_the_daemon(team, tmp_path):
    ui = team.ui
    ui.wait_until(lambda: settled(ui, 1), 420, "the dump to flow to nova_predictions")
    data = Path(team.env["NOVA_DATA_DIR"])
    accepted = json.loads((data / "raw" / "latest.json").read_text())
    day = write_delta(Path(accepted["path"]), tmp_path / "day", 40, 20, seed=7)
    store = team.store()
    with connect(store.url, store.endpoint_url) as reader:
        products = reader.execute("SELECT count(*) FROM products").fetchone()[0]
    runs_before = {r["runId"] for r in ui.runs()}

    # The sensor turned on as a user does once the full export is in, then OFF publishes a day.
    ui.start_sensor("new_delta_sensor")
    folder = Path(team.env["NOVA_DELTA_URL"])
    shutil.copy(day.delta, folder / ".incoming")
    (folder / ".incoming").rename(folder / day.delta.name)

    def delta_runs() -> list[dict]:
        return [
            r
            for r in ui.runs()
            if r["runId"] not in runs_before
            and {"key": "nova/delta", "value": day.delta.name} in r["tags"]
        ]

    ui.wait_until(
        lambda: [r["status"] for r in delta_runs()] in (["SUCCESS"], ["FAILURE"]),
        300,
        "the daemon to apply the delta",
    )
    assert [r["status"] for r in delta_runs()] == ["SUCCESS"], ui.tail()

    # Archived under OFF's name, byte for byte, and applied: readers of the store see the day.
    assert store.get_bytes(f"raw/deltas/{day.delta.name}") == day.delta.read_bytes()
    with connect(store.url, store.endpoint_url) as reader:
        assert reader.execute("SELECT name FROM deltas").fetchall() == [(day.delta.name,)]
        assert reader.execute("SELECT count(*) FROM products").fetchone() == (
            products + len(day.new),
        )
        touched = day.modified + day.new
        renamed = reader.execute(
            "SELECT count(*) FROM products WHERE code IN (SELECT unnest(?)) "
            "AND product_name LIKE '%(new recipe)'",
            [touched],
        ).fetchone()
        assert renamed == (len(touched),)
        blank_new = reader.execute(
            "SELECT code FROM products WHERE code IN (SELECT unnest(?)) AND nova_group IS NULL",
            [day.new],
        ).fetchall()
        predicted_new = reader.execute(
            "SELECT code FROM nova_predictions WHERE code IN (SELECT unnest(?))", [day.new]
        ).fetchall()
    assert predicted_new and set(predicted_new) <= set(blank_new)


def test_down_stops_every_service(team):
    pids = {service: team.pid(service) for service in ("postgres", "ray", "mlflow", "webserver")}
    done = subprocess.run([str(TEAM / "down"), "--dir", str(team.root)], timeout=300)
    assert done.returncode == 0
    for service, pid in pids.items():
        alive = [member for member, _ in session_members(pid)]
        assert alive == [], f"{service} left processes {alive}"
    assert not list((team.root / "pids").glob("*.pid"))


def test_a_port_in_use_is_named_and_nothing_is_left_running(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="nova-team-", dir="/tmp"))
    base.chmod(0o755)
    ports_from = free_ports(8)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(OWN_SETTINGS)}
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", ports_from + 2))  # PostgreSQL's port
            taken.listen()
            done = subprocess.run(
                [str(TEAM / "up"), "--dir", str(base / "p"), "--ports-from", str(ports_from)],
                env=clean,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert done.returncode == 2
        assert "error: postgres exited; the end of" in done.stderr
        assert "could not bind" in done.stderr or "Address already in use" in done.stderr
        assert not list((base / "p" / "pids").glob("*.pid"))  # what it started, it stopped
    finally:
        subprocess.run([str(TEAM / "down"), "--dir", str(base / "p")], env=clean, timeout=300)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(f"/tmp/nova-ray-{ports_from + 5}", ignore_errors=True)


def test_up_after_down_starts_empty_and_says_so(tmp_path, capsys):
    """moto's S3 keeps objects in memory: once it stopped, what the databases and the warehouse
    refer to is gone, so the profile starts empty rather than half."""
    profile = Profile(tmp_path / "p")
    for folder in (profile.pgdata, profile.dagster_home, profile.root / "data" / "raw"):
        folder.mkdir(parents=True)
    forget_lost_state(profile)
    assert "starting empty" in capsys.readouterr().out
    assert not profile.pgdata.exists() and not (profile.root / "data").exists()
    assert not profile.dagster_home.exists()

    profile.pgdata.mkdir()
    with subprocess.Popen(["sleep", "60"], start_new_session=True) as daemon:
        profile.pid_file("daemon").parent.mkdir(parents=True, exist_ok=True)
        profile.pid_file("daemon").write_text(str(daemon.pid))
        try:
            with pytest.raises(ProfileError, match="the s3 service stopped while others run"):
                forget_lost_state(profile)
        finally:
            daemon.kill()
    assert profile.pgdata.exists()
