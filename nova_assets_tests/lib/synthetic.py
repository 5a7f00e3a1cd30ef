"""Small made-up product sets for model tests: labels by OFF's rules on the complete tags, names
and categories that go with the group (in several languages), as on OFF."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nova_assets.lib.ml.model_input import ProductVectorizer
from nova_assets.lib.nutrients import CSV_COLUMNS
from nova_assets.lib.warehouse.nova_rules import NOVA_MARKERS, marker_nova_group

NAMES = {
    1: ["fresh apples", "pommes fraîches", "frische Karotten", "lentejas verdes", "dried beans"],
    2: ["sea salt", "sel de mer", "Meersalz", "cane sugar", "sucre de canne"],
    3: ["salted peanuts", "cacahuètes salées", "sweet jam", "confiture sucrée", "salzige Nüsse"],
    4: ["cola soda", "chocolate cookies", "biscuits au chocolat", "Schokoriegel", "galletas"],
}
# Categories tell groups apart less than names do, as on OFF: snacks are groups 3 and 4 alike.
CATEGORIES = {
    1: ["en:plant-based-foods"],
    2: ["en:condiments", "en:salts"],
    3: ["en:snacks"],
    4: ["en:snacks"],
}
PLAIN = ["en:apple", "en:carrot", "en:bean", "en:peanut", "en:fruit", "en:wheat-flour"]
MARKERS = {3: ["en:salt", "en:sugar"], 4: ["en:flavouring", "en:emulsifier"]}
SHARES = (0.15, 0.05, 0.25, 0.55)
# Per group, typical (energy kcal, fat, saturated fat, carbohydrates, sugars, fiber, proteins,
# salt) per 100 g, as on OFF: sugary, fatty and salty the more processed.
NUTRIENT_PROFILES = {
    1: (60, 0.5, 0.1, 10, 6, 3, 2, 0.02),
    2: (10, 0.0, 0.0, 2, 1, 0, 0, 60),
    3: (300, 15, 5, 30, 15, 2, 8, 1.5),
    4: (480, 22, 10, 60, 35, 1.5, 5, 0.8),
}


def products(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`n` raw products (the model's input columns, nutrients included) and their groups by
    OFF's rules."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for target in rng.choice([1, 2, 3, 4], size=n, p=SHARES):
        ingredients = list(rng.choice(PLAIN, size=2, replace=False))
        additives = []
        if target == 2:
            ingredients = ["en:salt"]
        elif target == 4 and rng.random() < 0.3:
            # Its only marker an additive, which OFF also writes among the ingredients.
            ingredients.append("en:e322")
            additives = ["en:e322"]
        elif target in MARKERS:
            ingredients.append(str(rng.choice(MARKERS[target])))
        categories = list(CATEGORIES[target])
        name = f"{rng.choice(NAMES[target])} {rng.integers(100)}"
        labels.append(marker_nova_group(ingredients, additives, categories))
        profile = np.array(NUTRIENT_PROFILES[labels[-1]], dtype=float)
        values = np.clip(profile * rng.uniform(0.7, 1.3, size=len(profile)), 0, None)
        values[1:] = np.minimum(values[1:], 100)
        values[2], values[4] = min(values[2], values[1]), min(values[4], values[3])
        rows.append(
            {
                "ingredients_tags": ingredients,
                "additives_tags": additives,
                "categories_tags": categories,
                "product_name": name,
                **dict(zip(CSV_COLUMNS, values.round(2), strict=True)),
            }
        )
    return pd.DataFrame(rows), np.array(labels, dtype=np.int8)


def vocabulary(frame: pd.DataFrame) -> list[str]:
    """Every tag of the frame, as `family:tag` features, and every OFF marker (as
    `build_vocabulary` holds them)."""
    features = set(NOVA_MARKERS)
    for family in ("ingredients", "additives", "categories"):
        for tags in frame[f"{family}_tags"]:
            features.update(f"{family}:{t}" for t in tags)
    return sorted(features)


def matrix(n: int, seed: int = 0):
    """`products` as a labelled ProductMatrix over their own vocabulary."""
    frame, labels = products(n, seed)
    m = ProductVectorizer(vocabulary(frame)).fit().transform(frame)
    m.labels = labels
    m.codes = np.array([f"{seed}-{i:06d}" for i in range(n)])
    return m
