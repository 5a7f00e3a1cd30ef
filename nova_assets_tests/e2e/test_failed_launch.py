"""A `dg launch` on a bad dump, as a person types it: the project's message is the last line
printed, not 30 lines up in a stack trace above Dagster's "Error: Run … resulted in failure."."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nova_assets.defs.failures import typed_in_a_shell
from nova_assets.lib.paths import REPO_ROOT, SAMPLE_DUMP

pytestmark = pytest.mark.slow


def test_a_failed_launch_ends_with_the_projects_message(tmp_path: Path, data_dir: Path):
    whole = SAMPLE_DUMP.read_bytes()
    assert gzip.decompress(whole)  # the sample itself is whole: the cut below is the fault
    truncated = tmp_path / "truncated.tsv.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MLFLOW_"))},
        "NOVA_DATA_DIR": str(data_dir),
        "NOVA_DUMP_URL": str(truncated),
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "launch", "--job", "all_assets"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).rstrip("\n").splitlines()
    assert lines[-2].startswith("Error: Run ") and lines[-2].endswith("resulted in failure.")
    assert lines[-1].startswith("products failed: dump "), lines[-5:]
    assert lines[-1].endswith("is a truncated gzip file: it ends before its gzip stream does")
    # The message is Dagster's Failure description, without DuckDB's own wording chained under.
    assert "IO Error: Unexpected end of GZIP stream" not in done.stdout + done.stderr


def test_only_commands_that_run_their_steps_say_it_again_at_exit():
    assert typed_in_a_shell(["/venv/bin/dg", "launch", "--job", "all_assets"])
    assert typed_in_a_shell(["/venv/bin/dagster", "job", "execute", "-j", "all_assets"])
    assert not typed_in_a_shell(["/venv/bin/dg", "dev"])
    assert not typed_in_a_shell(["-c"])  # a run worker of `dg dev`
    assert not typed_in_a_shell(["/venv/bin/pytest", "nova_assets_tests"])
