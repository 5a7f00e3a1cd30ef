"""Bring a dump (local path or http(s) URL) into the raw folder under a name carrying its sha256.

A download is written to a temporary name beside its target and renamed only when it is whole,
so a failed download never leaves a half dump that a later run could mistake for a good one;
it first asks the server whether the dump changed since the one held (ETag / Last-Modified,
304). A local file is hashed where it lies and linked in, not copied. Old dumps are pruned,
never the ones in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from nova_assets.lib.ingest import jsonl_dump, parquet_dump
from nova_assets.lib.ingest.download import Sink, download, is_url, redact
from nova_assets.lib.ingest.dump_format import DumpError, check_is_dump, is_gzip
from nova_assets.lib.progress import ProgressCallback, Ticker, human

TEMP_PREFIX = ".incoming-"
DUMP_NAME = re.compile(r"off_products_[0-9a-f]{16}\.((tsv|jsonl)(\.gz)?|parquet)")
STALE_TEMP_SECONDS = 24 * 3600
HASH_BLOCK = 8 << 20
LOCAL_PROGRESS_FROM = 256 << 20
"""A local file this large takes a while to hash (about a second per GB): its progress is
shown; a smaller one's would be two lines saying 0 % and 100 % of something not downloaded."""


@dataclass(frozen=True)
class Dump:
    """A dump file in the raw folder, identified by the sha256 of its bytes.

    `etag` and `last_modified` are the HTTP validators the server sent with it, kept so the next
    fetch can ask "changed since?" instead of downloading the same GBs again.
    """

    path: str
    sha256: str
    bytes: int
    source: str
    gzipped: bool
    etag: str | None = None
    last_modified: str | None = None
    mtime_ns: int | None = None
    """The file's mtime when it was fetched: a local dump is linked, not copied, and a source
    rewritten in place since would change the linked file too."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def check_on_disk(self) -> None:
        """Raise DumpError unless the file is still the one fetched: there, the same size, and
        (where recorded) not rewritten since."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            raise DumpError(f"dump file {self.path} does not exist") from None
        if status.st_size != self.bytes or self.mtime_ns not in (None, status.st_mtime_ns):
            raise DumpError(
                f"dump file {self.path} changed since it was fetched from {self.source} "
                f"({status.st_size:,} bytes now, {self.bytes:,} then): fetch it again"
            )

    @classmethod
    def from_json(cls, text: str) -> Dump:
        """Read a pointer written by this or another version (missing keys default, extra ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


def fetch_dump(
    source: str,
    raw_dir: Path,
    *,
    previous: Dump | None = None,
    in_use: Dump | None = None,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    attempts: int = 5,
    retry_delay: float = 1.0,
    timeout: float = 60.0,
    deadline: float | None = None,
    keep: int | None = None,
) -> Dump:
    """Link (a local file) or download `source` into `raw_dir` under its sha256 name.

    - `previous`: the dump held now. If it came from the same URL with an ETag/Last-Modified and
      the server answers 304, `previous` itself is returned and nothing is written.
    - `progress(done, total, activity)`: called about every 1 % (every 64 MB when the size is
      unknown) of a download ("downloaded"), first with 0 and last with the final size as both
      counts; for a local file only if it is large enough for hashing it to take a while
      ("hashed": it is linked, nothing is downloaded).
    - `log(message)`: retries, resumes, restarts and deletions, for a human.
    - `attempts`: failed requests in a row, without any new byte, before giving up; the wait
      between them doubles from `retry_delay` seconds. `timeout`: seconds per socket operation.
      `deadline`: seconds the whole download may take, retries included (a trickling server
      never trips `timeout`). A host that does not resolve fails at once.
    - The dump records, and messages show, the URL without credentials or query string.
    - `keep`: if given, keep only the `keep` newest dumps in `raw_dir` (never the one returned,
      `previous`, nor `in_use`, the dump the tables come from) and delete temp files of
      downloads older than a day.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _message: None)
    if is_url(source):
        ticker = Ticker(progress, "downloaded")
        dump = _fetch_url(
            source, raw_dir, previous, ticker, say, attempts, retry_delay, timeout, deadline
        )
    else:
        dump = _take_local(source, raw_dir, progress, say)
    if keep is not None:
        protect = [dump.path] + [d.path for d in (previous, in_use) if d is not None]
        for path in prune_dumps(raw_dir, keep, protect=protect):
            say(f"deleted old dump {path}")
    return dump


def _fetch_url(
    source: str,
    raw_dir: Path,
    previous: Dump | None,
    ticker: Ticker,
    say: Callable[[str], None],
    attempts: int,
    retry_delay: float,
    timeout: float,
    deadline: float | None,
) -> Dump:
    """Download into a temp file beside the target, hashed and gzip-checked on the way; `previous`
    itself when the server answers 304."""
    shown = redact(source)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=raw_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = Sink(out)
            validators = download(
                source,
                sink,
                ticker,
                say,
                conditional=_conditional(previous, shown),
                attempts=max(attempts, 1),
                retry_delay=retry_delay,
                timeout=timeout,
                give_up_at=None if deadline is None else time.monotonic() + deadline,
            )
        if validators is None:
            tmp.unlink()
            assert previous is not None
            say(f"dump unchanged at {shown} (HTTP 304): keeping {previous.path}")
            return previous
        dump = _place(tmp, raw_dir, sink, shown, *validators)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    ticker.finish(dump.bytes)
    return dump


def remove_partial_downloads(raw_dir: Path) -> list[Path]:
    """Delete every temp file of a download in `raw_dir`; only for a caller that knows no
    download is running (one holding the run lock). Returns what it deleted."""
    if not raw_dir.is_dir():
        return []
    removed = [p for p in raw_dir.iterdir() if p.name.startswith(TEMP_PREFIX)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def prune_dumps(raw_dir: Path, keep: int, *, protect: Iterable[str | Path] = ()) -> list[Path]:
    """Delete all but the `keep` newest dumps (by mtime) so raw/ does not fill the disk.

    Files in `protect` (the dump just fetched, the one fetched before, the one the tables come
    from) are never deleted; temp files of downloads that died more than a day ago go too.
    Returns what it deleted.
    """
    protected = {Path(p).resolve() for p in protect}
    now = time.time()
    dumps: list[tuple[float, Path]] = []
    removed: list[Path] = []
    for path in raw_dir.iterdir():
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if DUMP_NAME.fullmatch(path.name):
            dumps.append((mtime, path))
        elif path.name.startswith(TEMP_PREFIX) and now - mtime > STALE_TEMP_SECONDS:
            path.unlink(missing_ok=True)
            removed.append(path)
    dumps.sort(key=lambda item: item[0], reverse=True)
    for _, path in dumps[max(keep, 0) :]:
        if path.resolve() not in protected:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _take_local(
    source: str, raw_dir: Path, progress: ProgressCallback | None, say: Callable[[str], None]
) -> Dump:
    """A local dump, hashed where it lies at disk speed and linked into `raw_dir` under its sha256
    name (copied only across filesystems; nothing at all when `raw_dir` has it already).

    Only a file that starts like a dump (a TSV header, a Parquet file, a JSONL product
    document), never through a symbolic link that leads out of its folder. A gzip file is not
    inflated here: `products` reads the whole stream anyway and refuses one that ends early. The file's size and mtime are recorded, so a source rewritten
    in place later (a link shares its bytes) is refused instead of read as this dump.
    """
    path = Path(source).expanduser()
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        raise DumpError(f"dump {source} is a symbolic link out of its folder: refused")
    if not path.is_file():
        raise DumpError(
            f"dump not found: {source} is not a file (set NOVA_DUMP_URL to a file or URL)"
        )
    before = path.stat()
    if before.st_size == 0:
        raise DumpError(f"dump is empty: {source} has 0 bytes")
    parquet = parquet_dump.is_parquet(path)
    jsonl = not parquet and jsonl_dump.is_jsonl(path)
    if parquet:
        parquet_dump.check_parquet(path)
    elif jsonl:
        jsonl_dump.check_jsonl(path)
    else:
        check_is_dump(str(path))
    large = before.st_size >= LOCAL_PROGRESS_FROM
    ticker = Ticker(progress if large else None, "hashed")
    sha = _sha256(path, before.st_size, ticker)
    gzipped = not parquet and is_gzip(path)
    target = raw_dir / f"off_products_{sha[:16]}{_suffix(parquet, jsonl, gzipped)}"
    if target.exists() and target.stat().st_size != before.st_size:
        target.unlink()  # a linked source rewritten in place since: those bytes are not this name's
    how = "already there" if target.exists() else _link_or_copy(path, target)
    if _identity(path.stat()) != _identity(before):
        if how != "already there":
            target.unlink(missing_ok=True)
        raise DumpError(f"dump {source} changed while it was read: try again once it is written")
    say(
        f"dump {sha[:12]}: a local file ({human(before.st_size)}), {how} in {raw_dir}; "
        "nothing downloaded"
    )
    ticker.finish(before.st_size)
    return Dump(
        str(target), sha, before.st_size, source, gzipped, mtime_ns=target.stat().st_mtime_ns
    )


def _sha256(path: Path, size: int, ticker: Ticker) -> str:
    """The file's sha256, read in large blocks into one buffer (hashing runs without the GIL)."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_BLOCK)
    view = memoryview(buffer)
    done = 0
    ticker(0, size)
    with path.open("rb", buffering=0) as file:
        while read := file.readinto(buffer):
            digest.update(view[:read])
            done += read
            ticker(done, size)
    return digest.hexdigest()


def _link_or_copy(path: Path, target: Path) -> str:
    """`path` as `target`: a hard link where the filesystem allows, else a whole copy renamed in."""
    try:
        os.link(path, target)
        return "linked"
    except FileExistsError:
        return "already there"
    except OSError:
        pass
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "copied"


def _suffix(parquet: bool, jsonl: bool, gzipped: bool) -> str:
    """A dump's file name ending in the raw folder, from what its content is."""
    if parquet:
        return ".parquet"
    return (".jsonl" if jsonl else ".tsv") + (".gz" if gzipped else "")


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_size, status.st_mtime_ns


def _place(
    tmp: Path, raw_dir: Path, sink: Sink, source: str, etag: str | None, last_modified: str | None
) -> Dump:
    """Rename the whole, checked temp file to its sha256 name (or drop it if that file exists)."""
    if sink.size == 0:
        raise DumpError(f"dump is empty: {source} has 0 bytes")
    if sink.gzip is not None and not sink.gzip.complete:
        raise DumpError(f"dump is a truncated gzip file: {source} ends before its gzip stream does")
    parquet = sink.head.startswith(parquet_dump.MAGIC)
    if parquet and not parquet_dump.ends_whole(tmp):
        raise DumpError(f"dump is a truncated Parquet file: {source} lacks its footer")
    sha = sink.digest.hexdigest()
    jsonl = not parquet and jsonl_dump.is_jsonl(tmp)
    target = raw_dir / f"off_products_{sha[:16]}{_suffix(parquet, jsonl, sink.gzip is not None)}"
    if target.exists():
        tmp.unlink()
    else:
        # mkstemp made it owner-only; a downloaded dump is data others on the machine may read.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(target)
    return Dump(
        str(target),
        sha,
        sink.size,
        source,
        sink.gzip is not None,
        etag,
        last_modified,
        target.stat().st_mtime_ns,
    )


def _conditional(previous: Dump | None, url: str) -> tuple[str | None, str | None] | None:
    """The (ETag, Last-Modified) of `previous` to ask the server with, if a 304 may stand for
    it: same URL, a validator, and its file still there."""
    if previous is None or previous.source != url or not Path(previous.path).is_file():
        return None
    return (
        (previous.etag, previous.last_modified)
        if (previous.etag or previous.last_modified)
        else None
    )
