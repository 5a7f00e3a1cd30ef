"""OFF's daily deltas: which are listed, which the tables lack, and each brought into the data
dir whole.

OFF keeps about 14 days of deltas, each the products modified in a window of Unix times, listed
newest first in an `index.txt` and named `products_<start>_<end>.json.gz` (newer names carry a
prefix, e.g. `openfoodfacts_products_<start>_<end>.json.gz`). `NOVA_DELTA_URL` is that
`index.txt` URL or a local folder holding the files (and an `index.txt`, else its files by name).
A delta never says a product was deleted: deltas only add and update.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from nova_assets.lib.files import atomic_path
from nova_assets.lib.ingest.download import USER_AGENT, Sink, download, is_url, redact
from nova_assets.lib.ingest.dump_format import DumpError

DELTA_NAME = re.compile(r"(?:[A-Za-z0-9_.-]*_)?products_(\d+)_(\d+)\.json\.gz")
INDEX = "index.txt"
INDEX_LIMIT = 1 << 20
"""Bytes of an index read at most: OFF's lists some fifteen names."""


class DeltaError(DumpError):
    """A delta that cannot be applied: missing, damaged, invalid, already applied or too old."""


class DeltaGap(DeltaError):
    """The tables are older than the oldest delta listed: the deltas cannot bring them up to
    date, only the full export can."""


@dataclass(frozen=True, order=True)
class Delta:
    """One delta file: the products modified between `start` and `end` (Unix seconds)."""

    start: int
    end: int
    name: str

    @property
    def window(self) -> str:
        return f"{utc(self.start)} to {utc(self.end)}"


@dataclass(frozen=True)
class DeltaFile:
    """A delta brought into the data dir whole, identified by the sha256 of its bytes."""

    delta: Delta
    path: str
    sha256: str
    bytes: int


def utc(seconds: int | float) -> str:
    """Unix seconds as a UTC time a person reads."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_name(name: str) -> Delta | None:
    """The delta a file name stands for, None for any other name (or a window that ends before
    it starts)."""
    match = DELTA_NAME.fullmatch(name.strip())
    if match is None:
        return None
    start, end = int(match[1]), int(match[2])
    return Delta(start, end, name.strip()) if start <= end else None


def list_deltas(source: str, *, timeout: float = 30.0) -> list[Delta]:
    """The deltas `source` lists, oldest first; names that are no delta's are left out.

    Raises DeltaError when the index cannot be read (a missing folder, an HTTP error)."""
    if is_url(source):
        names = _read_index_url(source, timeout)
    else:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DeltaError(f"NOVA_DELTA_URL {source} is neither an http(s) URL nor a folder")
        index = folder / INDEX
        names = (
            index.read_text("utf-8").splitlines()
            if index.is_file()
            else [p.name for p in folder.iterdir()]
        )
    return sorted({d for d in map(parse_name, names) if d is not None})


def _read_index_url(url: str, timeout: float) -> list[str]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s)
            text = response.read(INDEX_LIMIT).decode("utf-8", errors="replace")
    except OSError as exc:
        raise DeltaError(f"delta index {redact(url)} cannot be read: {exc}") from exc
    return text.splitlines()


def choose_deltas(
    listed: Iterable[Delta], as_of: float | None, applied: Collection[str] = ()
) -> list[Delta]:
    """The deltas to apply, oldest first: those ending after `as_of` (the tables' time, Unix
    seconds) and not
    in `applied`. Raises DeltaGap when the tables are older than the oldest delta's start, as
    the products modified in between are in no delta listed."""
    deltas = sorted(listed)
    if as_of is None:
        raise DeltaGap("the warehouse holds no products yet: materialize off_dump and downstream")
    if deltas and as_of < deltas[0].start:
        raise DeltaGap(
            f"the tables are as of {utc(as_of)}, older than the oldest delta listed "
            f"({deltas[0].name}, from {utc(deltas[0].start)}): the products modified in between "
            "are in no delta. Take the full export instead: materialize off_dump and downstream "
            "(`dg launch --job all_assets`), then apply the deltas newer than it"
        )
    return [d for d in deltas if d.end > as_of and d.name not in applied]


def fetch_delta(
    source: str,
    delta: Delta,
    raw_dir: Path,
    *,
    log: Callable[[str], None] | None = None,
    attempts: int = 5,
    retry_delay: float = 1.0,
    timeout: float = 60.0,
) -> DeltaFile:
    """Download (beside the index URL) or copy (from the folder) `delta` into `raw_dir` under
    its own name, written to a temporary name and renamed only once whole and a complete gzip
    stream. Raises DeltaError naming the file when it is missing, empty or truncated."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / delta.name
    if is_url(source):
        url = urllib.parse.urljoin(source, urllib.parse.quote(delta.name))
        sha, size = _download(url, target, log, attempts, retry_delay, timeout)
    else:
        sha, size = _copy(Path(source).expanduser() / delta.name, target)
    return DeltaFile(delta, str(target), sha, size)


def _download(
    url: str,
    target: Path,
    log: Callable[[str], None] | None,
    attempts: int,
    retry_delay: float,
    timeout: float,
) -> tuple[str, int]:
    fd, name = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = Sink(out)
            try:
                download(
                    url,
                    sink,
                    lambda _done, _total: None,
                    log or (lambda _message: None),
                    conditional=None,
                    attempts=attempts,
                    retry_delay=retry_delay,
                    timeout=timeout,
                    give_up_at=time.monotonic() + 3600,
                )
            except DumpError as exc:
                raise DeltaError(f"delta {target.name} cannot be downloaded: {exc}") from exc
        _check_whole(target.name, sink.size, sink.gzip is not None and sink.gzip.complete)
        tmp.chmod(0o644)
        tmp.replace(target)
        return sink.digest.hexdigest(), sink.size
    finally:
        tmp.unlink(missing_ok=True)


def _copy(path: Path, target: Path) -> tuple[str, int]:
    """Copy through the download's Sink: the same sha256 and gzip check of the bytes copied."""
    if not path.is_file():
        raise DeltaError(f"delta {path.name} is listed but missing: {path} is not a file")
    with atomic_path(target) as tmp, path.open("rb") as source:
        with tmp.open("wb") as out:
            sink = Sink(out)
            try:
                while block := source.read(1 << 20):
                    sink.write(block)
            except DumpError as exc:
                raise DeltaError(f"delta {path.name} is a damaged gzip file: {exc}") from exc
        _check_whole(path.name, sink.size, sink.gzip is not None and sink.gzip.complete)
    return sink.digest.hexdigest(), sink.size


def _check_whole(name: str, size: int, complete: bool) -> None:
    if size == 0:
        raise DeltaError(f"delta {name} is empty (0 bytes)")
    if not complete:
        raise DeltaError(f"delta {name} is a truncated or damaged gzip file: not applied")
