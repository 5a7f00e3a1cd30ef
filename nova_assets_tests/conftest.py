"""Shared fixtures: a temp data dir per test, real OFF sample lines, and small dumps made from them."""

import gzip
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from deploy.team.settings import CREDENTIALS
from nova_assets.lib.paths import SAMPLE_DUMP


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


def write_dump(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    """Write header + product lines as an OFF TSV dump (gzip if asked); lone surrogates in a
    line (`bytes.decode(errors="surrogateescape")`) become the invalid bytes they stand for."""
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def set_field(line: str, header: str, column: str, value: str) -> str:
    """The same TSV line with one field (found by column name) replaced."""
    fields = line.split("\t")
    fields[header.split("\t").index(column)] = value
    return "\t".join(fields)


def get_field(line: str, header: str, column: str) -> str:
    return line.split("\t")[header.split("\t").index(column)]


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(
    ready: Callable[[], object], process: subprocess.Popen, log: Path, seconds: float
) -> None:
    """Call `ready` until it returns without raising; if `process` exits or `seconds` pass
    first, fail with the tail of the server's `log`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            ready()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log.read_text()[-3000:]) from None
            time.sleep(1)


@contextmanager
def process_group(
    command: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    grace: float = 30.0,
) -> Iterator[subprocess.Popen]:
    """`command` started in a process group of its own, its output in `log`; the whole group
    stopped at the end (stop_group)."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            stop_group(process, grace)


def stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to `process`'s group (only what it started), SIGKILL after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


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
