"""The UI as a person uses it: a real Chromium against a real `dg dev`, and the documented
sensor command (docs/operations.md) against the same `dg dev`.

It checks what the README and docs/operations.md promise about the UI (the graph shows every asset in its group,
Materialize all runs the whole graph, the evaluation report's metadata shows the report table
and the confusion matrix). With UPDATE_SCREENSHOTS=1 it also refreshes docs/asset_graph.png,
the README's picture; otherwise a test run leaves the repository as it found it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from nova_assets.lib.paths import REPO_ROOT
from nova_assets_tests.e2e.dagster_dev import DagsterDev
from nova_assets_tests.helpers import free_port, process_group, wait_until_ready

pytestmark = pytest.mark.slow

CHROMIUM = Path(shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium")
# Debian's Chromium: Playwright must never download a browser, and the machine has no network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ASSETS = [
    "off_dump",
    "products",
    "test_split",
    "feature_matrix",
    "nova_model",
    "evaluation_report",
    "champion_model",
    "nova_predictions",
    "nova_drift",
]
IN_PROGRESS = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
COMMUNITY_DIALOG = "Join the Dagster community"
"""Dagster's dialog over a first visit's page, which the instance settings (`nux`) turn off."""


def open_asset_graph(browser, url: str):
    """The global lineage page with groups expanded and the graph given the whole width.

    A fresh context each time: the page keeps its view state in localStorage, and only a first
    visit lays the graph out again (fitted to the width) when the groups are expanded.
    """
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(f"{url}/asset-groups")
    page.get_by_role("button", name="Materialize all").wait_for()
    page.wait_for_load_state("networkidle")
    assert not page.get_by_text(COMMUNITY_DIALOG).is_visible()
    page.get_by_role("button", name="Hide navigation").click()
    page.locator("button").filter(
        has=page.get_by_role("img", name="panel_show_right", exact=True)
    ).click()
    page.locator("#zoom-slider-container").get_by_role("button", name="settings").click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.evaluate("document.activeElement.blur()")
    for asset in ASSETS:
        page.get_by_text(asset, exact=True).wait_for()
    page.wait_for_load_state("networkidle")
    return page


def ui_runs_settled(dev: DagsterDev) -> bool:
    """The run the click launched exists, and no run (the sensor's first one too) is unfinished."""
    runs = dev.runs()
    from_ui = [r for r in runs if {"key": "dagster/from_ui", "value": "true"} in r["tags"]]
    return bool(from_ui) and not any(r["status"] in IN_PROGRESS for r in runs)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """One `dg dev` for this module. The sensors' first tick still comes (new_dump_sensor
    ingests the sample dump once); after it, a 3600 s interval keeps them quiet so the click is
    what runs the graph."""
    root = tmp_path_factory.mktemp("ui")
    dev = DagsterDev(
        root, {"NOVA_SENSOR_SECONDS": "3600", "NOVA_INCOMING_DIR": str(root / "incoming")}
    ).start()
    yield dev
    dev.stop()


def test_graph_materialize_all_and_the_evaluation_report(dev, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = open_asset_graph(browser, dev.url)
        for asset in ASSETS:
            expect(page.get_by_text(asset, exact=True)).to_be_visible()
        page.screenshot(path=tmp_path / "asset_graph_before.png")

        page.get_by_role("button", name="Materialize all").click()
        launched = page.get_by_text("Launched run")
        confirm = page.get_by_role("dialog").get_by_role("button", name="Materialize", exact=False)
        launched.or_(confirm).first.wait_for()
        if not launched.is_visible():
            confirm.last.click()
            launched.wait_for()
        dev.wait_until(lambda: ui_runs_settled(dev), 240, "the Materialize all run to finish")
        runs = dev.runs()
        assert [r["status"] for r in runs] == ["SUCCESS"] * len(runs), dev.tail()

        # The doc picture is taken once everything is materialized: every node green.
        page = open_asset_graph(browser, dev.url)
        page.screenshot(path=tmp_path / "asset_graph.png")
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            (REPO_ROOT / "docs").mkdir(exist_ok=True)
            page.screenshot(path=REPO_ROOT / "docs" / "asset_graph.png")
            # What the picture shows, for the test that says when it is stale.
            (REPO_ROOT / "docs" / "asset_graph.json").write_text(
                json.dumps({"assets": sorted(ASSETS)}, indent=2) + "\n"
            )

        page.goto(f"{dev.url}/assets/evaluation_report")
        page.get_by_text("Show Markdown").click()
        report = page.get_by_role("dialog").filter(has_text="NOVA model v1")
        expect(report.get_by_role("columnheader", name="accuracy", exact=True)).to_be_visible()
        expect(report.get_by_role("columnheader", name="mix macro-F1", exact=True)).to_be_visible()
        expect(report.get_by_role("cell", name="model v1", exact=True).first).to_be_visible()
        matrix = report.get_by_role("img", name="confusion matrix")
        expect(matrix).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
        matrix.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete", arg=matrix.element_handle())
        assert matrix.evaluate("img => img.naturalWidth") > 0
        page.screenshot(path=tmp_path / "evaluation_report.png")
        check_mlflow_ui(browser, dev, tmp_path)
        browser.close()


def check_mlflow_ui(browser, dev: DagsterDev, tmp_path: Path) -> None:
    """The README's `mlflow ui` line, run where the data folder is, and its link to the
    experiment `nova` show the training runs (not MLflow's GenAI overview)."""
    command = readme_line("uv run mlflow ui")
    port = free_port()
    mlflow_ui = [str(Path(sys.executable).with_name("mlflow")), *command[3:]]
    mlflow_ui[mlflow_ui.index("--port") + 1] = str(port)
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "mlflow_ui.log"
    # The shell expands the README's $PWD: the folder that holds data/.
    with process_group(["sh", "-c", " ".join(mlflow_ui)], log, env=dev.env, cwd=dev.root) as ui:
        wait_until_ready(lambda: urllib.request.urlopen(f"{url}/health"), ui, log, 300)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(readme_runs_link().replace("http://127.0.0.1:5000", url))
        page.get_by_text(re.compile(r"^nova_model \S+$")).first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "mlflow_experiment.png")
        assert not page.get_by_text("Detect Issues").is_visible()


def readme_runs_link() -> str:
    """The README's link to the MLflow UI's page of training runs."""
    links = re.findall(
        r"<(http://127\.0\.0\.1:5000/#/experiments/[^>]+)>", (REPO_ROOT / "README.md").read_text()
    )
    assert len(links) == 1, links
    return links[0]


SENSOR_STATUS = """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
    __typename ... on Sensor { sensorState { status } } } }"""


def readme_line(starting: str) -> list[str]:
    """The command line of the README or docs/operations.md (where the sensor commands are)
    that starts with `starting`, without its comment."""
    for page in (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "operations.md"):
        for line in page.read_text().splitlines():
            if line.startswith(starting):
                return line.split("#")[0].split()
    raise AssertionError(f"no line of the README or docs/operations.md starts with {starting!r}")


def sensor_status(dev: DagsterDev, name: str) -> str:
    selector = {
        "repositoryLocationName": "nova_assets",
        "repositoryName": "__repository__",
        "sensorName": name,
    }
    data = dev.graphql(SENSOR_STATUS, {"selector": selector})["sensorOrError"]
    return data["sensorState"]["status"]


def test_the_readme_sensor_stop_command_stops_the_sensor_dagster_dev_runs(dev):
    """The README's line acts on what the running `dg dev` ticks."""
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
