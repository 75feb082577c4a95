"""Feeds added at runtime are fetched from public addresses only, on every
redirect hop and every poll, connecting to the very address that was vetted.

No test resolves a real name: a stub resolver answers, and the socket
factory under the guard (``FakeInternet``) carries only the public test
addresses it knows to the loopback feed server and refuses any other
non-loopback connection, so a guard that let something through fails closed
here."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.clock import ManualClock
from bot.config import Config, PollingConfig, SecurityConfig
from bot.errors import FetchError
from bot.fetch import Fetcher, Network, make_public_only_client
from bot.netguard import literal_address, public_only_sockets, refusal
from bot.runtime import Runtime
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS, loopback_config

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
ARS = "wordpress-news-arstechnica.rss.xml"


class StubResolver:
    """Answers from a table that a test may change between calls."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise FetchError(f"fetch: cannot resolve {host}: stub has no answer")
        return self.answers[host]


class FakeInternet:
    """The sockets under the clients (``network``): one for a known public
    test address is connected to 127.0.0.1 instead (same port unless
    ``ports`` says otherwise), one for loopback as it is, and any other is
    refused, so nothing a test does can leave the machine. ``connected``
    lists every (address, port) a connection was made for."""

    def __init__(self, public: Sequence[str] = (PUBLIC_V4, PUBLIC_V6)) -> None:
        self.public = set(public)
        self.ports: dict[int, int] = {}
        self.connected: list[tuple[str, int]] = []

    @property
    def network(self) -> Network:
        return Network(socket_factory=self.socket)

    def socket(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        host, port = str(sockaddr[0]), int(sockaddr[1])
        self.connected.append((host, port))
        if host in self.public:
            port = self.ports.get(port, port)
            if family == socket.AF_INET6:  # to 127.0.0.1 over the dual-stack socket
                return _Rerouted(family, kind, proto, ("::ffff:127.0.0.1", port, 0, 0))
            return _Rerouted(family, kind, proto, ("127.0.0.1", port))
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a connection to {host} left the test machine")
        return socket.socket(family, kind, proto)


class _Rerouted(socket.socket):
    """A socket that connects to ``to``, whatever address it is given."""

    def __init__(self, family: int, kind: int, proto: int, to: tuple[Any, ...]) -> None:
        super().__init__(family, kind, proto)
        self._to = to

    def connect(self, address: Any) -> None:
        super().connect(self._to)

    def connect_ex(self, address: Any) -> int:
        return super().connect_ex(self._to)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("192.0.2.1", "reserved"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None and reason in found


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"),
        ("news.example", None),
        ("cafe.bad", None),
    ],
)
def test_decimal_octal_and_short_hosts_are_read_as_the_addresses_they_are(
    host: str, address: str | None
) -> None:
    found = literal_address(host)
    assert (str(found) if found else None) == address


@pytest.fixture
async def guarded(
    feed_server: FeedServer,
) -> AsyncIterator[tuple[Fetcher, StubResolver, FakeInternet]]:
    feed_server.serve_file("/feed.xml", REAL_FEEDS / ARS)
    feed_server.serve("/secret", b"metadata credentials")
    resolver = StubResolver({"news.example": [PUBLIC_V4], "v6.example": [PUBLIC_V6]})
    internet = FakeInternet()
    config = PollingConfig()
    client = make_public_only_client(config, resolver, internet.network)
    try:
        yield Fetcher(client, config, client), resolver, internet
    finally:
        await client.aclose()


async def fetch(fetcher: Fetcher, url: str) -> bytes:
    result = await fetcher.fetch(url, etag=None, last_modified=None, now=NOW, trusted=False)
    return result.body


async def test_a_public_host_is_fetched_from_its_vetted_address_with_its_own_host_header(
    guarded: tuple[Fetcher, StubResolver, FakeInternet], feed_server: FeedServer
) -> None:
    fetcher, resolver, internet = guarded
    port = feed_server.url("/").split(":")[2].rstrip("/")
    body = await fetch(fetcher, f"http://news.example:{port}/feed.xml")
    assert body == (REAL_FEEDS / ARS).read_bytes()
    assert internet.connected == [(PUBLIC_V4, int(port))]
    assert feed_server.requests("/feed.xml")[-1].headers["host"] == f"news.example:{port}"
    assert resolver.calls == ["news.example"]
    await fetch(fetcher, f"http://v6.example:{port}/feed.xml")
    assert internet.connected[-1][0] == PUBLIC_V6


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["fd00:ec2::254"],
        ["::ffff:127.0.0.1"],
        ["100.64.1.1"],
        [PUBLIC_V4, "192.168.0.1"],  # one private answer is enough
    ],
)
async def test_a_host_resolving_to_a_non_public_address_is_refused_before_connecting(
    guarded: tuple[Fetcher, StubResolver, FakeInternet],
    feed_server: FeedServer,
    answers: list[str],
) -> None:
    fetcher, resolver, internet = guarded
    resolver.answers["evil.example"] = answers
    port = feed_server.url("/").split(":")[2].rstrip("/")
    with pytest.raises(FetchError, match=r"refused: evil\.example is"):
        await fetch(fetcher, f"http://evil.example:{port}/secret")
    assert internet.connected == [] and feed_server.hits("/secret") == 0


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "0177.0.0.1", "0x7f.1", "127.1"],
)
async def test_literal_loopback_hosts_in_any_spelling_are_refused_without_dns(
    guarded: tuple[Fetcher, StubResolver, FakeInternet], feed_server: FeedServer, host: str
) -> None:
    fetcher, resolver, internet = guarded
    port = feed_server.url("/").split(":")[2].rstrip("/")
    with pytest.raises(FetchError, match=r"refused|invalid URL"):
        await fetch(fetcher, f"http://{host}:{port}/secret")
    assert resolver.calls == [] and internet.connected == []
    assert feed_server.hits("/secret") == 0


async def test_a_redirect_to_a_private_address_is_refused(
    guarded: tuple[Fetcher, StubResolver, FakeInternet], feed_server: FeedServer
) -> None:
    fetcher, resolver, internet = guarded
    resolver.answers["inside.example"] = ["10.0.0.1"]
    port = feed_server.url("/").split(":")[2].rstrip("/")
    feed_server.redirect("/to-loopback", feed_server.url("/secret"), status=302)
    feed_server.redirect("/to-inside", f"http://inside.example:{port}/secret", status=301)
    feed_server.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/", status=307)
    for path in ("/to-loopback", "/to-inside", "/to-metadata"):
        with pytest.raises(FetchError, match="refused"):
            await fetch(fetcher, f"http://news.example:{port}{path}")
    assert feed_server.hits("/secret") == 0
    assert {c[0] for c in internet.connected} == {PUBLIC_V4}


class LyingResolver(AbstractResolver):
    """A resolver with a bug: it hands the connector a loopback address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


async def test_the_address_connected_to_is_checked_whatever_the_resolver_answered(
    feed_server: FeedServer,
) -> None:
    """The socket maker is the last step before connect: even a resolver
    that lets a private address through does not get a connection made."""
    internet = FakeInternet()
    connector = aiohttp.TCPConnector(
        resolver=LyingResolver(), socket_factory=public_only_sockets(internet.socket)
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(FetchError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
            await session.get(f"http://news.example:{feed_server.port}/secret")
    assert internet.connected == [] and feed_server.hits("/secret") == 0


async def test_a_dns_answer_that_changes_is_checked_again_on_every_fetch(
    guarded: tuple[Fetcher, StubResolver, FakeInternet], feed_server: FeedServer
) -> None:
    fetcher, resolver, internet = guarded
    resolver.answers["rebind.example"] = [PUBLIC_V4]
    port = feed_server.url("/").split(":")[2].rstrip("/")
    url = f"http://rebind.example:{port}/feed.xml"
    await fetch(fetcher, url)
    resolver.answers["rebind.example"] = ["127.0.0.1"]
    with pytest.raises(FetchError, match="loopback"):
        await fetch(fetcher, url)
    # One resolution per fetch, and the connection went to that answer: no
    # second lookup between the check and the connection to rebind.
    assert resolver.calls == ["rebind.example", "rebind.example"]
    assert [c[0] for c in internet.connected] == [PUBLIC_V4]


async def test_https_keeps_the_host_name_for_tls_while_connecting_to_the_address(
    guarded: tuple[Fetcher, StubResolver, FakeInternet],
) -> None:
    fetcher, _, internet = guarded
    hellos: list[bytes] = []

    async def read_the_client_hello(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hellos.append(await reader.read(4096))
        writer.close()

    # A TCP listener stands for the site's port 443: it reads the TLS
    # ClientHello (where the server name travels in the clear) and hangs up,
    # so the fetch fails after the guard let the connection through.
    server = await asyncio.start_server(read_the_client_hello, "127.0.0.1", 0)
    internet.ports[443] = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(FetchError):
            await fetch(fetcher, "https://news.example/feed.xml")
    finally:
        server.close()
        await server.wait_closed()
    assert internet.connected == [(PUBLIC_V4, 443)]
    assert len(hellos) == 1 and hellos[0][:1] == b"\x16"  # a TLS handshake record
    assert b"news.example" in hellos[0] and PUBLIC_V4.encode() not in hellos[0]


async def test_non_http_schemes_are_refused(
    guarded: tuple[Fetcher, StubResolver, FakeInternet],
) -> None:
    fetcher, _, internet = guarded
    for url in ("file:///etc/passwd", "ftp://news.example/feed"):
        with pytest.raises(FetchError):
            await fetch(fetcher, url)
    assert internet.connected == []


def runtime_config(tmp_path: Path, feed_server: FeedServer, *, allow: bool = False) -> Config:
    config = loopback_config(
        tmp_path, [{"url": feed_server.url("/config.xml")}]
    )  # a config feed on loopback: the operator's, trusted
    return config.model_copy(update={"security": SecurityConfig(allow_private_addresses=allow)})


async def test_runtime_feeds_reach_public_hosts_only_while_config_feeds_keep_loopback(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    for path in ("/config.xml", "/public.xml", "/private.xml"):
        feed_server.serve_file(path, REAL_FEEDS / ARS)
    port = feed_server.url("/").split(":")[2].rstrip("/")
    resolver = StubResolver({"news.example": [PUBLIC_V4]})
    runtime = await Runtime.open(
        runtime_config(tmp_path, feed_server),
        clock=ManualClock(NOW),
        network=FakeInternet().network,
        resolver=resolver,
    )
    try:
        await runtime.storage.feeds.add_runtime_feeds(
            [(f"http://news.example:{port}/public.xml", []), (feed_server.url("/private.xml"), [])],
            NOW,
        )
        report = await runtime.poller.run_round(all_feeds=True)
        assert report is not None
        outcomes = {o.url.rsplit("/", 1)[1]: o for o in report.outcomes}
        assert outcomes["config.xml"].status == "new"
        assert outcomes["public.xml"].status == "new"
        assert outcomes["private.xml"].status == "failed"
        assert "a loopback address" in (outcomes["private.xml"].error or "")
        assert feed_server.hits("/private.xml") == 0
    finally:
        await runtime.close()


async def test_allow_private_addresses_lets_runtime_feeds_reach_loopback(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    for path in ("/config.xml", "/private.xml"):
        feed_server.serve_file(path, REAL_FEEDS / ARS)
    resolver = StubResolver({})
    runtime = await Runtime.open(
        runtime_config(tmp_path, feed_server, allow=True),
        clock=ManualClock(NOW),
        network=FakeInternet().network,
        resolver=resolver,
    )
    try:
        await runtime.storage.feeds.add_runtime_feeds([(feed_server.url("/private.xml"), [])], NOW)
        report = await runtime.poller.run_round(all_feeds=True)
        assert report is not None
        assert [o.status for o in report.outcomes] == ["new", "new"]
    finally:
        await runtime.close()


async def test_a_guarded_fetch_reports_the_host_name_it_fetched_not_the_vetted_address(
    guarded: tuple[Fetcher, StubResolver, FakeInternet], feed_server: FeedServer
) -> None:
    fetcher, _, internet = guarded
    port = feed_server.url("/").split(":")[2].rstrip("/")
    feed_server.redirect("/moved", f"http://news.example:{port}/feed.xml", status=301)
    result = await fetcher.fetch(
        f"http://news.example:{port}/moved", etag=None, last_modified=None, now=NOW, trusted=False
    )
    assert result.final_url == f"http://news.example:{port}/feed.xml"
    assert result.permanent_url == f"http://news.example:{port}/feed.xml"
    assert [c[0] for c in internet.connected] == [PUBLIC_V4, PUBLIC_V4]
