"""The model checks, called directly on real reports and a real MLflow registry."""

import json

import mlflow
import pytest
from sklearn.dummy import DummyClassifier

from nova_assets.defs.ml.checks import champion_is_best, model_beats_majority, model_beats_rules
from nova_assets.defs.resources import DataDir, MlflowStore
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, ensure_experiment
from nova_assets.lib.paths import data_paths


def here() -> DataDir:
    """The test's data dir, as the definitions give it to the checks."""
    return DataDir(root=str(data_paths().root))


def entry(scores: tuple, version: str | None = None) -> dict:
    return {"name": "x", "version": version, "accuracy": scores[0], "macro_f1": scores[1]}


def write_report(
    model: tuple,
    majority: tuple = (0.7, 0.2),
    champion: tuple | None = None,
    rules: tuple = (0.5, 0.4),
) -> None:
    """A report as evaluation_report writes it: mix scores, and one slice per model."""
    report = {
        "test_rows": 10,
        "model": entry(model[1:], model[0]),
        "majority": entry(majority),
        "rules": entry(rules),
        "champion": None if champion is None else entry(champion[1:], champion[0]),
        "slices": {
            "as_is": {"model": entry(model[1:]), "rules": entry(rules)},
            "no_ingredients": {"model": entry(model[1:]), "rules": entry((0.1, 0.2))},
        },
    }
    directory = data_paths().reports
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "evaluation.json").write_text(json.dumps(report))


def test_model_must_beat_majority_in_macro_f1(data_dir):
    write_report(("1", 0.9, 0.8))
    assert model_beats_majority(here()).passed
    write_report(("1", 0.65, 0.8))  # less accurate than always 4, far better over the groups
    assert model_beats_majority(here()).passed
    write_report(("1", 0.9, 0.15))
    result = model_beats_majority(here())
    assert not result.passed and result.metadata["majority_macro_f1"].value == 0.2


def test_model_must_beat_offs_rules(data_dir):
    write_report(("1", 0.9, 0.8))
    result = model_beats_rules(here())
    assert result.passed
    assert result.metadata["no_ingredients_model_minus_rules"].value == pytest.approx(0.6)
    write_report(("1", 0.9, 0.3))
    assert not model_beats_rules(here()).passed


@pytest.fixture
def registry(data_dir):
    uri = data_paths().mlflow_tracking_uri
    ensure_experiment(uri, data_paths().mlflow_artifacts)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("nova")
    for _ in range(2):
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                DummyClassifier().fit([[0]], [4]), name="model", registered_model_name=MODEL_NAME
            )
    return MlflowStore(tracking_uri=uri)


def test_champion_must_be_the_best_version(registry):
    client = registry.client()
    write_report(("2", 0.9, 0.8), champion=("1", 0.8, 0.6))
    assert not champion_is_best(registry, here()).passed  # no alias at all
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, "1")
    result = champion_is_best(registry, here())
    assert not result.passed and result.metadata["champion_version"].value == "1"
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
    assert champion_is_best(registry, here()).passed
    write_report(("2", 0.9, 0.5), champion=("1", 0.8, 0.6))
    assert not champion_is_best(registry, here()).passed
