"""A real HTTP server on 127.0.0.1 for fetch and pipeline tests.

It runs the stdlib ``ThreadingHTTPServer`` in a background thread, so it never
shares the test's event loop, and the bot's client talks to it over a real socket. Each
path has its own ``Route``: a body, a status, headers, conditional GET
(honoured or ignored), gzip (or raw gzip bytes: a bomb), redirects, a delay,
a gate the test opens, and a body dripped slowly or sent chunked. Every
request is logged so a test can assert what the client sent (If-None-Match,
If-Modified-Since...).

    def test_something(feed_server):
        route = feed_server.serve("/feed.xml", body, etag='"v1"')
        url = feed_server.url("/feed.xml")
        ...
        assert feed_server.requests("/feed.xml")[-1].headers["if-none-match"] == '"v1"'
"""

from __future__ import annotations

import base64
import gzip
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass
class Route:
    """What one path answers. Attributes may be changed between requests."""

    body: bytes = b""
    status: int = 200
    content_type: str | None = "application/rss+xml; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    # False: a server that ignores If-None-Match/If-Modified-Since and always
    # sends the full body (common in the wild).
    honour_conditional: bool = True
    # Send the body gzip-compressed with Content-Encoding: gzip.
    gzip: bool = False
    # Bytes sent as they are, with Content-Encoding: gzip (a gzip bomb).
    raw_gzip: bytes | None = None
    # Location for 3xx statuses: a path on this server or an absolute URL.
    location: str | None = None
    # Seconds to wait before answering (a slow server).
    delay: float = 0.0
    # When set, requests wait until the test sets it (a server that answers
    # exactly when the test says so).
    gate: threading.Event | None = None
    # Send the body in pieces of ``chunk_size`` bytes, waiting this long
    # before each one (a server dripping bytes: never idle long enough for a
    # read timeout, yet never done).
    drip: float = 0.0
    chunk_size: int = 64 * 1024
    # Transfer-Encoding: chunked instead of Content-Length (size unknown
    # until the end).
    chunked: bool = False
    # Cut the connection with a TCP reset after this many body bytes (a
    # server or proxy dying mid-transfer).
    reset_after: int | None = None
    # Send the body over and over, chunked, until the client hangs up (a
    # stream that never ends).
    endless: bool = False
    # (username, password): answer 401 unless the request carries them as
    # HTTP basic auth.
    basic_auth: tuple[str, str] | None = None
    # WebSub discovery by header: (hub URL, self URL) sent as
    # ``Link: <hub>; rel="hub", <self>; rel="self"``.
    websub_links: tuple[str, str] | None = None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (a fetch given up on, a body
        # over the cap) is what fault tests provoke, not a server failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    time: float = field(default_factory=time.monotonic)  # when it arrived


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        # Do not join handler threads on close: a slow route may still be waiting.
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes delayed handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes | str = b"", **options: Any) -> Route:
        """Answer ``path`` with ``body``; ``options`` are ``Route`` fields."""
        data = body.encode() if isinstance(body, str) else body
        route = Route(body=data, **options)
        self.routes[path] = route
        return route

    def serve_file(self, path: str, file: Path, **options: Any) -> Route:
        return self.serve(path, file.read_bytes(), **options)

    def redirect(self, path: str, location: str, status: int = 301) -> Route:
        assert status in REDIRECT_STATUSES
        return self.serve(path, status=status, location=location, content_type=None)

    def requests(self, path: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if path is None or r.path == path]

    def hits(self, path: str) -> int:
        return len(self.requests(path))

    def _record(self, request: LoggedRequest) -> None:
        with self._lock:
            self.log.append(request)

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server is closing."""
        return not self._closing.wait(seconds)

    def _wait_for(self, gate: threading.Event) -> bool:
        """Wait until ``gate`` is set; False if the server is closing first."""
        while not gate.wait(0.05):
            if self._closing.is_set():
                return False
        return True


def _not_modified(route: Route, headers: dict[str, str]) -> bool:
    if not route.honour_conditional:
        return False
    if route.etag and "if-none-match" in headers:
        # RFC 9110 13.1.2: If-None-Match wins over If-Modified-Since.
        tags = {t.strip() for t in headers["if-none-match"].split(",")}
        return route.etag in tags or "*" in tags
    if route.last_modified and "if-modified-since" in headers:
        return headers["if-modified-since"] == route.last_modified
    return False


def _authorized(credentials: tuple[str, str], headers: dict[str, str]) -> bool:
    expected = base64.b64encode(":".join(credentials).encode()).decode()
    return headers.get("authorization", "") == f"Basic {expected}"


def _make_handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            server._record(LoggedRequest(self.command, self.path, headers))
            route = server.routes.get(self.path)
            if route is None:
                self._answer(404, {"Content-Type": "text/plain"}, b"not found")
                return
            if route.basic_auth is not None and not _authorized(route.basic_auth, headers):
                self._answer(
                    401,
                    {"WWW-Authenticate": 'Basic realm="feeds"', "Content-Type": "text/plain"},
                    b"unauthorized",
                )
                return
            if route.delay and not server._wait(route.delay):
                return
            if route.gate is not None and not server._wait_for(route.gate):
                return
            out = {k: v for k, v in route.headers.items()}
            if route.websub_links is not None:
                hub, topic = route.websub_links
                out["Link"] = f'<{hub}>; rel="hub", <{topic}>; rel="self"'
            if route.etag:
                out["ETag"] = route.etag
            if route.last_modified:
                out["Last-Modified"] = route.last_modified
            if route.status in REDIRECT_STATUSES:
                location = route.location or "/"
                out["Location"] = server.url(location) if location.startswith("/") else location
                self._answer(route.status, out, b"")
                return
            if route.status == 200 and _not_modified(route, headers):
                self._answer(304, out, b"")
                return
            body = route.body
            if route.content_type:
                out["Content-Type"] = route.content_type
            if route.raw_gzip is not None:
                body = route.raw_gzip
                out["Content-Encoding"] = "gzip"
            elif route.gzip:
                body = gzip.compress(body)
                out["Content-Encoding"] = "gzip"
            self._answer(route.status, out, body, route)

        def _answer(
            self, status: int, headers: dict[str, str], body: bytes, route: Route | None = None
        ) -> None:
            chunked = route is not None and (route.chunked or route.endless)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status == 304:
                    return
                size = route.chunk_size if route else max(1, len(body))
                sent = 0
                while True:
                    for start in range(0, len(body), size):
                        if route and route.drip and not server._wait(route.drip):
                            return
                        piece = body[start : start + size]
                        if route and route.reset_after is not None:
                            piece = piece[: route.reset_after - sent]
                        sent += len(piece)
                        if chunked:
                            piece = b"%x\r\n%s\r\n" % (len(piece), piece)
                        self.wfile.write(piece)
                        self.wfile.flush()
                        if route and route.reset_after is not None and sent >= route.reset_after:
                            self._reset()
                            return
                    if not (route and route.endless and body) or server._closing.is_set():
                        break
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to tell it

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST, not FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # the request log above is what tests read

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer().start()
    try:
        yield server
    finally:
        server.close()
