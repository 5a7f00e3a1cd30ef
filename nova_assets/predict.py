"""The champion's NOVA guess for one product, from a shell.

    uv run python -m nova_assets.predict --code 3017620422003
    uv run python -m nova_assets.predict --tags en:sugar,en:palm-oil --additives en:e322

`--code` looks the product up in the published read-only copy (so it works while runs write);
`--tags`/`--additives`/`--categories` take comma-separated OFF tags. Errors are one line on
stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from nova_assets.lib.model_input import BadModelInput, as_tags
from nova_assets.lib.models import explain
from nova_assets.lib.paths import data_paths
from nova_assets.lib.registry import (
    CHAMPION,
    MODEL_NAME,
    champion_version,
    client_for,
    load_pipeline,
)
from nova_assets.lib.serving import catalog_path

MATERIALIZE_FIRST = "materialize the assets first: uv run dg launch --assets '*'"


class PredictError(Exception):
    """A problem the user can fix; printed as one line."""


def product_by_code(code: str) -> dict:
    """The product's name, label and tags from the published copy."""
    catalog = catalog_path(data_paths().serving)
    if not catalog.exists():
        raise PredictError(f"no published copy at {catalog}: {MATERIALIZE_FIRST}")
    with duckdb.connect(str(catalog), read_only=True) as con:
        row = con.execute(
            "SELECT code, product_name, nova_group, ingredients_tags, additives_tags, "
            "categories_tags FROM products WHERE code = ?",
            [code],
        ).fetchall()
    if not row:
        raise PredictError(f"no product with code {code!r} in {catalog}")
    code, name, group, ingredients, additives, categories = row[0]
    return {
        "code": code,
        "product_name": name,
        "off_nova_group": group,
        "ingredients_tags": list(ingredients or []),
        "additives_tags": list(additives or []),
        "categories_tags": list(categories or []),
    }


def predict(product: dict) -> dict:
    """`product` with the champion's group, probability, reasons and version added."""
    uri = data_paths().mlflow_tracking_uri
    store = Path(uri.removeprefix("sqlite:///"))
    if uri.startswith("sqlite:///") and not store.exists():
        raise PredictError(f"no MLflow store at {store}: {MATERIALIZE_FIRST}")
    champion = champion_version(client_for(uri))
    if champion is None:
        raise PredictError(f"{MODEL_NAME} has no '{CHAMPION}' model yet: {MATERIALIZE_FIRST}")
    pipeline = load_pipeline(uri, f"models:/{MODEL_NAME}/{champion.version}")
    tags = pd.DataFrame(
        {c: [product[c]] for c in ("ingredients_tags", "additives_tags", "categories_tags")}
    )
    try:
        (answer,) = explain(pipeline, tags)
    except BadModelInput as exc:
        raise PredictError(exc.message) from exc
    return {**product, **answer, "model_version": int(champion.version)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nova_assets.predict", description=__doc__.split("\n\n")[0]
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--code", help="a product code in the warehouse")
    what.add_argument("--tags", help="comma-separated ingredients tags, e.g. en:sugar,en:palm-oil")
    parser.add_argument("--additives", help="comma-separated additives tags (with --tags)")
    parser.add_argument("--categories", help="comma-separated categories tags (with --tags)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        if args.code:
            product = product_by_code(args.code)
        else:
            product = {
                "ingredients_tags": as_tags(args.tags),
                "additives_tags": as_tags(args.additives),
                "categories_tags": as_tags(args.categories),
            }
        answer = predict(product)
    except PredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer, default=str))
        return 0
    if "code" in answer:
        print(f"{answer['code']}  {answer['product_name'] or '(no name)'}")
        known = answer["off_nova_group"]
        print(f"OFF's NOVA group: {known if known is not None else 'none'}")
    print(
        f"predicted NOVA group {answer['nova_group']} (probability {answer['probability']:.2f}, "
        f"{MODEL_NAME} v{answer['model_version']})"
    )
    print("because of: " + (", ".join(answer["reasons"]) or "no tag the model weighs for it"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
