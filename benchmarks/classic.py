"""The classic way to predict NOVA groups from a dump, the reference the benchmarks hold ours
against: pandas `read_csv` in chunks (four columns), a dict of ingredient tags per product,
`DictVectorizer`, `BernoulliNB` trained on the labelled train split, then every unlabelled
product predicted. No warehouse, no tracking, no model selection, no answer without ingredients.

bench_pipeline runs it beside `dg launch` on the same dump, bench_delta beside a delta and a
full refresh on the day-later dump.
"""

from __future__ import annotations

import resource
import time


def run_classic(dump: str) -> dict:
    """The classic way: pandas chunks, a dict of tags per product, DictVectorizer, BernoulliNB."""
    import csv

    import numpy as np
    import pandas as pd
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.naive_bayes import BernoulliNB

    from nova_assets.lib.warehouse.split import split_of

    start = time.perf_counter()
    frames = []
    for chunk in pd.read_csv(
        dump,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        usecols=["code", "ingredients_tags", "nova_group", "last_modified_t"],
        dtype=str,
        chunksize=100_000,
        on_bad_lines="skip",
    ):
        chunk = chunk.dropna(subset=["code", "ingredients_tags"])
        frames.append(chunk)
    products = pd.concat(frames, ignore_index=True)
    products["last_modified_t"] = pd.to_numeric(products["last_modified_t"], errors="coerce")
    products = products.sort_values("last_modified_t").drop_duplicates("code", keep="last")
    products["nova_group"] = pd.to_numeric(products["nova_group"], errors="coerce")
    products.loc[~products["nova_group"].isin([1, 2, 3, 4]), "nova_group"] = np.nan
    read_seconds = time.perf_counter() - start

    labelled = products[products["nova_group"].notna()]
    test = labelled["code"].map(split_of) == "test"
    vectorizer = DictVectorizer()
    X_train = vectorizer.fit_transform(
        {tag: 1 for tag in tags.split(",")} for tags in labelled.loc[~test, "ingredients_tags"]
    )
    model = BernoulliNB().fit(X_train, labelled.loc[~test, "nova_group"].astype(int))
    X_test = vectorizer.transform(
        {tag: 1 for tag in tags.split(",")} for tags in labelled.loc[test, "ingredients_tags"]
    )
    accuracy = float((model.predict(X_test) == labelled.loc[test, "nova_group"].astype(int)).mean())
    unlabelled = products[products["nova_group"].isna()]
    X_new = vectorizer.transform(
        {tag: 1 for tag in tags.split(",")} for tags in unlabelled["ingredients_tags"]
    )
    predicted = model.predict(X_new)
    return {
        "asset": "classic_reference",
        "success": True,
        "seconds": time.perf_counter() - start,
        "read_seconds": read_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "metadata": {
            "products": len(products),
            "test_accuracy": accuracy,
            "predictions": len(predicted),
        },
    }
