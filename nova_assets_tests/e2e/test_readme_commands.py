"""The README's commands act on what a running `dagster dev` runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from nova_assets.lib.paths import REPO_ROOT
from nova_assets_tests.e2e.dagster_dev import DagsterDev

pytestmark = pytest.mark.slow

SENSOR_STATUS = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
    __typename ... on Sensor { sensorState { status } } } }"""


def readme_line(starting: str) -> list[str]:
    """The README's command line that starts with `starting`, without its comment."""
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if line.startswith(starting):
            return line.split("#")[0].split()
    raise AssertionError(f"no README line starts with {starting!r}")


def sensor_status(dev: DagsterDev, name: str) -> str:
    selector = {
        "repositoryLocationName": "nova_assets",
        "repositoryName": "__repository__",
        "sensorName": name,
    }
    data = dev.graphql(SENSOR_STATUS, {"selector": selector})["sensorOrError"]
    return data["sensorState"]["status"]


def test_the_readme_sensor_stop_command_stops_the_running_sensor(tmp_path):
    dev = DagsterDev(tmp_path, {"NOVA_SENSOR_SECONDS": "3600"}).start()
    try:
        assert sensor_status(dev, "new_dump_sensor") == "RUNNING"
        command = readme_line("uv run dagster sensor stop new_dump_sensor")
        assert command[:3] == ["uv", "run", "dagster"]
        dagster = Path(sys.executable).with_name("dagster")
        done = subprocess.run(
            [str(dagster), *command[3:]],
            cwd=REPO_ROOT,
            env=dev.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "warning" not in done.stderr.lower(), done.stderr[-2000:]
        assert sensor_status(dev, "new_dump_sensor") == "STOPPED"
        assert sensor_status(dev, "nova_automation_sensor") == "RUNNING"
    finally:
        dev.stop()
