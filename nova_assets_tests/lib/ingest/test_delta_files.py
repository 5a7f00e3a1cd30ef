"""OFF's delta index: names parsed, the deltas the tables lack chosen oldest first, a gap
refused, and each delta brought in whole from a folder or a real HTTP server, or refused by
name."""

import gzip
from pathlib import Path

import pytest

from nova_assets.lib.ingest.delta_files import (
    Delta,
    DeltaError,
    DeltaGap,
    choose_deltas,
    fetch_delta,
    list_deltas,
    parse_name,
)

DAY = 86_400
NAMES = [
    "openfoodfacts_products_1700172800_1700259200.json.gz",
    "products_1700086400_1700172800.json.gz",
    "products_1700000000_1700086400.json.gz",
]
"""As OFF's index lists them: newest first, the newest with a prefix."""
DOCUMENT = b'{"code": "3017620422003", "product_name": "Nutella", "last_modified_t": 1700100000}\n'


def test_names_are_parsed_with_or_without_a_prefix():
    assert parse_name("products_1700000000_1700086400.json.gz") == Delta(
        1700000000, 1700086400, "products_1700000000_1700086400.json.gz"
    )
    assert parse_name(NAMES[0]).start == 1700172800
    for other in ("index.txt", "products_1_2.jsonl.gz", "products_9_1.json.gz", "x.json.gz", ""):
        assert parse_name(other) is None


def test_the_deltas_newer_than_the_tables_are_chosen_oldest_first():
    listed = [parse_name(n) for n in NAMES]
    chosen = choose_deltas(listed, 1700090000.0)
    assert [d.name for d in chosen] == [NAMES[1], NAMES[0]]
    assert choose_deltas(listed, 1700090000.0, applied={NAMES[1]}) == [listed[0]]
    assert choose_deltas(listed, 1700259200.0) == []
    assert [d.name for d in choose_deltas(listed, 1700000000.0)] == NAMES[::-1]


def test_tables_older_than_every_delta_are_a_gap_that_names_the_full_export():
    listed = [parse_name(n) for n in NAMES]
    with pytest.raises(DeltaGap, match=r"(?s)older than the oldest delta.*materialize off_dump"):
        choose_deltas(listed, 1700000000.0 - 1)
    with pytest.raises(DeltaGap):
        choose_deltas(listed, None)


def test_a_folder_lists_by_its_index_else_by_its_files(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_bytes(gzip.compress(DOCUMENT))
    (tmp_path / "notes.txt").write_text("hello")
    assert [d.name for d in list_deltas(str(tmp_path))] == NAMES[::-1]
    (tmp_path / "index.txt").write_text(NAMES[0] + "\n" + NAMES[1] + "\n")
    assert [d.name for d in list_deltas(str(tmp_path))] == [NAMES[1], NAMES[0]]
    with pytest.raises(DeltaError, match="neither an http"):
        list_deltas(str(tmp_path / "nowhere"))


def test_an_index_url_is_read_and_its_files_downloaded_beside_it(http_root, tmp_path):
    base, root = http_root
    (root / "delta").mkdir()
    (root / "delta" / "index.txt").write_text("\n".join(NAMES) + "\n")
    body = gzip.compress(DOCUMENT)
    (root / "delta" / NAMES[2]).write_bytes(body)
    url = f"{base}/delta/index.txt"
    listed = list_deltas(url)
    assert [d.name for d in listed] == NAMES[::-1]
    raw = tmp_path / "raw" / "deltas"
    got = fetch_delta(url, listed[0], raw, attempts=1, retry_delay=0)
    assert Path(got.path) == raw / NAMES[2] and Path(got.path).read_bytes() == body
    assert got.bytes == len(body) and len(got.sha256) == 64
    with pytest.raises(DeltaError, match=f"delta {NAMES[1]} cannot be downloaded.*404"):
        fetch_delta(url, listed[1], raw, attempts=1, retry_delay=0)
    with pytest.raises(DeltaError, match="cannot be read"):
        list_deltas(f"{base}/missing/index.txt")
    assert sorted(p.name for p in raw.iterdir()) == [NAMES[2]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (gzip.compress(DOCUMENT * 50)[:-20], "truncated or damaged gzip"),
    ],
)
def test_an_empty_or_cut_delta_is_refused_by_name_and_not_kept(
    http_root, tmp_path, content, message
):
    base, root = http_root
    (root / "index.txt").write_text(NAMES[2] + "\n")
    (root / NAMES[2]).write_bytes(content)
    delta = parse_name(NAMES[2])
    raw = tmp_path / "raw"
    for source in (f"{base}/index.txt", str(root)):
        with pytest.raises(DeltaError, match=f"delta {NAMES[2]}.*{message}"):
            fetch_delta(source, delta, raw, attempts=1, retry_delay=0)
        assert list(raw.iterdir()) == []


def test_a_delta_listed_but_missing_from_the_folder_is_named(tmp_path):
    (tmp_path / "index.txt").write_text(NAMES[2] + "\n")
    with pytest.raises(DeltaError, match=f"delta {NAMES[2]} is listed but missing"):
        fetch_delta(str(tmp_path), parse_name(NAMES[2]), tmp_path / "raw")
