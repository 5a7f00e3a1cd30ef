"""Plain helpers the tests import: OFF-shaped dump files made of sample lines, and processes
started in a group of their own (servers the tests talk to), stopped whole. Fixtures stay in
conftest.py, which pytest loads by itself; nothing imports from a conftest."""

import gzip
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


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
