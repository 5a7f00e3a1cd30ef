"""Shared fixtures: a temp data dir per test, real OFF sample lines, an HTTP root, an S3 server
(plain helpers the tests import are in helpers.py)."""

import gzip
import http.server
import os
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from deploy.team.settings import CREDENTIALS
from nova_assets.lib.paths import SAMPLE_DUMP
from nova_assets_tests.helpers import free_port, process_group, wait_until_ready


@contextmanager
def _mlflow_settings_restored() -> Iterator[None]:
    """Undo what `mlflow.set_tracking_uri` leaves behind: it also sets MLFLOW_TRACKING_URI in
    os.environ, which later tests and the processes they start would inherit."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    mlflow.set_tracking_uri(saved.get("MLFLOW_TRACKING_URI"))
    mlflow.set_registry_uri(saved.get("MLFLOW_REGISTRY_URI"))
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def no_leaked_mlflow_settings() -> Iterator[None]:
    with _mlflow_settings_restored():
        yield


@pytest.fixture(autouse=True, scope="module")
def no_leaked_mlflow_settings_from_module_fixtures() -> Iterator[None]:
    with _mlflow_settings_restored():
        yield


@pytest.fixture(scope="session")
def sample_lines() -> list[str]:
    """The embedded real sample: header then 1000 product lines, without line ends."""
    return gzip.decompress(SAMPLE_DUMP.read_bytes()).decode("utf-8").rstrip("\n").split("\n")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh NOVA_DATA_DIR (warehouse, raw dumps, MLflow store) for one test."""
    root = tmp_path / "data"
    monkeypatch.setenv("NOVA_DATA_DIR", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("NOVA_DUMP_URL", raising=False)
    monkeypatch.delenv("NOVA_INCOMING_DIR", raising=False)
    monkeypatch.delenv("NOVA_DELTA_URL", raising=False)
    return root


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a temp folder: (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto's server mode) on 127.0.0.1, with the local team
    profile's credentials in this process's environment for pyarrow and boto3."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    command = [
        str(Path(sys.executable).with_name("moto_server")),
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with (
        pytest.MonkeyPatch.context() as env,
        process_group(command, log, grace=5) as server,
    ):
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        endpoint = f"http://127.0.0.1:{port}"
        wait_until_ready(lambda: urllib.request.urlopen(endpoint, timeout=2), server, log, 30)
        yield endpoint
