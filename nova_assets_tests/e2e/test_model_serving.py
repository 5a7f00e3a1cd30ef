"""`mlflow models serve` on the champion, as the README shows it: a real server on 127.0.0.1
answering raw products (tags, and optionally a name, the partial flag and nutrients), and a
400 with a clear message for each kind of bad request."""

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from nova_assets.lib.ml.classifiers import TRUSTED_TYPES, fit_pipeline
from nova_assets.lib.ml.model_input import NUTRIENT_INPUTS, ProductVectorizer, example_input
from nova_assets.lib.ml.registry import CHAMPION, MODEL_NAME, client_for
from nova_assets.lib.ml.tracking import SIGNATURE
from nova_assets_tests.helpers import free_port, process_group, wait_until_ready
from nova_assets_tests.lib import synthetic

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    frame, labels = synthetic.products(2000)
    frame = pd.concat([frame, example_input().drop(columns="partial_ingredients")])
    labels = np.concatenate([labels, [4, 1]])
    matrix = ProductVectorizer(synthetic.vocabulary(frame)).fit().transform(frame)
    pipeline = fit_pipeline("evidence_logistic_regression", matrix, labels)
    example = example_input()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("nova", artifact_location=(root / "a").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=SIGNATURE,
            input_example=example,
            registered_model_name=MODEL_NAME,
            skops_trusted_types=TRUSTED_TYPES,
        )
    client_for(uri).set_registered_model_alias(MODEL_NAME, CHAMPION, info.registered_model_version)
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "models",
        "serve",
        "-m",
        f"models:/{MODEL_NAME}@{CHAMPION}",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    url = f"http://127.0.0.1:{port}"
    with process_group(command, root / "serve.log", env=env) as process:
        wait_until_ready(
            lambda: urllib.request.urlopen(f"{url}/ping", timeout=5).close(),
            process,
            root / "serve.log",
            120,
        )
        yield url


def invoke(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def records(*rows: dict) -> dict:
    return {"dataframe_records": list(rows)}


SPREAD = {
    "ingredients_tags": ["en:sugar", "en:palm-oil", "en:hazelnut", "en:emulsifier", "en:e322"],
    "additives_tags": ["en:e322"],
    "categories_tags": ["en:spreads"],
}
WATER = {
    "ingredients_tags": ["en:water", "en:mineral-water"],
    "additives_tags": [],
    "categories_tags": ["en:waters"],
}


def test_raw_tags_in_groups_out(server):
    status, answer = invoke(server, records(SPREAD, WATER))
    assert status == 200, answer
    assert answer["predictions"] == [4, 1]


def test_a_name_is_enough_and_the_optional_columns_are_taken(server):
    nothing = {k: [] for k in WATER}
    cookies = {**nothing, "product_name": "biscuits au chocolat"}
    apples = {
        **nothing,
        "product_name": "pommes fraîches",
        "categories_tags": ["en:plant-based-foods"],
    }
    partial = {**SPREAD, "product_name": "Hazelnut spread", "partial_ingredients": True}
    status, answer = invoke(server, records(cookies, apples, partial))
    assert status == 200, answer
    assert answer["predictions"] == [4, 1, 4]


def test_nutrients_per_100_g_are_taken_and_enough_alone(server):
    nothing = {k: [] for k in WATER}
    # A sugary, fatty product as synthetic group-4 products are, known by nothing else.
    sweet = dict(zip(NUTRIENT_INPUTS, synthetic.NUTRIENT_PROFILES[4], strict=True), **nothing)
    with_tags = {
        **SPREAD,
        **dict(zip(NUTRIENT_INPUTS, synthetic.NUTRIENT_PROFILES[4], strict=True)),
    }
    status, answer = invoke(server, records(sweet, with_tags, {**WATER, "fat_100g": None}))
    assert status == 200, answer
    assert answer["predictions"] == [4, 4, 1]


def test_offs_tag_spellings_are_read_as_offs_ids(server):
    spelt = {
        "ingredients_tags": ["Sugar", " palm oil ", "hazelnut", "emulsifier", "E322"],
        "additives_tags": ["e322"],
        "categories_tags": ["spreads"],
    }
    water = {**WATER, "ingredients_tags": ["water", "mineral_water"], "categories_tags": ["Waters"]}
    status, answer = invoke(server, records(spelt, water))
    assert status == 200, answer
    assert answer["predictions"] == [4, 1]


def test_a_string_where_a_list_belongs_is_refused_by_the_signature(server):
    row = {**WATER, "ingredients_tags": "en:water,en:mineral-water"}
    status, answer = invoke(server, records(row))
    assert status == 400
    assert "column ingredients_tags to type 'Array(string)'" in answer["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (records({"ingredients_tags": ["en:sugar"], "additives_tags": []}), "categories_tags"),
        # Wrong types stop at the model's signature, whose message names the column and type.
        (
            records({**WATER, "additives_tags": [1, 2]}),
            "column additives_tags to type 'Array(string)'",
        ),
        (
            records({**WATER, "ingredients_tags": 3}),
            "column ingredients_tags to type 'Array(string)'",
        ),
        (records({k: [] for k in WATER}), "have no tags, no name and no nutrient at all"),
        (records({**WATER, "product_name": 7}), "product_name"),
        (
            records({**WATER, "partial_ingredients": "yes"}),
            "column partial_ingredients: expected true or false, got str 'yes'",
        ),
        (records({**WATER, "partial_ingredients": 1}), "column partial_ingredients"),
        # Nothing the model knows: refused, the tags it did not understand named.
        (
            records(
                WATER,
                {"ingredients_tags": ["foo", "bar"], "additives_tags": [], "categories_tags": []},
            ),
            "product(s) at row 1 have no tag the model knows, no name and no nutrient: nothing to "
            "predict from. Tags not understood: row 1 ingredients_tags: en:foo, en:bar",
        ),
        (records({**WATER, "sugars_100g": 150.0}), "sugars_100g: 150.0 per 100 g is impossible"),
        (records({**WATER, "sugars_100g": "lots"}), "sugars_100g"),
        ({"dataframe_split": {"columns": list(WATER), "data": []}}, "no product"),
        # No record has no column either: MLflow's signature check answers first.
        ({"dataframe_records": []}, "Model is missing inputs"),
    ],
    ids=[
        "missing-column",
        "numbers-as-tags",
        "number-not-list",
        "all-lists-empty",
        "number-as-name",
        "text-as-flag",
        "number-as-flag",
        "only-unknown-tags",
        "impossible-nutrient",
        "text-as-nutrient",
        "no-rows",
        "no-records",
    ],
)
def test_bad_requests_get_a_400_that_says_why(server, body, message):
    status, answer = invoke(server, body)
    assert status == 400, answer
    assert message in answer["message"], answer["message"][:500]
