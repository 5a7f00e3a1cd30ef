"""Noticing a new dump cheaply: files dropped into the incoming folder, or a changed URL.

A sensor tick must stay short, so nothing here reads a whole dump: a file is identified by a
fingerprint (sha256 of its size and three 4 MB samples), a URL by its HTTP validators from a
HEAD request. `off_dump` still hashes the full file; the fingerprint only says "new or not".
"""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Names only pick the files to look at (not hidden, not a partial download): what a file is,
# TSV, Parquet or JSONL, off_dump decides from its content.
DUMP_SUFFIXES = (".tsv", ".csv", ".gz", ".parquet", ".jsonl", ".ndjson", ".json")
SAMPLE_BYTES = 4 << 20


def fingerprint(path: Path) -> str:
    """Content identity of a dump file without reading all of it: size + head, middle, tail."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for offset in sorted(
            {0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)}
        ):
            f.seek(offset)
            digest.update(f.read(SAMPLE_BYTES))
    return "fp:" + digest.hexdigest()


def is_dump_name(path: Path) -> bool:
    """A finished dump file: a dump suffix, not hidden, not a partial download."""
    name = path.name
    return not name.startswith((".", "~")) and name.endswith(DUMP_SUFFIXES) and path.is_file()


@dataclass(frozen=True)
class Candidate:
    path: Path
    size: int
    mtime_ns: int


def describe(path: Path) -> Candidate:
    stat = path.stat()
    return Candidate(path.resolve(), stat.st_size, stat.st_mtime_ns)


def list_candidates(directory: Path, extra: Path | None = None) -> list[Candidate]:
    """Dump files in `directory` (plus the file `extra`, if it exists), oldest first; a
    symbolic link that leads out of `directory` is no dump of it."""
    found = (
        [
            describe(p)
            for p in directory.iterdir()
            if is_dump_name(p) and p.resolve().is_relative_to(directory.resolve())
        ]
        if directory.is_dir()
        else []
    )
    if extra is not None and extra.is_file():
        found.append(describe(extra))
    return sorted(found, key=lambda c: (c.mtime_ns, c.path.name))


def stable_candidates(
    candidates: list[Candidate],
    previous_sizes: dict[str, list[int]],
    *,
    now_ns: int,
    settle_seconds: float = 60.0,
) -> tuple[list[Candidate], dict[str, list[int]]]:
    """Files no longer being written, and the sizes to remember for next time.

    A file is stable when its size and mtime are the same as at the last look, or when it was
    last modified more than `settle_seconds` ago (a file copied in long before the first look).
    """
    settled_before = now_ns - int(settle_seconds * 1e9)
    stable = [
        c
        for c in candidates
        if c.size > 0
        and (previous_sizes.get(str(c.path)) == [c.size, c.mtime_ns] or c.mtime_ns < settled_before)
    ]
    return stable, {str(c.path): [c.size, c.mtime_ns] for c in candidates}


def url_identity(url: str, timeout: float = 10.0) -> str:
    """What the server says about the dump at `url` now (ETag, else Last-Modified + length).

    Raises OSError (URLError, HTTPError, timeouts) for the caller to log and retry later.
    """
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": "nova_assets"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        length = response.headers.get("Content-Length")
    if etag:
        return f"etag:{etag}"
    if modified or length:
        return f"modified:{modified}|length:{length}"
    raise OSError(
        f"{url} sent neither ETag, Last-Modified nor Content-Length: cannot tell if it changed"
    )
