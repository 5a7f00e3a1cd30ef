import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from nova_assets.lib.ml.registry import UntrustedModelError, load_pipeline


def shout(x):
    """A function skops does not trust by default: it stands for any code in a model file."""
    return x


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "a").as_uri())
    return uri, experiment


def log(store, model, **kwargs) -> str:
    _, experiment = store
    with mlflow.start_run(experiment_id=experiment):
        return mlflow.sklearn.log_model(model, name="model", **kwargs).model_uri


def fitted(*steps) -> Pipeline:
    X, y = np.eye(4), np.array([1, 2, 3, 4])
    return Pipeline([*steps, ("classifier", LogisticRegression())]).fit(X, y)


def test_a_plain_sklearn_pipeline_loads(store):
    pipeline = fitted()
    loaded = load_pipeline(store[0], log(store, pipeline))
    assert list(loaded.predict(np.eye(4))) == list(pipeline.predict(np.eye(4)))


def test_types_the_model_itself_trusts_are_not_trusted_here(store):
    pipeline = fitted(("f", FunctionTransformer(shout)))
    uri = log(store, pipeline, skops_trusted_types=[f"{__name__}.shout"])
    assert mlflow.sklearn.load_model(uri) is not None  # MLflow's loader takes the model's word
    with pytest.raises(UntrustedModelError, match=r"does not trust: .*shout"):
        load_pipeline(store[0], uri)


def test_a_pickled_model_is_never_unpickled(store):
    uri = log(store, fitted(), serialization_format="cloudpickle")
    with pytest.raises(UntrustedModelError, match="'cloudpickle', not skops"):
        load_pipeline(store[0], uri)


def test_loading_asks_the_given_store_not_the_process_wide_one(store, tmp_path):
    pipeline = fitted()
    uri = log(store, pipeline)
    version = mlflow.register_model(uri, "m").version
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    for model_uri in (f"models:/m/{version}", uri):
        loaded = load_pipeline(store[0], model_uri)
        assert list(loaded.predict(np.eye(4))) == list(pipeline.predict(np.eye(4)))


def test_nutrient_trees_pointing_outside_themselves_are_refused(store):
    from nova_assets.lib.ml.classifiers import TRUSTED_TYPES, fit_pipeline
    from nova_assets_tests.lib import synthetic

    train = synthetic.matrix(400)
    pipeline = fit_pipeline("evidence_logistic_regression", train, train.labels)
    trees = pipeline.named_steps["classifier"].nutrient_model_
    assert trees is not None
    sound = load_pipeline(store[0], log(store, pipeline, skops_trusted_types=TRUSTED_TYPES))
    assert (sound.predict(synthetic.products(20, seed=5)[0]) >= 1).all()
    node = trees._predictors[0][0].nodes
    inner = np.flatnonzero(node["is_leaf"] == 0)[0]
    node["left"][inner] = len(node) + 1000  # a tampered file's index past the tree's end
    uri = log(store, pipeline, skops_trusted_types=TRUSTED_TYPES)
    with pytest.raises(UntrustedModelError, match="nutrient trees that point outside"):
        load_pipeline(store[0], uri)


def test_a_model_saved_before_lib_was_split_by_domain_still_loads(store, tmp_path, monkeypatch):
    """Issue 19: models registered before the move name their classes by the old modules
    (`nova_assets.lib.models.NovaClassifier`); the champion must still load after it."""
    import zipfile

    from nova_assets.lib.ml import classifiers, registry
    from nova_assets_tests.lib import synthetic

    # Its own data: fits of the same data share their nutrient trees, which a test above tampers.
    train = synthetic.matrix(400, seed=1)
    pipeline = classifiers.fit_pipeline("evidence_logistic_regression", train, train.labels)
    uri = log(store, pipeline, skops_trusted_types=classifiers.TRUSTED_TYPES)
    version = mlflow.register_model(uri, "nova").version
    # What the code before the move wrote: the same file with the old module names.
    (saved,) = (tmp_path / "a").rglob("*.skops")
    with zipfile.ZipFile(saved) as archive:
        entries = {item.filename: archive.read(item) for item in archive.infolist()}
    schema = entries["schema.json"].decode()
    for old, new in classifiers.MOVED_MODULES.items():
        schema = schema.replace(f'"{new}"', f'"{old}"')
    assert '"nova_assets.lib.models"' in schema and "lib.ml." not in schema
    entries["schema.json"] = schema.encode()
    with zipfile.ZipFile(saved, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)

    products = synthetic.products(50, seed=3)[0]
    loaded = load_pipeline(store[0], f"models:/nova/{version}")
    assert type(loaded.named_steps["classifier"]) is classifiers.NovaClassifier
    assert (loaded.predict(products) == pipeline.predict(products)).all()

    # Without the map the old file is refused (as it was right after the move), by name.
    monkeypatch.setattr(classifiers, "MOVED_MODULES", {})
    with pytest.raises(UntrustedModelError, match=r"nova_assets\.lib\.models\.NovaClassifier"):
        registry.load_pipeline(store[0], f"models:/nova/{version}")
