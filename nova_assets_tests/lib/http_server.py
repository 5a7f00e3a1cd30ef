"""A real HTTP server on 127.0.0.1 that misbehaves on demand, for testing dump downloads."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

FAST = {"retry_delay": 0.01, "timeout": 5.0}
"""fetch_dump settings for tests: retry at once, give up on silence soon."""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files(raw: Path) -> list[str]:
    """The names in a raw folder, sorted ([] if it does not exist)."""
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


@dataclass
class Plan:
    """What the server does; every request's headers are recorded in `requests`."""

    body: bytes = b""
    etag: str | None = '"v1"'
    last_modified: str | None = "Wed, 01 Jan 2025 00:00:00 GMT"
    content_type: str = "application/octet-stream"
    send_length: bool = True
    honour_range: bool = True
    errors: list[int] = field(default_factory=list)
    """Statuses answered, one per request, before the file is served."""
    drop_first: int = 0
    """On the first N requests, close the connection halfway through the body."""
    stall_first: int = 0
    """On the first N requests, send half the body then go silent for `stall_seconds`."""
    stall_seconds: float = 1.0
    truncate_at: int | None = None
    """Never send a byte beyond this offset, yet announce the whole size (every time)."""
    redirect_to: str | None = None
    """Answer every request with a 302 to this location."""
    trickle_seconds: float = 0.0
    """Send the body one small piece at a time, this long apart (never silent long enough to
    time out)."""
    requests: list[dict[str, str]] = field(default_factory=list)


class DumpServer:
    """A threaded server serving `plan.body` at any path, under the rules of `plan`."""

    def __init__(self) -> None:
        self.plan = Plan()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server._answer(self)

            def do_HEAD(self) -> None:
                server._answer(self, head=True)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/products.csv.gz"

    def serve(self, body: bytes, **rules) -> Plan:
        self.plan = Plan(body=body, **rules)
        return self.plan

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, handler: http.server.BaseHTTPRequestHandler, head: bool = False) -> None:
        plan = self.plan
        with self._lock:
            index = len(plan.requests)
            plan.requests.append(dict(handler.headers.items()))
        if index < len(plan.errors):
            handler.send_error(plan.errors[index])
            return
        if plan.redirect_to is not None:
            handler.send_response(302)
            handler.send_header("Location", plan.redirect_to)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if (plan.etag and handler.headers.get("If-None-Match") == plan.etag) or (
            plan.last_modified and handler.headers.get("If-Modified-Since") == plan.last_modified
        ):
            handler.send_response(304)
            handler.end_headers()
            return
        body, start = plan.body, 0
        wanted = re.fullmatch(r"bytes=(\d+)-", handler.headers.get("Range") or "")
        if wanted and plan.honour_range:
            start = int(wanted[1])
            if start >= len(body):
                handler.send_error(416)
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Type", plan.content_type)
        handler.send_header("Accept-Ranges", "bytes")
        if plan.etag:
            handler.send_header("ETag", plan.etag)
        if plan.last_modified:
            handler.send_header("Last-Modified", plan.last_modified)
        if plan.send_length:
            handler.send_header("Content-Length", str(len(body) - start))
        handler.end_headers()
        if head:
            return
        payload = body[start:]
        if plan.truncate_at is not None:
            payload = body[start : max(start, plan.truncate_at)]
        cut = index < plan.drop_first or index < plan.stall_first
        if cut:
            payload = payload[: len(payload) // 2]
        if plan.trickle_seconds:
            with contextlib.suppress(OSError):
                for i in range(0, len(payload), 1024):
                    handler.wfile.write(payload[i : i + 1024])
                    handler.wfile.flush()
                    time.sleep(plan.trickle_seconds)
            return
        handler.wfile.write(payload)
        handler.wfile.flush()
        if index < plan.stall_first:
            time.sleep(plan.stall_seconds)
        if cut or plan.truncate_at is not None:
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
