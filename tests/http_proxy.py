"""A loopback HTTP forward proxy for tests: it logs every request it is
asked to forward (absolute-form ``GET http://host:port/path``, plain http
only, no CONNECT) and passes it on to the loopback host it names.

    def test_something(http_proxy, feed_server):
        ...  # proxy = http_proxy.url; later http_proxy.requests
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

_HOP_BY_HOP = frozenset(
    {"connection", "proxy-connection", "proxy-authorization", "keep-alive", "transfer-encoding"}
)


@dataclass(frozen=True)
class ProxiedRequest:
    url: str  # the absolute URL the client asked for
    headers: dict[str, str]  # names in lower case, as the proxy received them


class LoopbackProxy:
    def __init__(self) -> None:
        self.requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _record(self, request: ProxiedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _make_handler(proxy: LoopbackProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            proxy._record(ProxiedRequest(self.path, headers))
            target = urlsplit(self.path)
            if target.scheme != "http" or target.hostname not in ("127.0.0.1", "localhost"):
                self._send(502, {}, b"this test proxy forwards to loopback http only")
                return
            upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
            try:
                path = target.path + (f"?{target.query}" if target.query else "")
                forwarded = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request("GET", path or "/", headers=forwarded)
                response = upstream.getresponse()
                body = response.read()
                out = {
                    k: v
                    for k, v in response.getheaders()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                }
                self._send(response.status, out, body)
            finally:
                upstream.close()

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def http_proxy() -> Iterator[LoopbackProxy]:
    proxy = LoopbackProxy().start()
    try:
        yield proxy
    finally:
        proxy.close()
