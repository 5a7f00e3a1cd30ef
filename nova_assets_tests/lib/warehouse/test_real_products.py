"""The real development products load as a `products` table with their sources, as the
data's README counts them, nutrients cleaned as a dump's."""

import duckdb

from nova_assets.lib.nutrients import NUTRIENT_COLUMNS
from nova_assets.lib.paths import REAL_PRODUCTS
from nova_assets.lib.warehouse.real_products import load_real_products


def test_real_products_load_with_their_sources():
    with duckdb.connect() as con:
        assert load_real_products(con, REAL_PRODUCTS) == 7414
        labelled, sources, polish = con.execute(
            "SELECT count(nova_group), count(DISTINCT source), "
            "count(*) FILTER (list_contains(countries_tags, 'en:poland')) FROM products"
        ).fetchall()[0]
        assert (labelled, sources) == (4974, 18) and polish > 2000
        groups = dict(
            con.execute("SELECT nova_group, count(*) FROM products GROUP BY ALL").fetchall()
        )
        assert {g: groups[g] for g in (1, 2, 3, 4)} == {1: 770, 2: 827, 3: 1316, 4: 2061}
        with_nutrients = con.execute(
            f"SELECT count(*) FROM products WHERE nova_group IS NOT NULL AND "
            f"({' + '.join(f'CAST({c} IS NOT NULL AS INT)' for c in NUTRIENT_COLUMNS)}) >= 4"
        ).fetchall()[0][0]
        assert with_nutrients == 3270  # as the data's README counts them: none was impossible
        # An empty list is no evidence: a source without the column gives NULL, never [].
        empty = con.execute(
            "SELECT count(*) FROM products WHERE len(ingredients_tags) = 0"
        ).fetchall()[0][0]
        assert empty == 0
