"""The project environment as `uv run` gives it to a user: quiet when nothing is to install, and
its processes stoppable by Ctrl-C however they were started."""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from nova_assets.lib.paths import REPO_ROOT


def test_uv_run_compiles_no_bytecode_when_nothing_is_installed():
    """Every README command starts with `uv run`; with `compile-bytecode` in pyproject.toml each
    one recompiled all of site-packages and said so ("Bytecode compiled 19461 files")."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    env = {k: v for k, v in os.environ.items() if k != "UV_COMPILE_BYTECODE"}
    done = subprocess.run(
        [uv, "run", "--locked", "python", "-c", "print('ok')"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "Bytecode compiled" not in done.stderr, done.stderr


def test_a_process_started_with_sigint_ignored_gets_ctrl_c_back():
    """`uv run dg dev &` in a script starts Python with SIGINT ignored (and Dagster then ignores
    SIGTERM too); every Python process of this environment takes its default back at start."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = subprocess.run(
        ["sh", "-c", f'{shlex.quote(sys.executable)} -c "{probe}" & wait'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True", done.stderr
