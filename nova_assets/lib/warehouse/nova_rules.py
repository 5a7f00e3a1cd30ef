"""Open Food Facts NOVA marker rules, as plain data plus one pure function.

OFF's `nova_group` is not a human judgement: it is computed from the product's tags by
`compute_nova_group` in ProductOpener's Food.pm. Reimplementing it lets us label synthetic
dumps, check real labels, and tell which model features are known markers. Sources and the
algorithm are described in data/NOVA_RULES.md (shared data notes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BLANK_REASONS",
    "GROUP_2_CATEGORIES",
    "GROUP_3_ADDITIVES",
    "GROUP_3_CATEGORIES",
    "GROUP_3_INGREDIENTS",
    "GROUP_4_ADDITIVES",
    "GROUP_4_INGREDIENT_CLASSES",
    "GROUP_4_INGREDIENTS",
    "NON_FOOD_CATEGORY",
    "NOVA_MARKERS",
    "blank_reason",
    "compute_nova_group",
    "marker_group",
    "marker_nova_group",
    "markers_of",
    "rules_group",
]

NON_FOOD_CATEGORY = "en:non-food-products"
WATERS_CATEGORY = "en:waters"
FLAVOURED_WATERS_CATEGORIES = frozenset({"en:flavored-waters", "en:flavoured-waters"})


def _codes(*specs: str) -> frozenset[str]:
    """Expand additive specs such as "e100-e107" or "e322" into `en:` tags.

    Written as ranges because that is how the OFF lists read; expanding them keeps lookups
    exact set membership.
    """
    tags: set[str] = set()
    for spec in specs:
        if "-" in spec:
            low, high = spec.split("-")
            for number in range(int(low[1:]), int(high[1:]) + 1):
                tags.add(f"en:e{number}")
        else:
            tags.add(f"en:{spec}")
    return frozenset(tags)


def _lettered(base: str, letters: str) -> list[str]:
    """Sub-variants like e150a..e150d, which the OFF list names individually."""
    return [f"{base}{letter}" for letter in letters]


# --- Group 2: processed culinary ingredients (categories only) -------------------------------
GROUP_2_CATEGORIES: frozenset[str] = frozenset(
    {
        "en:fats",
        "en:salts",
        "en:vinegars",
        "en:sugars",
        "en:honeys",
        "en:maple-syrups",
        # nova.t: "starches, salt" + en:starches and en:starches alone are both group 2.
        "en:starches",
    }
)

# --- Group 3: processed foods ----------------------------------------------------------------
GROUP_3_INGREDIENTS: frozenset[str] = frozenset(
    {
        # Config_off.pm 2020
        "en:preservative",
        "en:anti-caking-agent",
        "en:salt",
        "en:sugar",
        "en:vegetable-oil",
        "en:vegetal-oil",
        "en:vegetable-fat",
        "en:butter",
        "en:honey",
        "en:maple-syrup",
        "en:starch",
        # taxonomy `nova:en` markers seen firing in the 2026 JSONL sample
        "en:milk-powder",
        "en:enzyme",
        "en:cheese",
        "en:sauce",
    }
)

GROUP_3_CATEGORIES: frozenset[str] = frozenset(
    {
        # Config_off.pm 2020 ("just examples ... group 3 unless an ingredient makes them 4")
        "en:wines",
        "en:beers",
        "en:ciders",
        "en:cheeses",
        "en:prepared-meats",
        "en:terrines",
        "en:pates",
        "en:tofu",
        "en:alcoholic-beverages",
        "en:meals",
        "en:sodas",
        "en:ice-creams",
        "en:chocolates",
        "en:candies",
        "en:sugary-snacks",
        "en:salty-snacks",
        "en:baby-milks",
        "en:sausages",
        "en:hard-liquors",
        # taxonomy markers: seen firing in 2026 data / required by nova.t ("tomatoes" + sandwiches)
        "en:sweet-snacks",
        "en:sandwiches",
    }
)

GROUP_3_ADDITIVES: frozenset[str] = _codes("e202", "e249-e252")

# --- Group 4: ultra-processed foods ----------------------------------------------------------
GROUP_4_INGREDIENT_CLASSES: frozenset[str] = frozenset(
    {
        "en:anti-foaming-agent",
        "en:bulking-agent",
        "en:carbonating-agent",
        "en:colour",
        "en:colour-stabilizer",
        "en:emulsifier",
        "en:firming-agent",
        "en:flavour-enhancer",
        "en:gelling-agent",
        "en:glazing-agent",
        "en:sequestrant",
        "en:sweetener",
        "en:thickener",
        "en:humectant",
    }
)

GROUP_4_INGREDIENTS: frozenset[str] = frozenset(
    {
        # Config_off.pm 2020
        "en:flavour",
        "en:flavouring",
        "en:casein",
        "en:gluten",
        "en:lactose",
        "en:whey",
        "en:hydrogenated-oil",
        "en:hydrogenated-fat",
        "en:hydrolysed-proteins",
        "en:maltodextrin",
        "en:invert-sugar",
        "en:high-fructose-corn-syrup",
        "en:glucose",
        "en:glucose-syrup",
        "en:dextrose",
        "en:milk-proteins",
        "en:whey-proteins",
        "en:lecithin",
        # taxonomy markers seen firing in the 2026 JSONL sample
        "en:fructose",
        "en:vegetable-fiber",
        # modified starches are E14xx in the taxonomy
        "en:modified-starch",
        "en:modified-corn-starch",
        # Processing markers (`ingredients_processing`, e.g. en:modified, en:processed-with-alkali)
        # are stored by OFF under the "ingredients" tagtype and never appear in the CSV's
        # ingredients_tags; callers that know the nested processing values can pass them as tags.
        # en:chocolate is deliberately absent: it fires in the JSONL only via processed-with-alkali.
        "en:modified",
        "en:processed-with-alkali",
    }
)

GROUP_4_ADDITIVES: frozenset[str] = _codes(
    # colours
    "e100-e107",
    "e101a",
    "e110",
    "e111",
    "e120-e133",
    "e140-e143",
    "e150",
    *_lettered("e150", "abcd"),
    "e151-e155",
    "e160",
    *_lettered("e160", "abcdef"),
    "e161",
    *_lettered("e161", "abcdefghij"),
    "e162",
    "e163",
    *_lettered("e163", "abcdef"),
    "e164-e166",
    "e170-e175",
    "e180-e182",
    # flavour enhancers
    "e620-e637",
    "e640",
    "e641",
    "e650",
    "e1104",
    # sweeteners
    "e950-e957",
    "e959-e962",
    "e964-e969",
    # anti-foaming
    "e551",
    "e900a",
    "e905c",
    "e905d",
    "e1521",
    # glazing
    "e900-e905",
    "e907",
    # propellants
    "e938",
    "e939",
    "e941",
    "e942",
    "e943a",
    "e943b",
    # thickeners, stabilisers, emulsifiers
    "e400-e407",
    "e407a",
    "e409",
    "e410",
    "e412-e418",
    "e420-e422",
    "e425",
    "e428",
    "e430-e436",
    "e440-e445",
    "e450-e452",
    "e459-e461",
    "e463-e466",
    "e468-e478",
    "e470a",
    "e470b",
    *_lettered("e472", "abcdef"),
    "e479b",
    "e480-e483",
    "e491-e495",
    # modified starches
    "e1400-e1405",
    "e1410",
    "e1412-e1414",
    "e1420",
    "e1422",
    "e1440",
    "e1442",
    "e1450",
    "e1451",
    "e1505",
    # carbonating
    "e290",
    # emulsifiers added by the later Config_off version
    "e322",
    "e325-e329",
)


def _build_markers() -> dict[str, int]:
    """Flatten the lists into `family:tag -> group`, the shape feature code can look up."""
    markers: dict[str, int] = {}
    families: list[tuple[str, Iterable[str], int]] = [
        ("categories", GROUP_2_CATEGORIES, 2),
        ("ingredients", GROUP_3_INGREDIENTS, 3),
        ("categories", GROUP_3_CATEGORIES, 3),
        ("additives", GROUP_3_ADDITIVES, 3),
        ("ingredients", GROUP_4_INGREDIENT_CLASSES, 4),
        ("ingredients", GROUP_4_INGREDIENTS, 4),
        ("additives", GROUP_4_ADDITIVES, 4),
    ]
    for family, tags, group in families:
        for tag in tags:
            markers[f"{family}:{tag}"] = group
    return markers


NOVA_MARKERS: dict[str, int] = _build_markers()
"""Namespaced tag (`ingredients:en:sugar`, `additives:en:e322`, `categories:en:sodas`) -> group."""

_INGREDIENT_MARKERS: dict[str, int] = {
    key.split(":", 1)[1]: group
    for key, group in NOVA_MARKERS.items()
    if key.startswith("ingredients:")
}
_ADDITIVE_MARKERS: dict[str, int] = {
    key.split(":", 1)[1]: group
    for key, group in NOVA_MARKERS.items()
    if key.startswith("additives:")
}
_CATEGORY_MARKERS: dict[str, int] = {
    key.split(":", 1)[1]: group
    for key, group in NOVA_MARKERS.items()
    if key.startswith("categories:")
}

# OFF's additive tags carry their taxonomy parents (en:e322i comes with en:e322); this parent
# lookup keeps the rule right when a caller passes only the child variant.
ADDITIVE_BASE = r"en:e\d+[a-h]?"
ADDITIVE_VARIANT_SUFFIXES = ("iii", "ii", "iv", "vi", "v", "i")
ADDITIVE_VARIANT_PATTERN = rf"^({ADDITIVE_BASE})(?:{'|'.join(ADDITIVE_VARIANT_SUFFIXES)})$"
_ADDITIVE_VARIANT = re.compile(ADDITIVE_VARIANT_PATTERN)


def with_additive_variants(markers: list[str]) -> list[str]:
    """`markers` and every variant tag that stands for one (en:e322 → en:e322i … en:e322vi): a
    tag is in this list exactly when it, or its parent by ADDITIVE_VARIANT_PATTERN, is a marker,
    which SQL can test with one list lookup instead of a regex per tag."""
    variants = [
        marker + suffix
        for marker in markers
        if re.fullmatch(ADDITIVE_BASE, marker)
        for suffix in ADDITIVE_VARIANT_SUFFIXES
    ]
    return sorted({*markers, *variants})


def markers_of(family: str, group: int) -> list[str]:
    """The marker tags of one family that vote for `group`, sorted (for SQL lists)."""
    prefix = f"{family}:"
    return sorted(
        key.removeprefix(prefix)
        for key, g in NOVA_MARKERS.items()
        if g == group and key.startswith(prefix)
    )


def marker_group(family: str, tag: str) -> int | None:
    """NOVA group a single tag votes for, or None when it is not a marker."""
    if family == "additives":
        return _additive_group(tag)
    return NOVA_MARKERS.get(f"{family}:{tag}")


def _additive_group(tag: str) -> int | None:
    group = _ADDITIVE_MARKERS.get(tag)
    if group is None:
        match = _ADDITIVE_VARIANT.match(tag)
        if match is not None:
            group = _ADDITIVE_MARKERS.get(match.group(1))
    return group


def rules_group(has_2: Any, has_3: Any, has_4: Any) -> Any:
    """The group OFF's markers give: the highest, except that group 3 never overrides group 2
    (salt in a product of the category en:sugars stays 2); no marker means 1.

    Takes booleans or numpy arrays of them (one per product), so the rules and the model's
    marker features decide in the one same place.
    """
    return np.where(has_4, 4, np.where(has_2, 2, np.where(has_3, 3, 1)))


def _marker_flags(
    ingredients_tags: Sequence[str], additives_tags: Sequence[str], categories: set[str]
) -> tuple[bool, bool, bool]:
    """Whether any tag is a group-2, group-3, group-4 marker."""
    found = {_CATEGORY_MARKERS.get(tag) for tag in categories}
    found |= {_INGREDIENT_MARKERS.get(tag) for tag in ingredients_tags}
    found |= {_additive_group(tag) for tag in additives_tags}
    return 2 in found, 3 in found, 4 in found


def marker_nova_group(
    ingredients_tags: Sequence[str], additives_tags: Sequence[str], categories_tags: Sequence[str]
) -> int:
    """OFF's rules on whatever evidence is present: markers only, without the guards that
    leave a product blank when a family is missing. The `rules` baseline of the evaluation."""
    flags = _marker_flags(ingredients_tags, additives_tags, {t for t in categories_tags if t})
    return int(rules_group(*flags))


def compute_nova_group(
    ingredients_tags: Sequence[str],
    additives_tags: Sequence[str],
    categories_tags: Sequence[str],
    has_ingredients_text: bool,
    *,
    ingredients_n: float | None = None,
    unknown_ingredients_n: float | None = None,
) -> int | None:
    """Reproduce OFF's `nova_group` from the product's tags (Food.pm `compute_nova_group`).

    Tags must already include their taxonomy parents, as OFF's `*_tags` fields do, because
    markers such as `en:sugar` are parents of the ingredients actually written on the pack.
    `ingredients_n`/`unknown_ingredients_n` are optional: the CSV dump lacks them, so the
    "too many unknown ingredients" guard only runs when a caller has the counts.
    Returns None where OFF stores no group (non-food, missing ingredients or category).
    """
    too_many_unknown = (
        ingredients_n is not None
        and unknown_ingredients_n is not None
        and float(unknown_ingredients_n) > float(ingredients_n) / 2
    )
    tags = (ingredients_tags, additives_tags, categories_tags)
    return _decide(*tags, has_ingredients_text, too_many_unknown)[0]


# Why OFF leaves `nova_group` blank, in the order its algorithm decides. The first three are
# OFF's own `nova_group_error` values.
BLANK_REASONS = (
    "non_food",
    "missing_ingredients",
    "too_many_unknown_ingredients",
    "missing_category",
    "unexplained",
)


def blank_reason(
    ingredients_tags: Sequence[str],
    additives_tags: Sequence[str],
    categories_tags: Sequence[str],
    has_ingredients_text: bool,
) -> str:
    """Why OFF gave a product of the dump no `nova_group`, from the dump's own fields.

    The CSV has no unknown-ingredient counts, so the algorithm decides by elimination: a food
    with ingredients text, categories and no group-4 marker can only have been left blank for
    too many unknown ingredients; without categories it says `missing_category` (OFF would name
    the unknown ingredients first when both hold, which the CSV cannot tell). `unexplained`:
    the rules would give a group (a group-4 marker OFF's taxonomy does not know, say).
    """
    group, reason = _decide(ingredients_tags, additives_tags, categories_tags, has_ingredients_text)
    if reason:
        return reason
    if has_ingredients_text and group != 4:
        return "too_many_unknown_ingredients"
    return "unexplained"


def _decide(
    ingredients_tags: Sequence[str],
    additives_tags: Sequence[str],
    categories_tags: Sequence[str],
    has_ingredients_text: bool,
    too_many_unknown: bool = False,
) -> tuple[int | None, str]:
    """(group or None, why it is None: a BLANK_REASONS entry, or "" when there is a group).
    `too_many_unknown`: more than half the ingredients unknown, where the caller has the counts."""
    categories = {tag for tag in categories_tags if tag}
    if NON_FOOD_CATEGORY in categories:
        return None, "non_food"
    has_2, has_3, has_4 = _marker_flags(ingredients_tags, additives_tags, categories)
    nova = int(rules_group(has_2, has_3, has_4))
    if not has_ingredients_text:
        if nova == 2:
            return 2, ""
        if (
            nova == 1
            and WATERS_CATEGORY in categories
            and not categories & FLAVOURED_WATERS_CATEGORIES
        ):
            return 1, ""
        return None, "missing_ingredients"
    if nova != 4:
        if too_many_unknown:
            return None, "too_many_unknown_ingredients"
        if not categories:
            return None, "missing_category"
    return nova, ""
