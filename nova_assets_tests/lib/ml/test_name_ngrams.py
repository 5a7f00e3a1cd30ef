"""Names as hashed character runs: what the model reads of a product's name."""

import numpy as np

from nova_assets.lib.ml import name_ngrams as names
from nova_assets.lib.ml.name_ngrams import NAME_FEATURES, name_vectors


def test_names_become_hashed_character_runs_of_unit_length():
    X = name_vectors(["Ab cd", "AB   CD", "", "   ", "x", "Schokolade", "水"])
    # " ab cd ": 2-runs " a" "ab" "b " " c" "cd" "d ", 3-runs " ab" "ab " " cd" "cd ", 4-runs
    # " ab " " cd " (runs across words, such as "b c", are not taken).
    assert X.getnnz(axis=1).tolist()[:5] == [12, 12, 0, 0, 3]
    assert (X[0] != X[1]).nnz == 0  # case and spacing do not matter
    norms = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    assert np.allclose(norms[[0, 1, 4, 5, 6]], 1) and norms[2] == norms[3] == 0
    assert X.shape[1] == NAME_FEATURES
    again = name_vectors(["Schokolade"])
    assert (again != X[5]).nnz == 0  # the same columns in any batch, on any machine


def test_many_names_are_hashed_in_chunks_alike(monkeypatch):
    products = np.array([f"Produit {i} au chocolat" for i in range(50)] + [""], dtype=object)
    whole = name_vectors(products)
    monkeypatch.setattr(names, "NAME_CHUNK", 7)
    chunked = names.name_vectors(products)
    assert chunked.shape == whole.shape and (chunked != whole).nnz == 0
