"""The HTTP client under the fetch stage: connections kept alive for the
operator's feeds, none kept for runtime feeds (each fetch is checked anew)."""

from __future__ import annotations

from bot.config import PollingConfig
from bot.fetch import Fetcher, make_client, make_public_only_client
from tests.feed_server import FeedServer
from tests.test_netguard import NOW, PUBLIC_V4, FakeInternet, StubResolver
from tests.test_pipeline import item, rss


async def test_the_operators_feeds_on_one_host_share_a_kept_alive_connection(
    feed_server: FeedServer,
) -> None:
    for name in ("a", "b", "c"):
        feed_server.serve(f"/{name}.xml", rss(item(name)), etag=f'"{name}"')
    internet = FakeInternet()
    config = PollingConfig()
    client = make_client(config, internet.network, environment_proxies=False)
    fetcher = Fetcher(client, config)
    try:
        bodies = [
            (
                await fetcher.fetch(
                    feed_server.url(f"/{n}.xml"), etag=None, last_modified=None, now=NOW
                )
            ).body
            for n in ("a", "b", "c")
        ]
        again = await fetcher.fetch(
            feed_server.url("/a.xml"), etag='"a"', last_modified=None, now=NOW
        )
    finally:
        await client.aclose()
    assert bodies == [rss(item(n)) for n in ("a", "b", "c")] and again.not_modified
    assert internet.connected == [("127.0.0.1", feed_server.port)]


async def test_runtime_feeds_connect_anew_for_every_fetch(feed_server: FeedServer) -> None:
    feed_server.serve("/a.xml", rss(item("a")))
    internet = FakeInternet()
    resolver = StubResolver({"news.example": [PUBLIC_V4]})
    config = PollingConfig()
    client = make_public_only_client(config, resolver, internet.network)
    fetcher = Fetcher(client, config, client)
    url = f"http://news.example:{feed_server.port}/a.xml"
    try:
        for _ in range(2):
            await fetcher.fetch(url, etag=None, last_modified=None, now=NOW, trusted=False)
    finally:
        await client.aclose()
    assert internet.connected == [(PUBLIC_V4, feed_server.port)] * 2
    assert resolver.calls == ["news.example"] * 2
