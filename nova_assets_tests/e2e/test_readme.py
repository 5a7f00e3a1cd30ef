"""The README's first command as a new user types it, on a fresh data dir: it succeeds without a
single warning, and its MLflow run links to a run of the project's instance; then the UI's way
(its own DAGSTER_HOME, as `dg dev` keeps one) on the same dump builds nothing: no table, report
or model version."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from mlflow import MlflowClient

from nova_assets.lib.ml.registry import EXPERIMENT, MODEL_NAME
from nova_assets.lib.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def first_command() -> list[str]:
    """The README's first shell line, `uv run` replaced by this environment's script."""
    text = (REPO_ROOT / "README.md").read_text()
    line = text.split("```bash\n", 1)[1].splitlines()[0].split("#")[0].split()
    assert line[:2] == ["uv", "run"], line
    return [str(Path(sys.executable).with_name(line[2])), *line[3:]]


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def builds(data: Path) -> list[tuple]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT step, fingerprint, built_at FROM builds ORDER BY 1").fetchall()


def test_the_first_command_then_the_ui_way_build_once_and_warn_never(tmp_path):
    data = tmp_path / "data"
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "NOVA_", "DAGSTER_"))
        },
        "NOVA_DATA_DIR": str(data),
    }
    command = first_command()
    first = run(command, env)
    assert [line for line in first.splitlines() if re.search(r"\w+Warning: ", line)] == []
    built = builds(data)
    assert {step for step, _, _ in built} >= {"products", "feature_matrix", "nova_predictions"}
    # Its MLflow run links to a Dagster run that the project's instance (the one `dg dev` from
    # the repo root shows) has: not "No run found".
    uri = f"sqlite:///{data / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    (training,) = client.search_runs(
        [client.get_experiment_by_name(EXPERIMENT).experiment_id],
        filter_string="tags.dagster_asset = 'nova_model'",
    )
    with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
        linked = instance.get_run_by_id(training.data.tags["dagster_run_id"])
        assert linked is not None and linked.status == dg.DagsterRunStatus.SUCCESS

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "data" / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    second = run(command, {**env, "DAGSTER_HOME": str(home)})
    assert [line for line in second.splitlines() if re.search(r"\w+Warning: ", line)] == []
    assert builds(data) == built
    assert "nothing to train" in second and "nothing to ingest" in second
    assert [str(v.version) for v in client.search_model_versions(f"name = '{MODEL_NAME}'")] == ["1"]
