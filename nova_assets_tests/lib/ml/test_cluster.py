"""Model search on a real Ray cluster (a head node started here, on 127.0.0.1) against this
machine's processes: the same trials, the same chosen model, only run elsewhere."""

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from nova_assets.lib.ml.classifiers import predict
from nova_assets.lib.ml.cluster import LOCAL, Cluster, where
from nova_assets.lib.ml.training import train
from nova_assets.lib.warehouse.split import validation_mask
from nova_assets_tests.helpers import free_port, process_group, wait_until_ready
from nova_assets_tests.lib import synthetic

WEIGHTS = {"as_is": 0.2, "no_ingredients": 0.5, "name_only": 0.3}


@pytest.fixture(scope="module")
def ray_address():
    """A Ray head with two cores, in its own process group, stopped by its PID's group. Token
    authentication is off for it and this process (RAY_AUTH_MODE), so a token another cluster
    left in ~/.ray cannot lock the test out: the head listens on 127.0.0.1 only."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        "--head",
        "--block",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--object-store-memory=200000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]

    def ready() -> None:
        with Cluster(address).session() as cluster:
            assert cluster.cores() == 2

    # Its raylet and GCS take their time to stop on SIGTERM: no need to wait for them here.
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("RAY_AUTH_MODE", "disabled")
            with process_group(command, temp / "head.log", grace=5) as head:
                wait_until_ready(ready, head, temp / "head.log", 90)
                yield address
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _call(i: int, shared: np.ndarray) -> tuple[int, float, str]:
    return i, float(shared.sum()), where()


def test_calls_come_back_in_order_wherever_they_run(ray_address):
    shared = np.arange(1000.0)
    calls = [(i, shared) for i in range(5)]
    expected = [(i, shared.sum(), "local") for i in range(5)]
    assert list(LOCAL.map(_call, calls, 1)) == expected
    assert list(LOCAL.map(_call, calls, 2, shared=[shared])) == expected
    with Cluster(ray_address).session() as cluster:
        on_ray = list(cluster.map(_call, calls, 2, shared=[shared]))
    assert on_ray == [(i, shared.sum(), "ray") for i in range(5)]


def test_the_search_on_ray_chooses_the_model_this_machine_chooses(ray_address):
    matrix = synthetic.matrix(2500, seed=0)
    validation = validation_mask(matrix.codes, 20)
    settings = (
        ["marker_logistic_regression", "evidence_logistic_regression"],
        {"C": [0.3, 1.0], "alpha": [1.0]},
        matrix,
        validation,
        WEIGHTS,
    )
    here = train(*settings, tuning_rows=1200, fit_rows=1800, workers=1)
    with Cluster(ray_address).session() as cluster:
        there = train(*settings, tuning_rows=1200, fit_rows=1800, workers=2, cluster=cluster)
    assert {t.ran_on for t in here.trials} == {"local"}
    assert {t.ran_on for t in there.trials} == {"ray"}
    assert [(t.kind, t.params, t.macro_f1, t.slices) for t in there.trials] == [
        (t.kind, t.params, t.macro_f1, t.slices) for t in here.trials
    ]
    assert (there.chosen.kind, there.chosen.params) == (here.chosen.kind, here.chosen.params)
    rows = matrix.take(np.flatnonzero(validation))
    np.testing.assert_array_equal(
        predict(there.model, rows).groups, predict(here.model, rows).groups
    )
