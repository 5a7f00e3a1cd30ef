"""The one skip-if-built primitive: a step's build is done only when the warehouse recorded its
very fingerprint (same inputs, same code) and every file it writes is there."""

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from nova_assets.lib import builds
from nova_assets.lib.builds import Build


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    try:
        yield con
    finally:
        con.close()


def recorded_in(con: duckdb.DuckDBPyConnection):
    return lambda step: builds.built_as(con, step)


def test_a_build_is_done_once_recorded_and_only_for_the_same_inputs(con) -> None:
    first = Build.of("test_split", recorded_in(con), dump_sha256="a")
    assert not first.done  # no builds table yet
    first.record(con)
    assert Build.of("test_split", recorded_in(con), dump_sha256="a").done
    assert not Build.of("test_split", recorded_in(con), dump_sha256="b").done
    assert not Build.of("nova_drift", recorded_in(con), dump_sha256="a").done
    Build.of("test_split", recorded_in(con), dump_sha256="b").record(con)
    assert not Build.of("test_split", recorded_in(con), dump_sha256="a").done  # replaced


def test_a_build_whose_files_are_gone_is_not_done(con, tmp_path: Path) -> None:
    output = tmp_path / "manifest.json"
    output.write_text("{}")
    Build.of("feature_matrix", recorded_in(con), outputs=[output], min_count=2).record(con)
    assert Build.of("feature_matrix", recorded_in(con), outputs=[output], min_count=2).done
    output.unlink()
    assert not Build.of("feature_matrix", recorded_in(con), outputs=[output], min_count=2).done


def test_other_code_is_another_build(con, monkeypatch: pytest.MonkeyPatch) -> None:
    Build.of("products", recorded_in(con), dump_sha256="a").record(con)
    monkeypatch.setattr(builds, "code_fingerprint", lambda: "other code")
    assert not Build.of("products", recorded_in(con), dump_sha256="a").done
