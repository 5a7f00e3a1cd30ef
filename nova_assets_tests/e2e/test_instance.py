"""`dg launch` from the repo root without DAGSTER_HOME, as the README's first command runs: its
run lands in the project's instance under the data dir, the one `dg dev` from the same folder
shows, so the MLflow run's link to its Dagster run leads somewhere."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from nova_assets.lib.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def project_instance(data_dir: Path) -> dg.DagsterInstance:
    """The instance at `data_dir`/dagster_home, opened as DAGSTER_HOME there would open it."""
    return dg.DagsterInstance.from_config(str(data_dir / "dagster_home"))


def test_a_launch_without_dagster_home_is_kept_in_the_projects_instance(data_dir: Path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MLFLOW_"))},
        "NOVA_DATA_DIR": str(data_dir),
    }
    dg_cli = str(Path(sys.executable).with_name("dg"))
    for _ in range(2):
        done = subprocess.run(
            [dg_cli, "launch", "--assets", "off_dump"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with project_instance(data_dir) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        materialized = instance.get_latest_materialization_event(dg.AssetKey("off_dump"))
        assert materialized is not None and materialized.run_id == runs[0].run_id
