"""`python -m nova_assets.predict` on products described by hand, against a small calibrated
champion: OFF's tag spellings are read, tags the model does not know are named, and an answer
made from nothing the model knows is never called confident."""

import json
from types import SimpleNamespace

import pytest

from nova_assets import predict
from nova_assets.lib.ml.classifiers import fit_pipeline
from nova_assets.lib.paths import data_paths
from nova_assets_tests.lib import synthetic


@pytest.fixture(scope="module")
def champion():
    train, validation = synthetic.matrix(1000, seed=0), synthetic.matrix(500, seed=1)
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    pipeline.named_steps["classifier"].calibrate(validation, validation.labels)
    return pipeline


@pytest.fixture
def command(champion, tmp_path, monkeypatch, capsys):
    """The command's main, with `champion` as the registry's champion v1; returns its stdout."""
    monkeypatch.setenv("NOVA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = data_paths().mlflow_tracking_uri.removeprefix("sqlite:///")
    (tmp_path / "mlflow").mkdir()
    open(store, "w").close()
    monkeypatch.setattr(predict, "client_for", lambda uri: None)
    monkeypatch.setattr(predict, "champion_version", lambda client: SimpleNamespace(version="1"))
    monkeypatch.setattr(predict, "load_pipeline", lambda uri, model: champion)

    def run(*args: str) -> str:
        assert predict.main(list(args)) == 0
        return capsys.readouterr().out

    return run


def test_unknown_tags_are_named_and_the_answer_is_not_confident(command):
    out = command("--tags", "foo,bar")
    assert "not confident: no tag, name or nutrient the model knows" in out
    assert "confident;" not in out.replace("not confident", "")
    assert "not understood" in out and "ingredients_tags en:foo, en:bar" in out
    assert "en:palm-oil" in out  # the form tags take
    assert "because of: nothing: no tag, name or nutrient the model knows" in out
    answer = json.loads(command("--tags", "foo,bar", "--json"))
    assert answer["confident"] is False and answer["known_evidence"] is False
    assert answer["unknown_tags"] == {"ingredients_tags": ["en:foo", "en:bar"]}


def test_offs_spellings_are_normalised_and_used(command):
    answer = json.loads(command("--tags", "sugar, Palm oil ", "--json"))
    assert answer["ingredients_tags"] == ["en:sugar", "en:palm-oil"]
    assert "ingredients:en:sugar" in answer["reasons"]  # read as the model's own en:sugar
    assert answer["known_evidence"] is True
    # en:palm-oil is no tag of this small model's vocabulary, and the only one named so.
    assert answer["unknown_tags"] == {"ingredients_tags": ["en:palm-oil"]}
    spelt = json.loads(
        command("--tags", "en:sugar,en:flavouring", "--additives", "en:e322", "--json")
    )
    plain = json.loads(command("--tags", "Sugar, flavouring", "--additives", " E322", "--json"))
    assert plain["additives_tags"] == ["en:e322"]
    assert {k: plain[k] for k in ("nova_group", "probability", "confident", "reasons")} == {
        k: spelt[k] for k in ("nova_group", "probability", "confident", "reasons")
    }
    assert spelt["confident"] is True and spelt["unknown_tags"] == {}
