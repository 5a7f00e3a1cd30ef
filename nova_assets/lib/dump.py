"""Bring a dump (local path or http(s) URL) into the raw folder under a name carrying its sha256.

The file is written to a temporary name beside its target and renamed only when it is whole,
so a failed copy never leaves a half dump that a later run could mistake for a good one.

The full dump is many GB on networks that drop, so a download resumes with `Range` after a cut,
retries with backoff on errors that may pass (connection, timeout, 5xx) and not on those that
will not (4xx), refuses a body shorter than announced or an HTML error page, and asks the server
first whether the dump changed since the one already held (ETag / Last-Modified, 304).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import BinaryIO, TextIO

from nova_assets.lib.dump_format import GZIP_MAGIC, DumpError, check_is_dump

CHUNK = 1 << 20
TEMP_PREFIX = ".incoming-"
DUMP_NAME = re.compile(r"off_products_[0-9a-f]{16}\.tsv(\.gz)?")
STALE_TEMP_SECONDS = 24 * 3600
UNKNOWN_SIZE_STEP = 64 << 20
MAX_RETRY_DELAY = 60.0
USER_AGENT = "nova_assets-dump-fetcher/1"

ProgressCallback = Callable[[int, int | None], None]
"""`progress(done_bytes, total_bytes_or_None)`."""


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Dump:
        """Read a pointer written by this or another version (missing keys default, extra ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def redact(source: str) -> str:
    """`source` as it may be stored and logged: a URL without user, password or query (where
    tokens go); a path as it is."""
    if not is_url(source):
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _credentials(url: str) -> tuple[str, dict[str, str]]:
    """`url` without its user and password, and the Basic authorization header they make."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return url, {}
    netloc = parts.netloc.rpartition("@")[2]
    token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(token.encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": header}


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only: never to ftp:// or a file."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        if not is_url(urllib.parse.urljoin(req.full_url, newurl)):
            raise DumpError(
                f"dump download refused: {redact(req.full_url)} redirects to "
                f"{urllib.parse.urlsplit(newurl).scheme or 'a non-http'}:// (only http and https)"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


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
    """Copy or download `source` into `raw_dir`, hashing it on the way and checking it is whole.

    - `previous`: the dump held now. If it came from the same URL with an ETag/Last-Modified and
      the server answers 304, `previous` itself is returned and nothing is written.
    - `progress(done, total)`: called about every 1 % (every 64 MB when the size is unknown),
      first with 0 and last with the final size as both arguments.
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
    shown = redact(source)
    ticker = _Ticker(progress)
    fd, tmp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=raw_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            sink = _Sink(out)
            if is_url(source):
                validators = _download(
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
            else:
                validators = _copy_local(source, sink, ticker)
        if validators is None:
            tmp.unlink()
            assert previous is not None
            say(f"dump unchanged at {shown} (HTTP 304): keeping {previous.path}")
            dump = previous
        else:
            dump = _place(tmp, raw_dir, sink, shown, *validators)
            ticker.finish(sink.size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if keep is not None:
        protect = [dump.path] + [d.path for d in (previous, in_use) if d is not None]
        for path in prune_dumps(raw_dir, keep, protect=protect):
            say(f"deleted old dump {path}")
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


def progress_reporter(
    log: Callable[[str], None],
    *,
    every_percent: int = 5,
    every_bytes: int = 1 << 30,
    bar: TextIO | None = None,
) -> ProgressCallback:
    """A progress callback logging a line every `every_percent` % (every `every_bytes` when the
    size is unknown) and, given a terminal stream as `bar`, redrawing a one-line text bar on it.
    """
    return _Reporter(log, every_percent, every_bytes, bar)


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


class _Sink:
    """The temp file, with the sha256 and gzip check of exactly the bytes in it, in order.

    Resumed bytes are appended to the same digest and GzipCheck, so both see the whole stream.
    """

    HEAD = 512

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.mode: int | None = None
        """The permission bits of the local file copied, if it is one."""
        self.restart()

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.gzip: GzipCheck | None = None

    def write(self, chunk: bytes) -> None:
        if len(self.head) < self.HEAD:
            before = self.head
            self.head += chunk[: self.HEAD - len(before)]
            if len(before) < 2 <= len(self.head) and self.head[:2] == GZIP_MAGIC:
                self.gzip = GzipCheck()
                self.gzip.feed(before)
        if self.gzip is not None:
            self.gzip.feed(chunk)
        self.digest.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)


class _Ticker:
    """Calls `progress` at most about every 1 % (or 64 MB), never twice for the same count."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self._progress = progress
        self._next = 0
        self._last: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self._progress is None:
            return
        if self._last is not None and done < self._last:
            self._next = 0
        if done >= self._next or done == total:
            if done != self._last:
                self._progress(done, total)
            self._last = done
            self._next = done + (max(total // 100, 1) if total else UNKNOWN_SIZE_STEP)

    def finish(self, size: int) -> None:
        if self._progress is not None and self._last != size:
            self._progress(size, size)
            self._last = size


class _Reporter:
    """See `progress_reporter`."""

    WIDTH = 30

    def __init__(
        self, log: Callable[[str], None], every_percent: int, every_bytes: int, bar: TextIO | None
    ) -> None:
        self._log = log
        self._percent = max(every_percent, 1)
        self._bytes = max(every_bytes, 1)
        self._bar = bar
        self._next = 0

    def __call__(self, done: int, total: int | None) -> None:
        if self._bar is not None:
            self._draw(done, total)
        mark = done * 100 // total if total else done // self._bytes
        step = self._percent if total else 1
        if mark < self._next - step:
            self._next = 0
        if mark >= self._next or done == total:
            if total:
                self._log(f"dump: {mark} % ({_human(done)} of {_human(total)})")
            else:
                self._log(f"dump: {_human(done)} so far (size unknown)")
            self._next = (mark // step + 1) * step

    def _draw(self, done: int, total: int | None) -> None:
        if total:
            filled = min(done * self.WIDTH // total, self.WIDTH)
            line = (
                f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done * 100 // total:3d} % "
                f"{_human(done)} / {_human(total)}"
            )
        else:
            line = f"{_human(done)} downloaded"
        end = "\n" if done == total else ""
        self._bar.write(f"\r{line:<60}{end}")
        self._bar.flush()


def _human(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _copy_local(source: str, sink: _Sink, ticker: _Ticker) -> tuple[None, None]:
    """Copy a local dump: only a file that starts like a dump, never through a symbolic link
    that leads out of its folder; its permissions bound the copy's."""
    path = Path(source).expanduser()
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        raise DumpError(f"dump {source} is a symbolic link out of its folder: refused")
    if not path.is_file():
        raise DumpError(
            f"dump not found: {source} is not a file (set NOVA_DUMP_URL to a file or URL)"
        )
    status = path.stat()
    if status.st_size == 0:
        raise DumpError(f"dump is empty: {source} has 0 bytes")
    check_is_dump(str(path))
    sink.mode = stat.S_IMODE(status.st_mode)
    ticker(0, status.st_size)
    with path.open("rb") as src:
        while chunk := src.read(CHUNK):
            sink.write(chunk)
            ticker(sink.size, status.st_size)
    return None, None


def _place(
    tmp: Path, raw_dir: Path, sink: _Sink, source: str, etag: str | None, last_modified: str | None
) -> Dump:
    """Rename the whole, checked temp file to its sha256 name (or drop it if that file exists)."""
    if sink.size == 0:
        raise DumpError(f"dump is empty: {source} has 0 bytes")
    if sink.gzip is not None and not sink.gzip.complete:
        raise DumpError(f"dump is a truncated gzip file: {source} ends before its gzip stream does")
    sha = sink.digest.hexdigest()
    target = raw_dir / f"off_products_{sha[:16]}.tsv{'.gz' if sink.gzip else ''}"
    if target.exists():
        tmp.unlink()
        os.utime(target)
    else:
        # mkstemp made it owner-only; a dump is data others on the machine may read, unless
        # the file it was copied from was not.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask & (0o666 if sink.mode is None else sink.mode))
        tmp.replace(target)
    return Dump(str(target), sha, sink.size, source, sink.gzip is not None, etag, last_modified)


def _conditional(previous: Dump | None, url: str) -> Dump | None:
    """`previous` if a 304 may stand for it: same URL, a validator, and its file still there."""
    if previous is None or previous.source != url or not Path(previous.path).is_file():
        return None
    return previous if (previous.etag or previous.last_modified) else None


class _Retry(Exception):
    """This attempt failed in a way another attempt may not."""


def _download(
    url: str,
    sink: _Sink,
    ticker: _Ticker,
    say: Callable[[str], None],
    *,
    conditional: Dump | None,
    attempts: int,
    retry_delay: float,
    timeout: float,
    give_up_at: float | None,
) -> tuple[str | None, str | None] | None:
    """Fill `sink` from `url`, resuming and retrying; its (ETag, Last-Modified), None on a 304.
    Messages name the URL redacted."""
    shown = redact(url)
    address, auth = _credentials(url)

    def check_deadline() -> None:
        if give_up_at is not None and time.monotonic() > give_up_at:
            raise DumpError(
                f"dump download from {shown} passed its deadline with {sink.size:,} bytes "
                f"received{f' of {state.total:,}' if state.total else ''} "
                "(dump_source.deadline seconds)"
            )

    state = _Transfer()
    failures = 0
    best = 0
    while True:
        resuming = sink.size > 0
        request = urllib.request.Request(
            address, headers={**auth, **state.headers(sink.size, conditional)}
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                state.begin(response, sink, shown, say)
                ticker(sink.size, state.total)
                # read1 returns what has arrived, so a trickle still reaches the deadline check.
                while chunk := response.read1(CHUNK):
                    sink.write(chunk)
                    if sink.size - len(chunk) < _Sink.HEAD and _looks_like_html(sink.head):
                        raise DumpError(
                            f"dump download got an HTML page, not a dump: {shown} "
                            f"(starts with {sink.head.lstrip()[:40]!r})"
                        )
                    ticker(sink.size, state.total)
                    check_deadline()
            state.check_complete(sink)
            return state.etag, state.last_modified
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304 and conditional is not None and not resuming:
                return None
            if exc.code == 416 and resuming:
                sink.restart()
                error = "HTTP 416: the server refused the resume range; starting again from zero"
            elif exc.code < 500:
                raise DumpError(
                    f"dump download failed: {shown} answered HTTP {exc.code} {exc.reason}"
                ) from exc
            else:
                error = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, socket.gaierror):
                raise DumpError(
                    f"dump download failed: the host of {shown} does not resolve ({exc.reason})"
                ) from exc
            error = str(exc.reason) or type(exc).__name__
        except (_Retry, OSError, http.client.HTTPException) as exc:
            error = str(exc) or type(exc).__name__
        if sink.size > best:
            best, failures = sink.size, 1
        else:
            failures += 1
        if failures >= attempts:
            if state.total is not None and sink.size < state.total:
                raise DumpError(
                    f"dump download incomplete: {shown} sent {sink.size:,} of its "
                    f"{state.total:,} announced bytes; gave up after {failures} attempts "
                    f"without progress ({error})"
                )
            raise DumpError(
                f"dump download failed: {shown} after {failures} attempts without progress: {error}"
            )
        delay = min(retry_delay * 2 ** (failures - 1), MAX_RETRY_DELAY)
        if give_up_at is not None:
            delay = max(min(delay, give_up_at - time.monotonic()), 0.0)
        at = f" (resuming at byte {sink.size:,})" if sink.size else ""
        say(f"dump download from {shown} failed: {error}; retrying in {delay:.2f} s{at}")
        time.sleep(delay)
        check_deadline()


class _Transfer:
    """What one download learnt from its responses: the full size and the validators."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None

    def headers(self, offset: int, conditional: Dump | None) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.etag and not self.etag.startswith("W/"):
                headers["If-Range"] = self.etag
            elif self.last_modified and not self.etag:
                headers["If-Range"] = self.last_modified
        elif conditional is not None:
            if conditional.etag:
                headers["If-None-Match"] = conditional.etag
            if conditional.last_modified:
                headers["If-Modified-Since"] = conditional.last_modified
        return headers

    def begin(
        self,
        response: http.client.HTTPResponse,
        sink: _Sink,
        url: str,
        say: Callable[[str], None],
    ) -> None:
        """Check a response's status and headers; line `sink` up with where its body starts."""
        if response.status == 206 and sink.size:
            self._check_resume(response, sink, url)
            return
        if response.status not in (200, 206):
            raise DumpError(f"dump download failed: {url} answered HTTP {response.status}")
        if response.status == 206:
            raise _Retry(f"{url} sent a partial answer (206) to a request for the whole file")
        if sink.size:
            say(f"{url} ignored the resume range (HTTP 200): starting again from zero")
            sink.restart()
        if response.headers.get_content_type() in ("text/html", "application/xhtml+xml"):
            raise DumpError(
                f"dump download got an HTML page, not a dump: {url} answered 200 with "
                f"Content-Type {response.headers.get('Content-Type')}"
            )
        length = response.headers.get("Content-Length")
        self.total = int(length) if length and length.isdigit() else None
        self.etag = response.headers.get("ETag")
        self.last_modified = response.headers.get("Last-Modified")

    def _check_resume(self, response: http.client.HTTPResponse, sink: _Sink, url: str) -> None:
        found = re.fullmatch(
            r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", response.headers.get("Content-Range") or ""
        )
        etag = response.headers.get("ETag")
        problem = None
        if found is None:
            problem = (
                f"a 206 without a valid Content-Range ({response.headers.get('Content-Range')!r})"
            )
        elif int(found[1]) != sink.size:
            problem = f"bytes from {found[1]} when asked from {sink.size}"
        elif found[3] != "*" and self.total is not None and int(found[3]) != self.total:
            problem = f"a total of {found[3]} bytes instead of {self.total}"
        elif etag and self.etag and etag != self.etag:
            problem = f"ETag {etag} instead of {self.etag}: the file changed"
        if problem is not None:
            sink.restart()
            raise _Retry(f"{url} resumed badly ({problem}); starting again from zero")
        if found[3] != "*":
            self.total = int(found[3])

    def check_complete(self, sink: _Sink) -> None:
        """A body that ended before its announced size (or mid-gzip, size unknown) is a cut."""
        if self.total is not None and sink.size < self.total:
            raise _Retry(f"connection closed at byte {sink.size:,} of {self.total:,}")
        if self.total is None and sink.gzip is not None and not sink.gzip.complete:
            raise _Retry(f"connection closed mid gzip stream at byte {sink.size:,}")


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:9].lower()
    return start.startswith(b"<!doctype") or start.startswith(b"<html")
