"""Stopping `dg dev` the documented way: SIGINT (Ctrl-C) or SIGTERM to its process group leaves
no process of it within seconds, however it was started, in a terminal or as `dg dev &` in a
script (where the shell starts it with SIGINT ignored, and Dagster then ignores SIGTERM too)."""

import os
import signal
import time

import pytest

from nova_assets_tests.e2e.dagster_dev import DagsterDev

pytestmark = pytest.mark.slow

GONE_WITHIN = 30.0
"""Seconds: dg dev waits for its webserver and daemon, then stops its code server."""


@pytest.mark.parametrize(
    ("in_background", "sig"),
    [(False, signal.SIGINT), (True, signal.SIGINT), (True, signal.SIGTERM)],
    ids=["terminal-ctrl-c", "script-sigint", "script-sigterm"],
)
def test_a_signal_to_dg_devs_process_group_leaves_no_process(tmp_path, in_background, sig):
    dev = DagsterDev(tmp_path).start(in_background=in_background)
    try:
        assert len(dev.group()) >= 4, dev.group()  # dg dev, webserver, daemon, code server
        os.killpg(dev.process.pid, sig)
        deadline = time.monotonic() + GONE_WITHIN
        while dev.group() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert dev.group() == [], f"left after {GONE_WITHIN:.0f} s:\n" + "\n".join(dev.group())
    finally:
        if dev.group():
            os.killpg(dev.process.pid, signal.SIGKILL)
        dev.stop()
