"""A fast loopback feed server, run in its own process.

    python -m bench.feedserver --feeds 1000 --hosts 50

Serves ``GET /feed/<n>`` for n in 0..feeds-1 from bodies generated in memory
(see ``bench.feedgen``), over raw HTTP/1.1 with keep-alive on asyncio. Feed n
is published under 127.0.0.<1 + n % hosts>, so a client that limits
connections per host sees many sites, as it would in real use; every address
serves every feed. It prints ``READY <port>`` once it listens.

Control endpoints (any host):
    POST /_control/state?generation=N&conditional=0|1   set the feed state
    POST /_control/shift                                 one new item in every feed
    GET  /_control/stats                                 request counters (JSON)
    POST /_control/reset                                 zero the counters
``SIGUSR1`` also shifts every feed by one item.

With ``conditional=1`` the server answers If-None-Match / If-Modified-Since
with 304 (RFC 9110 13.1.1: If-None-Match wins when both are sent); with 0 it
ignores them and always sends the full body, as many real servers do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

from bench.feedgen import FeedSet


def host_of(feed: int, hosts: int) -> str:
    return f"127.0.0.{1 + feed % hosts}"


def feed_urls(count: int, hosts: int, port: int) -> list[str]:
    return [f"http://{host_of(n, hosts)}:{port}/feed/{n}" for n in range(count)]


class FeedServer:
    def __init__(self, feeds: FeedSet) -> None:
        self.feeds = feeds
        self.conditional = True
        self.stats: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        self.stats = {"requests": 0, "200": 0, "304": 0, "404": 0, "connections": 0}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = [*lines[0].split(" "), "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                status, extra, body = self.respond(method, target, headers)
                keep_alive = headers.get("connection", "").lower() != "close"
                writer.write(
                    (
                        f"HTTP/1.1 {status}\r\n{extra}Content-Length: {len(body)}\r\n"
                        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                    ).encode("latin-1")
                )
                if body and method != "HEAD":
                    writer.write(body)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    def respond(self, method: str, target: str, headers: dict[str, str]) -> tuple[str, str, bytes]:
        parts = urlsplit(target)
        path = parts.path
        if path.startswith("/feed/"):
            self.stats["requests"] += 1
            number = path[6:]
            if not number.isdigit() or int(number) >= self.feeds.count:
                self.stats["404"] += 1
                return "404 Not Found", "", b"no such feed\n"
            feed = int(number)
            etag = self.feeds.etags[feed]
            last_modified = self.feeds.last_modified[feed]
            validators = f"ETag: {etag}\r\nLast-Modified: {last_modified}\r\n"
            if self.conditional and _not_modified(headers, etag, last_modified):
                self.stats["304"] += 1
                return "304 Not Modified", validators, b""
            self.stats["200"] += 1
            return (
                "200 OK",
                validators + "Content-Type: application/rss+xml; charset=UTF-8\r\n",
                self.feeds.bodies[feed],
            )
        if path.startswith("/_control/"):
            return self.control(method, path[10:], parse_qs(parts.query))
        return "404 Not Found", "", b"not found\n"

    def control(
        self, method: str, action: str, query: dict[str, list[str]]
    ) -> tuple[str, str, bytes]:
        if action == "stats":
            payload = dict(
                self.stats, generation=self.feeds.generation, conditional=self.conditional
            )
            return "200 OK", "Content-Type: application/json\r\n", json.dumps(payload).encode()
        if method != "POST":
            return "405 Method Not Allowed", "", b""
        if action == "shift":
            self.feeds.set_generation(self.feeds.generation + 1)
        elif action == "state":
            if "conditional" in query:
                self.conditional = query["conditional"][0] not in ("0", "false", "off")
            if "generation" in query:
                self.feeds.set_generation(int(query["generation"][0]))
        elif action == "reset":
            self.reset()
        else:
            return "404 Not Found", "", b""
        return "200 OK", "", b"ok\n"


def _not_modified(headers: dict[str, str], etag: str, last_modified: str) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since:
        if since == last_modified:
            return True
        try:
            return parsedate_to_datetime(since) >= parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
    return False


def _listen(hosts: int, port: int) -> tuple[list[socket.socket], int]:
    """One listening socket per loopback address, all on the same port."""
    for _ in range(50):
        sockets: list[socket.socket] = []
        try:
            for n in range(hosts):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host_of(n, hosts), port))
                port = sock.getsockname()[1]
                sock.listen(1024)
                sock.setblocking(False)
            return sockets, port
        except OSError:
            for sock in sockets:
                sock.close()
            if port and _ == 0:
                raise
            port = 0
    raise OSError("feedserver: no free port on every loopback address")


async def serve(feeds: int, hosts: int, port: int) -> None:
    sockets, port = _listen(hosts, port)
    started = time.perf_counter()
    feed_set = FeedSet(feeds, feed_urls(feeds, hosts, port))
    server = FeedServer(feed_set)
    servers = [await asyncio.start_server(server.handle, sock=sock) for sock in sockets]
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(
        signal.SIGUSR1, lambda: feed_set.set_generation(feed_set.generation + 1)
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print(f"READY {port} {time.perf_counter() - started:.2f}", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if not 1 <= args.hosts <= 254:
        sys.exit("feedserver: --hosts must be 1..254")
    asyncio.run(serve(args.feeds, args.hosts, args.port))


if __name__ == "__main__":
    main()


class FeedServerProcess:
    """The harness's handle on a feed server running in a child process."""

    def __init__(self, feeds: int, hosts: int = 50) -> None:
        import subprocess

        self.feeds = feeds
        self.hosts = min(hosts, feeds)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.feedserver",
                "--feeds",
                str(feeds),
                "--hosts",
                str(self.hosts),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if not line or line[0] != "READY":
            self.close()
            raise RuntimeError("feedserver: did not start")
        self.port = int(line[1])
        self.startup_seconds = float(line[2])

    def urls(self, count: int | None = None) -> list[str]:
        return feed_urls(self.feeds if count is None else count, self.hosts, self.port)

    def _call(self, method: str, action: str) -> bytes:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_control/{action}", method=method
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            body: bytes = response.read()
            return body

    def state(self, *, generation: int | None = None, conditional: bool | None = None) -> None:
        query = []
        if generation is not None:
            query.append(f"generation={generation}")
        if conditional is not None:
            query.append(f"conditional={int(conditional)}")
        self._call("POST", "state?" + "&".join(query))

    def shift(self) -> None:
        self._call("POST", "shift")

    def reset_stats(self) -> None:
        self._call("POST", "reset")

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(self._call("GET", "stats"))
        return result

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except Exception:
                self._process.kill()
                self._process.wait()
