"""Bring a dump (local path or http(s) URL) into the raw folder under a name carrying its sha256.

The file is written to a temporary name beside its target and renamed only when it is whole,
so a failed copy never leaves a half dump that a later run could mistake for a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.request
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class DumpError(ValueError):
    """The dump cannot be used; the message says why."""


@dataclass(frozen=True)
class Dump:
    """A dump file in the raw folder, identified by the sha256 of its bytes."""

    path: str
    sha256: str
    bytes: int
    source: str
    gzipped: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Dump:
        return cls(**json.loads(text))


def _open_source(source: str):
    if source.startswith(("http://", "https://")):
        return urllib.request.urlopen(source, timeout=60)  # noqa: S310 - scheme checked above
    path = Path(source).expanduser()
    if not path.is_file():
        raise DumpError(
            f"dump not found: {source} is not a file (set NOVA_DUMP_URL to a file or URL)"
        )
    return path.open("rb")


def fetch_dump(source: str, raw_dir: Path) -> Dump:
    """Copy `source` into `raw_dir`, hashing it on the way and checking a gzip stream is whole."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    gzip_check: GzipCheck | None = None
    size = 0
    fd, tmp_name = tempfile.mkstemp(prefix=".incoming-", dir=raw_dir)
    tmp = Path(tmp_name)
    try:
        with _open_source(source) as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                if size == 0 and chunk[:2] == GZIP_MAGIC:
                    gzip_check = GzipCheck()
                if gzip_check is not None:
                    gzip_check.feed(chunk)
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if size == 0:
            raise DumpError(f"dump is empty: {source} has 0 bytes")
        if gzip_check is not None and not gzip_check.complete:
            raise DumpError(
                f"dump is a truncated gzip file: {source} ends before its gzip stream does"
            )
        sha = digest.hexdigest()
        target = raw_dir / f"off_products_{sha[:16]}.tsv{'.gz' if gzip_check else ''}"
        if target.exists():
            tmp.unlink()
        else:
            tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Dump(str(target), sha, size, source, gzip_check is not None)


class GzipCheck:
    """Decompresses a gzip stream as it arrives, keeping nothing, to prove it is whole.

    Handles multi-member files (concatenated gzip streams), which `gzip -c a b` writes.
    """

    def __init__(self) -> None:
        self._inflater = zlib.decompressobj(wbits=31)

    def feed(self, chunk: bytes) -> None:
        data = chunk
        try:
            while data:
                self._inflater.decompress(data, CHUNK)
                data = self._inflater.unconsumed_tail
                if self._inflater.eof:
                    data = self._inflater.unused_data + data
                    if data:
                        self._inflater = zlib.decompressobj(wbits=31)
        except zlib.error as exc:
            raise DumpError(f"dump is not a valid gzip file: {exc}") from exc

    @property
    def complete(self) -> bool:
        return self._inflater.eof
