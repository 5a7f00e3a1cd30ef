"""The champion's NOVA guess for one product, from a shell.

    uv run python -m nova_assets.predict --code 3017620422003
    uv run python -m nova_assets.predict --name "Pâte à tartiner aux noisettes" --categories en:spreads
    uv run python -m nova_assets.predict --tags en:sugar,en:palm-oil --additives en:e322

`--code` looks the product up in the published read-only copy (so it works while runs write);
otherwise give what you know of the product: `--name` and comma-separated OFF tags with
`--tags` (ingredients), `--additives`, `--categories`, `--partial-ingredients` when many
of its ingredients are unknown to OFF, and nutrients per 100 g as OFF's CSV names them
(`--sugars_100g 48 --energy-kcal_100g 539`). Tags are read as OFF spells them (`palm oil` is
`en:palm-oil`); those the model does not know are named, and an answer made from nothing it
knows is never confident. Errors are one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd

from nova_assets.lib.ml.model_input import (
    INPUT_COLUMNS,
    NAME_COLUMN,
    NUTRIENT_INPUTS,
    PARTIAL_COLUMN,
    TAG_FORM,
    BadModelInput,
    as_tags,
)
from nova_assets.lib.ml.reasons import explain
from nova_assets.lib.ml.registry import (
    CHAMPION,
    MODEL_NAME,
    champion_version,
    client_for,
    load_pipeline,
)
from nova_assets.lib.nutrients import as_model_input_sql
from nova_assets.lib.paths import data_paths
from nova_assets.lib.publishing.read_only_copy import MATERIALIZE_FIRST, catalog_path


class PredictError(Exception):
    """A problem the user can fix; printed as one line."""


def product_by_code(code: str) -> dict:
    """The product's name, label and tags from the published copy."""
    catalog = catalog_path(data_paths().serving)
    if not catalog.exists():
        raise PredictError(f"no published copy at {catalog}: {MATERIALIZE_FIRST}")
    with duckdb.connect(str(catalog), read_only=True) as con:
        row = con.execute(
            "SELECT code, product_name, nova_group, nova_blank_reason, ingredients_tags, "
            f"additives_tags, categories_tags, {as_model_input_sql()} FROM products "
            "WHERE code = ?",
            [code],
        ).fetchall()
    if not row:
        raise PredictError(f"no product with code {code!r} in {catalog}")
    code, name, group, reason, ingredients, additives, categories, *nutrients = row[0]
    return {
        "code": code,
        "product_name": name,
        "off_nova_group": group,
        "nova_blank_reason": reason,
        "ingredients_tags": list(ingredients or []),
        "additives_tags": list(additives or []),
        "categories_tags": list(categories or []),
        "partial_ingredients": reason == "too_many_unknown_ingredients",
        **dict(zip(NUTRIENT_INPUTS, nutrients, strict=True)),
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
    columns = (*INPUT_COLUMNS, NAME_COLUMN, PARTIAL_COLUMN, *NUTRIENT_INPUTS)
    frame = pd.DataFrame({c: [product.get(c)] for c in columns})
    try:
        (answer,) = explain(pipeline, frame)
    except BadModelInput as exc:
        raise PredictError(exc.message) from exc
    return {**product, **answer, "model_version": int(champion.version)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nova_assets.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--code", help="a product code in the warehouse")
    parser.add_argument("--name", help="the product's name, in any language")
    parser.add_argument(
        "--tags",
        help="comma-separated ingredients tags as OFF writes them, e.g. en:sugar,en:palm-oil "
        "('sugar, palm oil' is read so too)",
    )
    parser.add_argument("--additives", help="comma-separated additives tags, e.g. en:e322")
    parser.add_argument("--categories", help="comma-separated categories tags, e.g. en:spreads")
    parser.add_argument(
        "--partial-ingredients",
        action="store_true",
        help="many of the ingredients are unknown to OFF (its too_many_unknown_ingredients)",
    )
    for column in NUTRIENT_INPUTS:
        parser.add_argument(
            f"--{column}", type=float, metavar="AMOUNT", help="per 100 g, as OFF's CSV names it"
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    nutrients = {c: getattr(args, c.replace("-", "_")) for c in NUTRIENT_INPUTS}
    described = [args.name, args.tags, args.additives, args.categories, *nutrients.values()]
    if bool(args.code) == any(v is not None for v in described):
        parser.error(
            "give either --code, or the product: --name and/or --tags/--additives/--categories "
            "and/or its nutrients (--sugars_100g …)"
        )
    try:
        if args.code:
            product = product_by_code(args.code)
        else:
            product = {
                "product_name": args.name,
                "ingredients_tags": as_tags(args.tags),
                "additives_tags": as_tags(args.additives),
                "categories_tags": as_tags(args.categories),
                "partial_ingredients": args.partial_ingredients,
                **nutrients,
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
        why = f" ({answer['nova_blank_reason']})" if answer.get("nova_blank_reason") else ""
        print(f"OFF's NOVA group: {known if known is not None else 'none'}{why}")
    nothing_known = "no tag, name or nutrient the model knows"
    if answer["confident"]:
        sure = "confident"
    elif not answer["known_evidence"]:
        sure = f"not confident: {nothing_known}"
    else:
        sure = "not confident: under its threshold"
    print(
        f"predicted NOVA group {answer['nova_group']} (probability {answer['probability']:.2f}, "
        f"{sure}; {MODEL_NAME} v{answer['model_version']})"
    )
    if answer["unknown_tags"]:
        print(
            "not understood (not in the model's vocabulary; "
            + TAG_FORM
            + "): "
            + "; ".join(f"{c} {', '.join(t)}" for c, t in answer["unknown_tags"].items())
        )
    print(f"from: {', '.join(answer['evidence']) or 'nothing'}")
    if not answer["known_evidence"]:
        print(f"because of: nothing: {nothing_known}")
    else:
        print("because of: " + (", ".join(answer["reasons"]) or "nothing the model weighs for it"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
