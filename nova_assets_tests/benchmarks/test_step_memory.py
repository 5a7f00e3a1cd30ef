"""Peak memory per step: a real child process that says which step it is in, as Dagster's log
does, and holds memory in one of them."""

import sys
import textwrap

from nova_assets.lib.paths import REPO_ROOT
from nova_assets_tests.benchmarks.scripts import load_script

CHILD = textwrap.dedent(
    """
    import time
    print('Started execution of step "small".', flush=True)
    time.sleep(0.5)
    print('Started execution of step "big".', flush=True)
    held = bytearray(300 << 20)
    time.sleep(0.5)
    del held
    print('Started execution of step "after".', flush=True)
    time.sleep(0.5)
    """
)


def test_each_step_gets_the_peak_reached_while_it_ran() -> None:
    step_memory = load_script("step_memory")
    measured = step_memory.run_measured([sys.executable, "-c", CHILD], REPO_ROOT, interval=0.05)
    assert measured.returncode == 0
    peaks = measured.step_peaks_mib
    assert list(peaks) == ["start-up", "small", "big", "after"]
    assert peaks["big"] > 300 > peaks["small"]
    # The mark is reset when a step starts: what "big" held is not counted in "after".
    assert peaks["after"] < 300
    assert measured.peak_mib == max(peaks.values())


def test_what_the_caller_holds_is_not_the_commands_peak() -> None:
    step_memory = load_script("step_memory")
    held = bytearray(400 << 20)  # zero-filled, so resident: the caller's peak is over 400 MiB
    measured = step_memory.run_measured(
        [sys.executable, "-c", "import sys; sys.exit(3)"], REPO_ROOT
    )
    del held
    assert measured.returncode == 3
    assert measured.peak_mib < 200
