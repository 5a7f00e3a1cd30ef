"""Download a dump over http(s) into a Sink: resumed with `Range` after a cut, retried with
backoff on errors that may pass (connection, timeout, 5xx) and not on those that will not (4xx,
a host that does not resolve), bounded by an overall deadline, redirected only to http(s), and
refused when shorter than announced or an HTML page. URLs are shown without credentials or
query string.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import BinaryIO

from nova_assets.lib.ingest.dump_format import GZIP_MAGIC, DumpError, GzipCheck

CHUNK = 1 << 20
MAX_RETRY_DELAY = 60.0
USER_AGENT = "nova_assets-dump-fetcher/1"


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


class Sink:
    """The temp file, with the sha256 and gzip check of exactly the bytes in it, in order.

    Resumed bytes are appended to the same digest and GzipCheck, so both see the whole stream.
    """

    HEAD = 512

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
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


class _Retry(Exception):
    """This attempt failed in a way another attempt may not."""


def download(
    url: str,
    sink: Sink,
    ticker: Callable[[int, int | None], None],
    say: Callable[[str], None],
    *,
    conditional: tuple[str | None, str | None] | None,
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
                    if sink.size - len(chunk) < Sink.HEAD and _looks_like_html(sink.head):
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

    def headers(
        self, offset: int, conditional: tuple[str | None, str | None] | None
    ) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.etag and not self.etag.startswith("W/"):
                headers["If-Range"] = self.etag
            elif self.last_modified and not self.etag:
                headers["If-Range"] = self.last_modified
        elif conditional is not None:
            etag, last_modified = conditional
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
        return headers

    def begin(
        self,
        response: http.client.HTTPResponse,
        sink: Sink,
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

    def _check_resume(self, response: http.client.HTTPResponse, sink: Sink, url: str) -> None:
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

    def check_complete(self, sink: Sink) -> None:
        """A body that ended before its announced size (or mid-gzip, size unknown) is a cut."""
        if self.total is not None and sink.size < self.total:
            raise _Retry(f"connection closed at byte {sink.size:,} of {self.total:,}")
        if self.total is None and sink.gzip is not None and not sink.gzip.complete:
            raise _Retry(f"connection closed mid gzip stream at byte {sink.size:,}")


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:9].lower()
    return start.startswith(b"<!doctype") or start.startswith(b"<html")
