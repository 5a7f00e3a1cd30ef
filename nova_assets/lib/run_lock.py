"""One run at a time on a data dir, however runs start (`dg launch`, the UI, a sensor).

An exclusive `flock` on a file in the data dir, taken when a run's first resource starts and
let go when its last one ends. The kernel lets go of it when the holding process dies, even by
`kill -9`, so a dead run never blocks the next one. A waiting run sleeps between attempts (no
spinning) and stops at once on a signal.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.5
LOG_EVERY_SECONDS = 30.0

_held: dict[Path, tuple[int, int]] = {}
"""Locks this process holds: path -> (file descriptor, how many holders share it)."""
_guard = threading.Lock()


def hold(path: Path, owner: str, log: Callable[[str], None] | None = None) -> bool:
    """Take the lock at `path` for `owner` (waiting while another process has it), or share it
    if this process holds it already. Each `hold` needs one `let_go`. True when this call took
    it (the first holder of this process)."""
    path = path.resolve()
    with _guard:
        if path in _held:
            fd, count = _held[path]
            _held[path] = (fd, count + 1)
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait_for(fd, path, log)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner} (pid {os.getpid()})\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _guard:
        _held[path] = (fd, 1)
    return True


def let_go(path: Path) -> None:
    """Give back one `hold`; the lock is released when the last holder of this process is done."""
    path = path.resolve()
    with _guard:
        if path not in _held:
            return
        fd, count = _held.pop(path)
        if count > 1:
            _held[path] = (fd, count - 1)
            return
    os.ftruncate(fd, 0)
    os.close(fd)


def holder(path: Path) -> str:
    """Who holds the lock at `path`, as they wrote it ("" if nobody said)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _wait_for(fd: int, path: Path, log: Callable[[str], None] | None) -> None:
    started = time.monotonic()
    said = -LOG_EVERY_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - started
            if log is not None and waited - said >= LOG_EVERY_SECONDS:
                log(
                    f"waiting for {holder(path) or 'another run'} to finish "
                    f"({path.name}, {waited:.0f} s so far)"
                )
                said = waited
            time.sleep(POLL_SECONDS)
