"""Generate an Open Food Facts shaped TSV dump of any size from the real 1000-row sample (or the
same products as OFF's Parquet or JSONL export).

The real dump (12+ GB) cannot be downloaded here, so scale tests need a stand-in that keeps
what matters to the pipeline: the exact header, real rows as templates, tags drawn from the
real tag pool, `nova_group` recomputed with OFF's marker rules at realistic class shares, and
the dump's quirks (unescaped quotes, re-emitted duplicate codes, rare lines with extra tabs).

Usage: python benchmarks/generate_dump.py ROWS OUT [--seed N] [--gzip | --parquet | --jsonl]
       [--template PATH] [--variant]
       python benchmarks/generate_dump.py ROWS OUT_DIR --delta-of BASE.tsv [--new-share 0.2]
"""

from __future__ import annotations

import argparse
import gzip as gzip_module
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from nova_assets.lib.warehouse.nova_rules import compute_nova_group, marker_group  # noqa: E402

T = TypeVar("T")

DEFAULT_TEMPLATE = REPO_ROOT / "data" / "sample" / "off_products_sample_1000.tsv.gz"

# Public figures for the real dump (shared data README): 20-27 % of rows carry a nova_group,
# split 4/3/1/2 = 67/20/11/2 %.
LABELLED_SHARE = 0.25
CLASS_SHARES: dict[int, float] = {4: 0.67, 3: 0.20, 1: 0.11, 2: 0.02}
DUPLICATE_SHARE = 0.01
BROKEN_EVERY = 10_000
QUOTE_SHARE = 0.003
EIGHT_DIGIT_SHARE = 0.11
CHUNK_ROWS = 20_000
DRAWS_PER_ROW = 14
# Unlabelled products, as the real sample's blank ones split (cumulative): missing ingredients
# with categories, missing ingredients with only a name, missing category, and too many
# unknown ingredients (written without a group although the known ones would give one).
UNLABELLED_MIX = (0.30, 0.70, 0.85)
GZIP_LEVEL = 1  # speed over ratio: this is test data, not a distribution artefact

# Columns the generator rewrites; every other column is copied from the template row.
VARIABLE_COLUMNS = (
    "code",
    "url",
    "last_modified_t",
    "last_modified_datetime",
    "categories",
    "categories_tags",
    "categories_en",
    "ingredients_text",
    "ingredients_tags",
    "additives_n",
    "additives",
    "additives_tags",
    "additives_en",
    "nova_group",
    "main_category",
    "main_category_en",
)
REQUIRED_COLUMNS = ("code", "ingredients_text", "ingredients_tags", "nova_group")
_ADDITIVE_CODE = re.compile(r"^[a-z]{2}:e\d")


@dataclass
class _Template:
    """One real row, frozen into a format string with holes for the rewritten columns."""

    fmt: str
    url_prefix: str
    url_suffix: str
    last_modified_t: int
    last_modified_datetime: str


@dataclass
class _Pools:
    """Real tag material, split by the NOVA group it can produce, for steered sampling."""

    # Real rows by the group OFF gave them (0: none), with their own categories: a product's
    # name, brand and categories go together and with its group, as on OFF.
    by_group: dict[int, list[tuple[_Template, tuple[list[str], tuple[str, ...]]]]] = field(
        default_factory=dict
    )
    bases: list[list[str]] = field(default_factory=list)
    bundles: dict[int, list[tuple[list[str], tuple[str, str, str, str]]]] = field(
        default_factory=dict
    )
    categories: dict[str, list[tuple[list[str], tuple[str, ...]]]] = field(default_factory=dict)
    extra_markers: dict[int, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    max_modified_t: int = 0


def _split_tags(value: str) -> list[str]:
    return [tag for tag in value.split(",") if tag]


def _tag_name(tag: str) -> str:
    """Readable ingredient name for the synthesised ingredients_text."""
    return tag.split(":", 1)[-1].replace("-", " ")


def _read_template(path: Path) -> tuple[str, list[list[str]]]:
    opener = gzip_module.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        text = handle.read()
    lines = text.split("\n")
    header = lines[0] + "\n"
    width = lines[0].count("\t") + 1
    rows = [line.split("\t") for line in lines[1:] if line]
    return header, [row for row in rows if len(row) == width]


def _build_pools(header: str, rows: list[list[str]]) -> _Pools:
    """Cut the template rows into reusable pieces, classified by the group they imply."""
    columns = header.rstrip("\n").split("\t")
    index = {name: i for i, name in enumerate(columns)}
    missing = [name for name in REQUIRED_COLUMNS if name not in index]
    if missing:
        raise ValueError(f"template lacks required columns: {missing}")

    def get(row: list[str], name: str) -> str:
        i = index.get(name)
        return row[i] if i is not None else ""

    holes = {index[name]: k for k, name in enumerate(VARIABLE_COLUMNS) if name in index}
    pools = _Pools()
    pools.bundles = {1: [], 3: [], 4: []}
    pools.categories = {key: [] for key in ("any", "plain", "g2", "g3", "g3ok", "unlabelled")}
    pools.extra_markers = {3: [], 4: []}

    for row in rows:
        parts = [
            f"{{{holes[i]}}}" if i in holes else value.replace("{", "{{").replace("}", "}}")
            for i, value in enumerate(row)
        ]
        url, code = get(row, "url"), row[index["code"]]
        prefix, _, suffix = url.partition(code) if code and code in url else ("", "", "")
        modified = get(row, "last_modified_t")
        template = _Template(
            fmt="\t".join(parts) + "\n",
            url_prefix=prefix,
            url_suffix=suffix,
            last_modified_t=int(modified) if modified.isdigit() else 0,
            last_modified_datetime=get(row, "last_modified_datetime"),
        )
        pools.max_modified_t = max(pools.max_modified_t, template.last_modified_t)

        ingredients = _split_tags(get(row, "ingredients_tags"))
        additives = _split_tags(get(row, "additives_tags"))
        if ingredients and get(row, "ingredients_text"):
            markers = [t for t in ingredients if marker_group("ingredients", t)]
            # E-numbers among the ingredients, but not an additive marker the row's additives
            # lack: OFF's taxonomy may mark such an ingredient where our rules, which label the
            # generated rows, read additives from `additives_tags` only.
            codes = [
                t
                for t in ingredients
                if _ADDITIVE_CODE.match(t)
                and (marker_group("additives", t) is None or t in additives)
            ]
            base = [t for t in ingredients if t not in markers and not _ADDITIVE_CODE.match(t)]
            if base:
                pools.bases.append(base)
            groups = [marker_group("ingredients", t) or 1 for t in markers]
            groups += [marker_group("additives", t) or 1 for t in additives]
            bundle_group = max(groups, default=1)
            additive_values = (
                str(len(additives)),
                get(row, "additives"),
                ",".join(additives),
                get(row, "additives_en"),
            )
            pools.bundles[bundle_group].append((markers + codes, additive_values))
            for tag in markers:
                group = marker_group("ingredients", tag)
                if group in pools.extra_markers:
                    pools.extra_markers[group].append(tag)
            for tag in base:
                pools.names.setdefault(tag, _tag_name(tag))

        cats = _split_tags(get(row, "categories_tags"))
        values = (
            get(row, "categories"),
            ",".join(cats),
            get(row, "categories_en"),
            get(row, "main_category"),
            get(row, "main_category_en"),
        )
        _classify_categories(pools, cats, values)
        real = get(row, "nova_group")
        group = int(real) if real in ("1", "2", "3", "4") else 0
        pools.by_group.setdefault(group, []).append((template, (cats, values)))

    _fill_fallbacks(pools)
    for tags, _ in (b for bundle in pools.bundles.values() for b in bundle):
        for tag in tags:
            pools.names.setdefault(tag, _tag_name(tag))
    for tags in pools.extra_markers.values():
        for tag in tags:
            pools.names.setdefault(tag, _tag_name(tag))
    return pools


def _classify_categories(pools: _Pools, cats: list[str], values: tuple[str, ...]) -> None:
    """File a category set under every target group it is compatible with."""
    entry = (cats, values)
    pools.categories["any"].append(entry)
    groups = {marker_group("categories", t) for t in cats}
    non_food = "en:non-food-products" in cats
    # Without ingredients, only group-2 categories and plain waters still get a label.
    labelled_bare = compute_nova_group([], [], cats, False) is not None
    if 2 in groups:
        pools.categories["g2"].append(entry)
    elif 3 in groups:
        pools.categories["g3"].append(entry)
    if cats and not non_food and 2 not in groups:
        pools.categories["g3ok"].append(entry)
        if 3 not in groups:
            pools.categories["plain"].append(entry)
    if not labelled_bare:
        pools.categories["unlabelled"].append(entry)


def _fits(cats: list[str], target: int, bundle_group: int | None) -> bool:
    """Whether a real row's own categories give `target` under OFF's rules with ingredients
    whose highest marker is `bundle_group` (1: none; None: no ingredients at all)."""
    if bundle_group is None:
        return compute_nova_group([], [], cats, False) == (target or None)
    marker = {3: ["en:sugar"], 4: ["en:flavouring"]}.get(bundle_group, [])
    return compute_nova_group(["en:water", *marker], [], cats, True) == target


def _unknown_tags(tags: list[str], u: float) -> list[str]:
    """Ingredients OFF's taxonomy does not know: a word of a known one, in another language."""
    word = tags[int(u * len(tags))].split(":", 1)[-1].split("-")[0] if tags else "x"
    return [f"xx:{word}-{suffix}" for suffix in ("inconnu", "unbekannt")[: 1 + int(u * 2)]]


def _fill_fallbacks(pools: _Pools) -> None:
    """Give every pool at least one entry so any OFF-shaped template can drive the generator."""
    fallback_cats = {
        "any": ["en:snacks"],
        "plain": ["en:plant-based-foods"],
        "g2": ["en:honeys"],
        "g3": ["en:sweet-snacks"],
        "g3ok": ["en:snacks"],
        "unlabelled": [],
    }
    for key, cats in fallback_cats.items():
        if not pools.categories[key]:
            label = ",".join(_tag_name(t).capitalize() for t in cats)
            values = (label, ",".join(cats), label, cats[-1] if cats else "", label)
            pools.categories[key].append((cats, values))
    fallback_bundles = {1: [], 3: ["en:sugar"], 4: ["en:flavouring"]}
    for group, tags in fallback_bundles.items():
        if not pools.bundles[group]:
            pools.bundles[group].append((tags, ("0", "", "", "")))
    for group, tags in ((3, "en:salt"), (4, "en:emulsifier")):
        if not pools.extra_markers[group]:
            pools.extra_markers[group].append(tags)
    if not pools.bases:
        pools.bases.append(["en:water"])


def _make_codes(rng: np.random.Generator, count: int) -> list[str]:
    """Unique barcode strings: mostly EAN-13 (some with leading zeros), some EAN-8."""
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < count:
        need = count - len(codes)
        eight = rng.random(need) < EIGHT_DIGIT_SHARE
        head = rng.random(need) < 0.2
        values = np.where(
            eight,
            rng.integers(0, 10**8, need),
            np.where(head, rng.integers(0, 10**10, need), rng.integers(0, 10**13, need)),
        )
        for is_eight, value in zip(eight.tolist(), values.tolist(), strict=True):
            code = f"{value:08d}" if is_eight else f"{value:013d}"
            if code not in seen:
                seen.add(code)
                codes.append(code)
    return codes


def _plan_quirks(rng: np.random.Generator, rows: int) -> tuple[dict[int, int], set[int], set[int]]:
    """Pick duplicate positions (with their earlier source) and broken-line positions."""
    n_dup = round(rows * DUPLICATE_SHARE) if rows >= 2 else 0
    n_broken = round(rows / BROKEN_EVERY)
    if rows >= 1000:
        n_broken = max(1, n_broken)
    positions = rng.permutation(np.arange(1, rows)) if rows > 1 else np.array([], dtype=int)
    dup_positions = sorted(positions[:n_dup].tolist())
    broken = set(positions[n_dup : n_dup + n_broken].tolist())
    dup_set = set(dup_positions)
    duplicates: dict[int, int] = {}
    for position in dup_positions:
        source = int(rng.integers(0, position))
        while source in dup_set or source in broken:
            source = int(rng.integers(0, position))
        duplicates[position] = source
    return duplicates, broken, dup_set


def _ingredients_text(tags: list[str], names: dict[str, str], quoted: bool) -> str:
    """A readable list consistent with the tags; optionally with OFF's unescaped quotes."""
    words = [names.get(tag) or _tag_name(tag) for tag in tags if not _ADDITIVE_CODE.match(tag)]
    if not words:
        words = [_tag_name(tags[0])]
    if quoted:
        words[0] = f'"{words[0]}"'
        words[-1] = f'{words[-1]} (12" pack)'
    return ", ".join(words)


def _stray_fields(text: str, extra: int) -> tuple[str, str]:
    """Split a text over `extra` surplus fields, like the stray tabs of OFF's broken lines.

    Half the surplus lands inside ingredients_text (shifting later columns, as in the real
    dump) and at least one non-empty field ends the line: DuckDB silently accepts a too-long
    line whose surplus fields are all empty, so this keeps every broken line detectable.
    """
    fragments = text.split(", ") if text else ["stray"]
    inner = extra // 2
    pieces = [fragments[i % len(fragments)] or "stray" for i in range(extra)]
    shifted = text + "".join(f"\t{piece}" for piece in pieces[:inner])
    tail = "".join(f"\t{piece}" for piece in pieces[inner:])
    return shifted, tail


def _choose(pool: Sequence[T], u: float) -> T:
    """Pick from a pool with a pre-drawn uniform: cheaper than a generator call per pick."""
    return pool[int(u * len(pool))]


def generate_dump(
    rows: int,
    out: Path,
    seed: int = 0,
    gzip: bool = False,
    template: Path | None = None,
    variant: bool = False,
) -> dict:
    """Write an OFF-shaped dump of `rows` data lines to `out` and return its statistics.

    `variant` makes a second, different generator: each product's name (and brand) comes from
    a template row drawn whatever its group, additives are only in the ingredients text (not
    in `additives_tags` nor as e-numbers among the ingredient tags), and a third of the marker
    tags are spelled as our marker list does not know them (OFF's taxonomy does: the label is
    computed before). Its names then say nothing of the group, and its tags less than they do.

    Labels are steered (a target group is drawn per row and tags are picked to produce it)
    but always written as `compute_nova_group` of the written tags, so the file is exactly
    as consistent as OFF's own rules. A duplicate is a later, re-tagged version of an earlier
    product (same code, larger `last_modified_t`), as when OFF re-exports an edited product.

    Returns rows, labelled (count and share of well-formed rows), class_counts/class_shares,
    duplicates, broken_lines, quoted_rows, steer_misses (rows whose label missed its target;
    0 unless the template lacks material), bytes (on disk), raw_bytes and seconds.
    """
    started = time.perf_counter()
    out = Path(out)
    header, template_rows = _read_template(Path(template or DEFAULT_TEMPLATE))
    pools = _build_pools(header, template_rows)
    rng = np.random.default_rng(seed)
    codes = _make_codes(rng, rows)
    duplicates, broken, dup_set = _plan_quirks(rng, rows)
    sources = set(duplicates.values())
    source_modified: dict[int, int] = {}

    class_counts = {1: 0, 2: 0, 3: 0, 4: 0}
    steer_misses = unknown_rows = 0
    every_row = [entry for entries in pools.by_group.values() for entry in entries]
    quoted_rows = 0
    raw_bytes = 0
    thresholds = _target_thresholds()
    cats = pools.categories
    bundles = pools.bundles
    names = pools.names
    empty_additives = ("", "", "", "")

    out.parent.mkdir(parents=True, exist_ok=True)
    raw = open(out, "wb")  # noqa: SIM115 - closed in finally, wrapped by gzip when asked
    sink = (
        gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0)
        if gzip
        else raw
    )
    try:
        head = header.encode("utf-8")
        sink.write(head)
        raw_bytes += len(head)
        for chunk_start in range(0, rows, CHUNK_ROWS):
            chunk_end = min(rows, chunk_start + CHUNK_ROWS)
            draws = rng.random((chunk_end - chunk_start, DRAWS_PER_ROW)).tolist()
            buffer: list[str] = []
            for offset, u in enumerate(draws):
                position = chunk_start + offset
                target = _target(u[0], thresholds)
                # The real row the product is made from: one OFF gave the target group (any
                # row for an unlabelled product), so its name and brand go with the group;
                # its own categories too, where they give the group with the ingredients.
                template, own = _choose(
                    every_row if variant else pools.by_group.get(target) or every_row, u[11]
                )
                bundle: tuple[list[str], tuple[str, str, str, str]] | None = None
                unknown = False
                if target == 4:
                    cat_tags, cat_values = own
                    bundle = _choose(bundles[4], u[3])
                elif target == 3 and u[1] < 0.75:
                    cat_tags, cat_values = (
                        own if _fits(own[0], 3, 3) else _choose(cats["g3ok"], u[2])
                    )
                    bundle = _choose(bundles[3], u[3])
                elif target == 3:
                    cat_tags, cat_values = own if _fits(own[0], 3, 1) else _choose(cats["g3"], u[2])
                    bundle = _choose(bundles[1], u[3])
                elif target == 2:
                    cat_tags, cat_values = own if _fits(own[0], 2, 3) else _choose(cats["g2"], u[2])
                    if u[1] < 0.75:
                        bundle = _pick_bundle(bundles, (1, 3), u[3])
                elif target == 1:
                    cat_tags, cat_values = (
                        own if _fits(own[0], 1, 1) else _choose(cats["plain"], u[2])
                    )
                    bundle = _choose(bundles[1], u[3])
                elif u[1] < UNLABELLED_MIX[0]:  # missing ingredients, with categories
                    cat_tags, cat_values = (
                        own
                        if own[0] and _fits(own[0], 0, None)
                        else _choose(cats["unlabelled"], u[2])
                    )
                elif u[1] < UNLABELLED_MIX[1]:  # missing ingredients, nothing but a name
                    cat_tags, cat_values = [], ("", "", "", "", "")
                elif u[1] < UNLABELLED_MIX[2]:  # missing category
                    cat_tags, cat_values = [], ("", "", "", "", "")
                    bundle = _pick_bundle(bundles, (1, 3), u[3])
                else:  # too many unknown ingredients: OFF gives no group below 4
                    cat_tags, cat_values = (
                        own if _fits(own[0], 1, 1) else _choose(cats["plain"], u[2])
                    )
                    bundle = _pick_bundle(bundles, (1, 3), u[3])
                    unknown = True

                if bundle is not None:
                    tags = _choose(pools.bases, u[4]) + bundle[0]
                    if u[5] < 0.25:
                        extra = _choose(pools.bases, u[6])
                        tags = tags + extra[: 1 + int(u[7] * len(extra))]
                    if target in (2, 3, 4) and u[8] < 0.3:
                        extra_group = 4 if target == 4 and u[8] < 0.15 else 3
                        tags = tags + [_choose(pools.extra_markers[extra_group], u[9])]
                    if unknown:
                        tags = tags + _unknown_tags(tags, u[9])
                    tags = list(dict.fromkeys(tags))
                    additive_values = bundle[1]
                    additive_tags = _split_tags(additive_values[2])
                    quoted = u[10] < QUOTE_SHARE
                    quoted_rows += quoted
                    text = _ingredients_text(tags, names, quoted)
                    tag_field = ",".join(tags)
                else:
                    tags, additive_tags, text, tag_field = [], [], "", ""
                    additive_values = empty_additives

                label = compute_nova_group(tags, additive_tags, cat_tags, bool(text))
                if unknown and label != 4:
                    label = None
                if variant and tag_field:
                    tags = _respelled(tags, u[13])
                    tag_field = ",".join(tags)
                    additive_values = empty_additives
                if target and label != target:
                    steer_misses += 1

                code = codes[position]
                modified = template.last_modified_t
                modified_dt = template.last_modified_datetime
                if position in dup_set:
                    source = duplicates[position]
                    code = codes[source]
                    previous = source_modified[source]
                    room = max(3600, pools.max_modified_t - previous)
                    modified = previous + 1 + int(u[12] * room)
                    source_modified[source] = modified
                    modified_dt = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(modified))
                elif position in sources:
                    source_modified[position] = modified
                tail = ""
                if position in broken:
                    text, tail = _stray_fields(text, 1 + int(u[13] * 34))
                else:
                    if label is not None:
                        class_counts[label] += 1
                    unknown_rows += unknown

                line = template.fmt.format(
                    code,
                    f"{template.url_prefix}{code}{template.url_suffix}"
                    if template.url_prefix
                    else "",
                    modified,
                    modified_dt,
                    cat_values[0],
                    cat_values[1],
                    cat_values[2],
                    text,
                    tag_field,
                    *additive_values,
                    "" if label is None else label,
                    cat_values[3],
                    cat_values[4],
                )
                buffer.append(f"{line[:-1]}{tail}\n" if tail else line)
            data = "".join(buffer).encode("utf-8")
            raw_bytes += len(data)
            sink.write(data)
    finally:
        if sink is not raw:
            sink.close()
        raw.close()

    good_rows = rows - len(broken)
    labelled = sum(class_counts.values())
    return {
        "rows": rows,
        "labelled": labelled,
        "labelled_share": labelled / good_rows if good_rows else 0.0,
        "class_counts": class_counts,
        "class_shares": {g: (n / labelled if labelled else 0.0) for g, n in class_counts.items()},
        "duplicates": len(duplicates),
        "broken_lines": len(broken),
        "quoted_rows": quoted_rows,
        "steer_misses": steer_misses,
        "unknown_ingredient_rows": unknown_rows,
        "bytes": os.path.getsize(out),
        "raw_bytes": raw_bytes,
        "seconds": time.perf_counter() - started,
    }


E_NUMBER = re.compile(r"^[a-z]{2}:e\d")


def _respelled(tags: list[str], u: float) -> list[str]:
    """The variant's ingredient tags: no e-numbers (additives stay in the text), and a third of
    the marker tags spelled otherwise (American spelling, or a plural), chosen by `u`."""
    out = []
    for k, tag in enumerate(tags):
        if E_NUMBER.match(tag):
            continue
        if marker_group("ingredients", tag) and (u * 7.31 + k * 0.618) % 1.0 < 1 / 3:
            other = tag.replace("our", "or")
            tag = other if other != tag else f"{tag}s"
        out.append(tag)
    return out


def _target_thresholds() -> list[tuple[float, int]]:
    """Cumulative probabilities for the per-row target group (0 = no nova_group)."""
    thresholds: list[tuple[float, int]] = []
    cumulative = 0.0
    for group, share in CLASS_SHARES.items():
        cumulative += LABELLED_SHARE * share
        thresholds.append((cumulative, group))
    return thresholds


def _target(u: float, thresholds: list[tuple[float, int]]) -> int:
    for limit, group in thresholds:
        if u < limit:
            return group
    return 0


def _pick_bundle(
    bundles: dict[int, list[tuple[list[str], tuple[str, str, str, str]]]],
    groups: tuple[int, ...],
    u: float,
) -> tuple[list[str], tuple[str, str, str, str]]:
    """Pick uniformly across several bundle pools without concatenating them per row."""
    sizes = [len(bundles[g]) for g in groups]
    k = int(u * sum(sizes))
    for group, size in zip(groups, sizes, strict=True):
        if k < size:
            return bundles[group][k]
        k -= size
    return bundles[groups[-1]][-1]


LANGUAGE_TEXTS = 'STRUCT(lang VARCHAR, "text" VARCHAR)[]'


def _language_texts(column: str) -> str:
    """A TSV text as the export writes it: `[{lang: 'main', text}]`, `[]` when empty."""
    return (
        f"CASE WHEN nullif(trim({column}), '') IS NULL THEN CAST([] AS {LANGUAGE_TEXTS}) "
        f"ELSE [{{'lang': 'main', 'text': {column}}}] END"
    )


def write_parquet(tsv: Path, out: Path) -> int:
    """Write a TSV dump (generated or real) as OFF's Parquet export does (openfoodfacts-exports,
    exports/parquet/): tags as lists, nova_group int32, epoch int64, names and ingredient texts
    as language lists with a `main` entry, nutrients as a `nutriments` list of float32
    `{name, value, 100g, …}` entries. Broken lines are left out. Returns the rows written."""
    import duckdb

    from nova_assets.lib.database import sql_literal, sql_name
    from nova_assets.lib.ingest.dump_format import broken_line_sql, dump_header, read_csv_sql
    from nova_assets.lib.nutrients import SOURCE_COLUMNS

    columns = dump_header(str(tsv))
    entries = ", ".join(
        f"{{'name': {sql_literal(c.removesuffix('_100g'))}, "
        f"'value': TRY_CAST(nullif({sql_name(c)}, '') AS FLOAT), "
        f"'100g': TRY_CAST(nullif({sql_name(c)}, '') AS FLOAT), 'serving': CAST(NULL AS FLOAT), "
        "'unit': 'g'}"
        for c in SOURCE_COLUMNS
        if c in columns
    )
    nutriments = f'list_filter([{entries}], lambda x: x."100g" IS NOT NULL)' if entries else "[]"
    tags = ", ".join(
        f"coalesce(list_filter(string_split({c}, ','), lambda t: t <> ''), []) AS {c}"
        for c in ("ingredients_tags", "additives_tags", "categories_tags", "countries_tags")
    )
    select = f"""
        SELECT code, {_language_texts("product_name")} AS product_name,
            nullif(brands, '') AS brands, {tags},
            TRY_CAST(TRY_CAST(nullif(nova_group, '') AS DOUBLE) AS INTEGER) AS nova_group,
            {_language_texts("ingredients_text")} AS ingredients_text,
            TRY_CAST(created_t AS BIGINT) AS created_t,
            TRY_CAST(last_modified_t AS BIGINT) AS last_modified_t,
            {nutriments} AS nutriments
        FROM {read_csv_sql(str(tsv), columns)}
        WHERE NOT {broken_line_sql(columns)}
    """
    with duckdb.connect() as con:
        con.execute(f"COPY ({select}) TO {sql_literal(out)} (FORMAT parquet)")
        return con.execute(f"SELECT count(*) FROM read_parquet({sql_literal(out)})").fetchone()[0]


def write_jsonl(tsv: Path, out: Path) -> int:
    """Write a TSV dump (generated or real) as OFF's JSONL export: one document a line with
    `code` and `_id`, tags as lists, `nova_group` and the `*_t` epochs as numbers, nutrients in a
    `nutriments` object under their CSV names, and for a product without a group the
    `nova_group_error` OFF's rules give it (as `products` infers it from the TSV: OFF writes no
    error for a non-food product, nor where its rules would give a group). Broken lines are left
    out; gzipped when `out` ends with `.gz`. Returns the documents written."""
    import duckdb

    from nova_assets.lib.database import sql_list, sql_literal, sql_name
    from nova_assets.lib.ingest.dump_format import broken_line_sql, dump_header, read_csv_sql
    from nova_assets.lib.ingest.jsonl_dump import OFF_BLANK_REASONS
    from nova_assets.lib.nutrients import SOURCE_COLUMNS
    from nova_assets.lib.warehouse.products import (
        blank_reason_sql,
        marker_votes_sql,
        markers_table_sql,
    )

    columns = dump_header(str(tsv))
    present = [c for c in SOURCE_COLUMNS if c in columns]
    nutriments = ", ".join(
        f"{sql_literal(c)}: TRY_CAST(nullif({sql_name(c)}, '') AS DOUBLE)" for c in present
    )
    tags = ", ".join(
        f"coalesce(list_filter(string_split({c}, ','), lambda t: t <> ''), []) AS {c}"
        for c in ("ingredients_tags", "additives_tags", "categories_tags", "countries_tags")
    )
    # `staged_products` as the marker SQL of `products` reads it: tags, group, ingredients text.
    staged = f"""
        SELECT code, nullif(product_name, '') AS product_name, nullif(brands, '') AS brands,
            {tags}, nova_raw,
            CASE WHEN nova_raw IN (1, 2, 3, 4) THEN nova_raw END AS nova_group,
            nullif(ingredients_text, '') AS ingredients_text,
            nullif(trim(ingredients_text), '') IS NOT NULL AS has_ingredients_text,
            TRY_CAST(created_t AS BIGINT) AS created_t,
            TRY_CAST(last_modified_t AS BIGINT) AS last_modified_t,
            {f"{{{nutriments}}}" if nutriments else "NULL"} AS nutriments
        FROM (
            SELECT *, TRY_CAST(TRY_CAST(nullif(nova_group, '') AS DOUBLE) AS INTEGER) AS nova_raw
            FROM {read_csv_sql(str(tsv), columns)}
            WHERE NOT {broken_line_sql(columns)}
        )
    """
    documents = f"""
        SELECT code, code AS _id, product_name, brands, ingredients_tags, additives_tags,
            categories_tags, countries_tags, nova_raw AS nova_group, ingredients_text,
            created_t, last_modified_t, nutriments,
            CASE WHEN list_contains({sql_list(list(OFF_BLANK_REASONS))}, reason) THEN reason
            END AS nova_group_error
        FROM (
            SELECT staged_products.rowid AS position, *, {blank_reason_sql()} AS reason
            FROM staged_products
            LEFT JOIN marker_votes ON marker_votes.staged_row = staged_products.rowid
        )
        ORDER BY position
    """
    compression = "gzip" if out.name.endswith(".gz") else "none"
    with duckdb.connect() as con:
        for step in (f"CREATE TEMP TABLE staged_products AS {staged}", markers_table_sql()):
            con.execute(step)
        con.execute(marker_votes_sql())
        con.execute(
            f"COPY ({documents}) TO {sql_literal(out)} (FORMAT json, COMPRESSION {compression})"
        )
        return con.execute("SELECT count(*) FROM staged_products").fetchone()[0]


@dataclass(frozen=True)
class DeltaOutput:
    """What `write_delta` wrote: OFF's delta file, and the full dump of the day after."""

    delta: Path
    later: Path
    modified: list[str]
    new: list[str]
    start: int
    end: int


def write_delta(base: Path, out_dir: Path, modified: int, new: int, seed: int = 0) -> DeltaOutput:
    """A day of OFF changes on top of the TSV dump `base`: `modified` of its products (one line
    per code, well formed) given another product's ingredients and categories, a new name and a
    newer `last_modified_t`, and `new` products with codes `base` lacks. Writes them as OFF's
    delta (`openfoodfacts_products_<start>_<end>.json.gz`, JSONL documents, the window from an
    hour before the base's newest `last_modified_t` to after the last change) and the day-later
    full dump `later.tsv` (`base` with those lines replaced and the new ones appended)."""
    rng = np.random.default_rng(seed)
    opener = gzip_module.open if base.name.endswith(".gz") else open
    with opener(base, "rb") as handle:
        lines = handle.read().decode("utf-8", "surrogateescape").rstrip("\n").split("\n")
    header = lines[0].split("\t")
    col = {name: header.index(name) for name in header}
    width = len(header)
    counts: dict[str, int] = {}
    for line in lines[1:]:
        code = line.split("\t", 1)[0]
        counts[code] = counts.get(code, 0) + 1
    stamps = [line.split("\t")[col["last_modified_t"]] for line in lines[1:]]
    as_of = max(int(t) for t in stamps if t.isdigit())
    good = [
        i
        for i, line in enumerate(lines[1:], 1)
        if line.count("\t") == width - 1
        and counts[line.split("\t", 1)[0]] == 1
        and line[:1] != "\t"
    ]
    chosen = rng.choice(good, size=min(modified + new, len(good)), replace=False)
    changed: dict[int, str] = {}
    added: list[str] = []
    stamp = as_of
    for k, index in enumerate(chosen):
        fields = lines[index].split("\t")
        donor = lines[int(rng.choice(good))].split("\t")
        stamp += 1 + int(rng.integers(60))
        fields[col["last_modified_t"]] = str(stamp)
        fields[col["product_name"]] = (fields[col["product_name"]] + " (new recipe)").strip()
        for name in ("ingredients_tags", "categories_tags"):
            fields[col[name]] = donor[col[name]]
        if k < modified:
            changed[int(index)] = "\t".join(fields)
        else:
            fields[col["code"]] = f"99{seed:04d}{k:08d}"
            added.append("\t".join(fields))
    out_dir.mkdir(parents=True, exist_ok=True)
    later = out_dir / "later.tsv"
    body = [changed.get(i, line) for i, line in enumerate(lines)] + added
    later.write_bytes(("\n".join(body) + "\n").encode("utf-8", "surrogateescape"))
    start, end = as_of - 3600, stamp + 60
    delta_tsv = out_dir / ".delta.tsv"
    delta_lines = [lines[0], *changed.values(), *added]
    delta_tsv.write_bytes(("\n".join(delta_lines) + "\n").encode("utf-8", "surrogateescape"))
    delta = out_dir / f"openfoodfacts_products_{start}_{end}.json.gz"
    write_jsonl(delta_tsv, delta)
    delta_tsv.unlink()
    codes = [line.split("\t", 1)[0] for line in changed.values()]
    return DeltaOutput(delta, later, codes, [a.split("\t", 1)[0] for a in added], start, end)


def format_summary(stats: dict) -> str:
    """The one-line report printed by the CLI."""
    shares = " ".join(f"{g}:{stats['class_shares'][g]:.1%}" for g in (4, 3, 1, 2))
    return (
        f"rows={stats['rows']} labelled={stats['labelled_share']:.1%} classes[{shares}] "
        f"duplicates={stats['duplicates']} broken={stats['broken_lines']} "
        f"bytes={stats['bytes']} seconds={stats['seconds']:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the summary to stderr so stdout stays free for piping."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=int, help="number of data lines to write")
    parser.add_argument("out", type=Path, help="output path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true", help="write gzip-compressed output")
    parser.add_argument("--template", type=Path, default=None, help="real OFF TSV (.gz ok)")
    parser.add_argument(
        "--parquet", action="store_true", help="write OFF's Parquet export schema instead"
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="write OFF's JSONL export instead (gzipped when OUT ends with .gz)",
    )
    parser.add_argument(
        "--variant",
        action="store_true",
        help="the second generator: names independent of the group, additives only in the "
        "text, a third of the markers spelled otherwise",
    )
    parser.add_argument(
        "--delta-of",
        type=Path,
        default=None,
        metavar="BASE",
        help="write instead a day of changes to the TSV dump BASE into the folder OUT: ROWS "
        "products, --new-share of them new and the rest modified, as OFF's delta file and the "
        "day-later dump later.tsv",
    )
    parser.add_argument("--new-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    if args.delta_of is not None:
        new = round(args.rows * args.new_share)
        made = write_delta(args.delta_of, args.out, args.rows - new, new, args.seed)
        print(
            f"delta={made.delta} later={made.later} modified={len(made.modified)} "
            f"new={len(made.new)}",
            file=sys.stderr,
        )
        return 0
    if args.rows < 0:
        parser.error("ROWS must be >= 0")
    if args.parquet and args.jsonl:
        parser.error("--parquet and --jsonl exclude each other")
    if (args.parquet or args.jsonl) and args.gzip:
        parser.error(
            "--gzip is for the TSV (Parquet compresses itself; JSONL is gzipped when OUT ends "
            "with .gz)"
        )
    export = args.parquet or args.jsonl
    tsv = args.out.with_name(args.out.name + ".tsv") if export else args.out
    stats = generate_dump(args.rows, tsv, args.seed, args.gzip, args.template, args.variant)
    if export:
        write = write_parquet if args.parquet else write_jsonl
        rows = write(tsv, args.out)
        tsv.unlink()
        stats.update(bytes=args.out.stat().st_size)
        print(f"{'parquet' if args.parquet else 'jsonl'} rows={rows}", file=sys.stderr)
    print(format_summary(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
