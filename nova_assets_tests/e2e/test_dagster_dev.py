"""The platform as a user runs it: `dg dev` with its sensors, schedule and automation on.

A dump dropped into the incoming folder is ingested once, everything downstream refreshes in
one run, a reader of the published copy is never blocked, and the same dump again does nothing.
"""

import hashlib
import shutil
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from mlflow import MlflowClient

from nova_assets.lib.ml.registry import MODEL_NAME
from nova_assets.lib.paths import REPO_ROOT
from nova_assets_tests.e2e.dagster_dev import DagsterDev, settled

sys.path.insert(0, str(REPO_ROOT))
from benchmarks.generate_dump import generate_dump  # noqa: E402

pytestmark = pytest.mark.slow


def served(root: Path, sql: str):
    """Query the published read-only copy, as a user would."""
    with duckdb.connect(str(root / "data" / "serving" / "nova.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def model_versions(root: Path) -> list[int]:
    uri = f"sqlite:///{root / 'data' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'"))


class Reader(threading.Thread):
    """Keeps a session on the published copy busy while the pipeline writes."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.errors, self.queries, self.stop = root, [], 0, threading.Event()

    def run(self) -> None:
        path = str(self.root / "data" / "serving" / "nova.duckdb")
        with duckdb.connect(path, read_only=True) as con:
            while not self.stop.is_set():
                try:
                    con.execute("SELECT count(*), count(DISTINCT code) FROM products").fetchall()
                    self.queries += 1
                except Exception as exc:  # noqa: BLE001 - any failure is what the test looks for
                    self.errors.append(repr(exc))
                time.sleep(0.2)


def test_drop_a_dump_and_everything_refreshes_exactly_once(tmp_path):
    incoming = tmp_path / "incoming"
    dev = DagsterDev(tmp_path, {"NOVA_INCOMING_DIR": str(incoming)}).start()
    try:
        # First tick: the sensor ingests the default dump (the embedded sample), automation the rest.
        dev.wait_until(lambda: settled(dev, 1), 300, "the first dump to flow to nova_predictions")
        assert all(r["status"] == "SUCCESS" for r in dev.runs()), dev.tail()
        assert served(tmp_path, "SELECT count(*) FROM products") == [(1000,)]
        assert model_versions(tmp_path) == [1]
        runs_before = len(dev.runs())

        reader = Reader(tmp_path)
        reader.start()
        dump = generate_dump(3000, tmp_path / "new_dump.tsv.gz", seed=5, gzip=True)
        incoming.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "new_dump.tsv.gz", incoming / "off_new.tsv.gz")
        dev.wait_until(lambda: settled(dev, 2), 300, "the dropped dump to flow to nova_predictions")
        reader.stop.set()
        reader.join(10)

        runs = dev.runs()
        assert all(r["status"] == "SUCCESS" for r in runs), dev.tail()
        new_runs = runs[: len(runs) - runs_before]
        triggered = [r for r in new_runs if {"key": "nova/trigger", "value": "file"} in r["tags"]]
        assert len(triggered) == 1
        downstream = [
            r for r in new_runs if {"path": ["nova_model"]} in (r["assetSelection"] or [])
        ]
        assert len(downstream) == 1
        products = served(tmp_path, "SELECT count(*), any_value(dump_sha256) FROM products")[0]
        assert products[0] == dump["rows"] - dump["broken_lines"] - dump["duplicates"]
        assert (
            products[1] == hashlib.sha256((tmp_path / "new_dump.tsv.gz").read_bytes()).hexdigest()
        )
        assert model_versions(tmp_path) == [1, 2]
        assert served(tmp_path, "SELECT count(*) FROM nova_predictions")[0][0] > 0
        assert reader.queries > 0 and reader.errors == []

        # The same dump again, under another name: no run at all.
        shutil.copy(tmp_path / "new_dump.tsv.gz", incoming / "off_new_again.tsv.gz")
        time.sleep(
            15
        )  # three sensor ticks (5 s apart): a stable new file is requested on the second
        assert len(dev.runs()) == len(runs)
        assert model_versions(tmp_path) == [1, 2]

        # Two writers launched at once: queued one after the other, neither fails on the lock.
        launched = {dev.launch(["products", "test_split"]) for _ in range(2)}
        dev.wait_until(lambda: settled(dev, 2), 300, "both writer runs to finish")
        statuses = {r["runId"]: r["status"] for r in dev.runs() if r["runId"] in launched}
        assert statuses == dict.fromkeys(launched, "SUCCESS"), dev.tail()
        assert model_versions(tmp_path) == [1, 2]  # same dump: nothing downstream followed
        assert dev.warnings() == []
    finally:
        dev.stop()
