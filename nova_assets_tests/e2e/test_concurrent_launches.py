"""Two `dg launch` of the graph at once, on two different dumps, as two people would type them:
both finish, one after the other, and each run's tables come from its own dump."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from nova_assets_tests.helpers import set_field, write_dump

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSETS = "off_dump,products,test_split,feature_matrix"

pytestmark = pytest.mark.slow


def launch(dump: Path, env: dict[str, str]) -> subprocess.Popen:
    dg_cli = Path(sys.executable).with_name("dg")
    return subprocess.Popen(
        [str(dg_cli), "launch", "--assets", ASSETS],
        cwd=REPO_ROOT,
        env={**env, "NOVA_DUMP_URL": str(dump)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_launches_at_once_run_one_after_the_other_each_on_its_dump(
    tmp_path, data_dir, sample_lines
):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "data" / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "NOVA_DATA_DIR": str(data_dir)}
    header = sample_lines[0]
    first = write_dump(tmp_path / "first.tsv", sample_lines)
    renamed = [set_field(x, header, "product_name", "second") for x in sample_lines[1:]]
    second = write_dump(tmp_path / "second.tsv", [header, *renamed])

    # The instance's storage exists before the two launches, as it does once `dg dev` or any
    # run has used DAGSTER_HOME: two processes creating the sqlite schemas at the same moment
    # can both stamp them (Dagster's own race, not this project's).
    dg.DagsterInstance.from_config(str(home)).dispose()
    runs = [launch(first, env)]
    time.sleep(1.0)
    runs.append(launch(second, env))
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records(order_by="create_timestamp", ascending=True)
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 2
        spans = []
        for record in records:
            run_id = record.dagster_run.run_id
            events = instance.get_records_for_run(run_id).records
            by_asset = {}
            for event in events:
                dagster_event = event.event_log_entry.dagster_event
                if dagster_event is not None and dagster_event.is_step_materialization:
                    materialization = dagster_event.step_materialization_data.materialization
                    by_asset[materialization.asset_key.path[-1]] = materialization.metadata
            assert by_asset["products"]["dump_sha256"].value == by_asset["off_dump"]["sha256"].value
            steps = [
                e.timestamp
                for e in events
                if e.event_log_entry.dagster_event is not None
                and e.event_log_entry.dagster_event.is_step_event
            ]
            spans.append((min(steps), max(steps)))
        assert spans[0][1] <= spans[1][0] or spans[1][1] <= spans[0][0]
