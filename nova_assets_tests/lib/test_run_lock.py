import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from nova_assets.lib import run_lock

HOLDER = """
import sys, time
from pathlib import Path
from nova_assets.lib import run_lock
run_lock.hold(Path(sys.argv[1]), "run child")
print("held", flush=True)
time.sleep(120)
"""


def taken_elsewhere(path: Path) -> bool:
    """Whether another process holds the lock (a fresh open of the file cannot take it)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_second_run_waits_and_goes_on_when_the_first_is_killed(tmp_path):
    path = tmp_path / "run.lock"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "held"
        assert run_lock.holder(path).startswith("run child")
        said: list[str] = []
        got = threading.Event()

        def second() -> None:
            run_lock.hold(path, "run second", said.append)
            got.set()

        waiter = threading.Thread(target=second, daemon=True)
        started = time.process_time()
        waiter.start()
        assert not got.wait(1.5)
        assert said and "waiting for run child" in said[0]
        os.kill(child.pid, signal.SIGKILL)
        assert got.wait(5)
        assert time.process_time() - started < 1.0  # it slept, it did not spin
        assert run_lock.holder(path).startswith("run second")
    finally:
        child.kill()
        child.wait()
        run_lock.let_go(path)


def test_holders_in_one_process_share_the_lock_until_the_last_lets_go(tmp_path):
    path = tmp_path / "run.lock"
    assert run_lock.hold(path, "run a") is True  # took it: the one to clear after dead runs
    assert run_lock.hold(path, "run a") is False  # shared
    run_lock.let_go(path)
    assert taken_elsewhere(path)
    run_lock.let_go(path)
    assert not taken_elsewhere(path) and run_lock.holder(path) == ""
