import ast
from pathlib import Path

import pytest

import nova_assets
from nova_assets.lib.paths import SAMPLE_DUMP, data_paths, dump_source, refresh_cron
from nova_assets.lib.settings import NAMES, Settings


def test_settings_are_read_from_the_mapping_given_and_default_when_unset(tmp_path):
    settings = Settings.from_env(
        {"NOVA_DATA_DIR": str(tmp_path), "NOVA_SENSOR_SECONDS": "5", "OTHER": "x"}
    )
    assert settings.sensor_seconds == 5
    assert settings.refresh_cron == "0 4 * * 1"
    assert settings.is_set("NOVA_DATA_DIR") and not settings.is_set("NOVA_DUMP_URL")
    assert data_paths(settings).root == tmp_path.resolve()
    assert data_paths(settings).mlflow_tracking_uri.startswith(f"sqlite:///{tmp_path.resolve()}")
    assert dump_source(settings) == str(SAMPLE_DUMP)
    assert refresh_cron(Settings.from_env({"NOVA_REFRESH_CRON": "0 1 * * *"})) == "0 1 * * *"
    with pytest.raises(KeyError, match="OTHER"):
        settings.get("OTHER")


def test_settings_are_read_when_asked_not_when_imported(monkeypatch, tmp_path):
    monkeypatch.setenv("NOVA_DATA_DIR", str(tmp_path / "later"))
    assert data_paths().root == (tmp_path / "later").resolve()
    assert Settings.from_env().get("NOVA_DATA_DIR") == str(tmp_path / "later")


def test_nothing_but_the_settings_module_reads_the_environment():
    """Issue 19: one place reads os.environ (and os.getenv), so a setting is never read twice."""
    package = Path(nova_assets.__file__).parent
    readers = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "name", None)
            if name in {"environ", "getenv", "environb"}:
                readers.append(f"{path.relative_to(package)}:{node.lineno}")
    assert {r.split(":")[0] for r in readers} == {"lib/settings.py"}, readers


def test_every_setting_is_in_the_readme():
    readme = (Path(nova_assets.__file__).parents[1] / "README.md").read_text()
    assert [name for name in NAMES if f"`{name}`" not in readme] == []
