"""Peak resident memory of a command, step by step: which step of a Dagster run holds the peak.

GNU `time -f %M` gives one figure for a whole command, the largest resident set any of its
processes reached. To say which step reached it, the command runs in its own session and its
output is read as it comes: at each `Started execution of step "X"` every process of the session
has its high-water mark reset (`/proc/PID/clear_refs`, value 5) and, every `interval` seconds,
each live process's `VmHWM` is read and kept, per step, as the largest of any process. A worker
that ends between two reads loses at most its last `interval`; the run's own processes are
read to the end. Linux only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from deploy.team.services import session_members

STEP_START = re.compile(r'Started execution of step "([^"]+)"')
START_UP = "start-up"
"""The phase before the first step: loading the definitions, opening the instance."""


def high_water_mib(pid: int) -> float:
    """`VmHWM` of `pid` in MiB (what `time -f %M` prints, in KiB, / 1024), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def reset_high_water(pid: int) -> None:
    with suppress(OSError):  # gone already, or not ours
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class StepPeaks:
    """The largest resident set of any process of the session, per step, in MiB."""

    session: int
    peaks: dict[str, float] = field(default_factory=dict)
    step: str = START_UP
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sample(self) -> None:
        with self.lock:
            top = max((high_water_mib(pid) for pid, _ in session_members(self.session)), default=0)
            self.peaks[self.step] = max(self.peaks.get(self.step, 0.0), top)

    def enter(self, step: str) -> None:
        """The step that starts now: what came before is read, then every mark is reset."""
        self.sample()
        with self.lock:
            for pid, _ in session_members(self.session):
                reset_high_water(pid)
            self.step = step


@dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    output: str
    peak_mib: float
    """The largest resident set of any process, as `time -f %M` reports it."""
    step_peaks_mib: dict[str, float]


LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
"""Runs the command as its own child and writes that child's `wait4` peak (KiB) to a file, as
GNU `time` does. A child's `wait4` figure counts the memory of the process it was forked from
(with `vfork`, that process's own peak): from the caller, which may have held gigabytes, it
would be the caller's; from this small launcher it is the command's."""


def run_measured(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, interval: float = 0.1
) -> Measured:
    """Run `command` to its end (stdout and stderr merged), its peak memory per step."""
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as waited_file:
        process = _start(command, cwd, env, waited_file.name)
        peaks, lines = _follow(process, interval)
        # A worker that ended between two reads is in its parent's figure for waited children.
        waited = int(waited_file.read() or 0) / 1024
    seconds = time.perf_counter() - started
    return Measured(
        process.returncode,
        seconds,
        "".join(lines),
        max([waited, *peaks.peaks.values()]),
        peaks.peaks,
    )


def _start(
    command: list[str], cwd: Path, env: dict[str, str] | None, waited_file: str
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, waited_file, *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )


def _follow(process: subprocess.Popen, interval: float) -> tuple[StepPeaks, list[str]]:
    """Read the output as it comes and the session's marks every `interval`, to the end."""
    peaks = StepPeaks(process.pid)
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if match := STEP_START.search(line):
                peaks.enter(match[1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:
        peaks.sample()
        pid, status = os.waitpid(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        time.sleep(interval)
    reader.join()
    return peaks, lines


def main() -> int:
    """`python benchmarks/step_memory.py COMMAND...`: the command's peak per step, then overall."""
    measured = run_measured(sys.argv[1:], Path.cwd(), dict(os.environ))
    sys.stdout.write(measured.output)
    for step, mib in measured.step_peaks_mib.items():
        print(f"{step:<40} {mib:8.0f} MiB")
    print(f"{'peak (any process)':<40} {measured.peak_mib:8.0f} MiB in {measured.seconds:.1f} s")
    return measured.returncode


if __name__ == "__main__":
    raise SystemExit(main())
