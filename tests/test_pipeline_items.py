"""Parsing only the items whose raw bytes changed, end to end: the loopback
feed server, the real fetcher, parser and storage (both backends), and a
poller that parses every body whole as the reference."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.categorize import Categorizer
from bot.clock import ManualClock
from bot.config import Config
from bot.fetch import Fetcher
from bot.parse_pool import EntryCategories, ParsePool
from bot.parsed import ParsedFeed
from bot.pipeline import Poller, RoundReport
from bot.runtime import Runtime
from tests.feed_server import FeedServer
from tests.item_edits import add_item_at_top, reorder_and_drop_last, retitle_item
from tests.postgres import PostgresServer
from tests.support import REAL_FEED_FILES, loopback_config

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RSS_TYPE = "application/rss+xml; charset=utf-8"
CHAT = 4242
_names = itertools.count(1)


def rss(*items: str, title: str = "Loopback News", built: str = "10:00") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://loopback.example/</link>\n"
        f"<lastBuildDate>Sun, 01 Mar 2026 {built}:00 GMT</lastBuildDate>\n"
        + "\n".join(items)
        + "\n</channel></rss>"
    ).encode()


def item(n: int, title: str | None = None) -> str:
    return (
        f"<item><title>{title or f'Story {n}'}</title>"
        f"<link>https://loopback.example/story/{n}</link>"
        f'<guid isPermaLink="false">story-{n}</guid>'
        f"<pubDate>Sun, 01 Mar 2026 {n % 24:02d}:00:00 GMT</pubDate>"
        f"<description>Text of story {n}.</description></item>"
    )


class RecordingParsePool(ParsePool):
    """A one-thread ParsePool that keeps every body it was given."""

    def __init__(self) -> None:
        super().__init__(workers=1, timeout=30)
        self.bodies: dict[str, list[bytes]] = {}

    async def parse_and_categorize(
        self,
        body: bytes,
        url: str,
        content_type: str | None,
        categorizer: Categorizer,
        feed_categories: Sequence[str],
    ) -> tuple[ParsedFeed, EntryCategories]:
        self.bodies.setdefault(url, []).append(body)
        return await super().parse_and_categorize(
            body, url, content_type, categorizer, feed_categories
        )


class Bot:
    """A runtime with a poller of our own, and a chat subscribed to "news"."""

    def __init__(self, runtime: Runtime, *, cut_known_items: bool, clock: ManualClock) -> None:
        self.runtime = runtime
        self.storage = runtime.storage
        self.pool = RecordingParsePool()
        config = runtime.config
        fetcher = Fetcher(runtime.http, config.polling)
        self.poller = Poller(
            config, runtime.storage, fetcher, self.pool, clock, cut_known_items=cut_known_items
        )

    async def round(self) -> RoundReport:
        report = await self.poller.run_round(all_feeds=True)
        assert report is not None
        return report

    async def articles(self) -> list[tuple[Any, ...]]:
        """Every stored article, by value (ids depend on the order in which
        concurrent feeds were stored)."""
        return sorted(
            (
                a.feed_id,
                a.url,
                a.title,
                a.summary,
                a.author,
                a.published,
                a.image_url,
                a.source,
                a.categories,
            )
            for a in await self.storage.articles.latest_articles(None, 1_000_000)
        )


OpenBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def open_bot(
    clock: ManualClock, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[OpenBot]:
    """Opens bots on the test's backend, each on a database of its own."""
    opened: list[Runtime] = []
    dropped: list[tuple[PostgresServer, str]] = []

    async def factory(config: Config, *, cut_known_items: bool = True) -> Bot:
        if database_url.startswith("postgresql://"):
            url = database_url
            if opened:  # a second bot: a second database on the same server
                server: PostgresServer = request.getfixturevalue("postgres_server")
                name = f"newsbot_items_{os.getpid()}_{next(_names)}"
                url = server.create_database(name)
                dropped.append((server, name))
            storage = config.storage.model_copy(update={"url": url})
        else:
            folder = tmp_path / f"bot{len(opened)}"
            folder.mkdir()
            storage = config.storage.model_copy(update={"path": str(folder / "newsbot.db")})
        runtime = await Runtime.open(config.model_copy(update={"storage": storage}), clock=clock)
        opened.append(runtime)
        await runtime.storage.chats.upsert_chat(CHAT, "private", None, None, NOW)
        await runtime.storage.chats.subscribe(CHAT, ["news"], NOW)
        return Bot(runtime, cut_known_items=cut_known_items, clock=clock)

    yield factory
    for runtime in opened:
        await runtime.close()
    for server, name in dropped:
        server.drop_database(name)


def news_config(tmp_path: Path, urls: list[str]) -> Config:
    return loopback_config(
        tmp_path,
        [{"url": url, "categories": ["news"]} for url in urls],
        categories=[{"id": "news", "title": "News"}],
    )


def outcomes(report: RoundReport) -> list[tuple[Any, ...]]:
    return sorted((o.url, o.status, o.new_articles, o.deliveries, o.error) for o in report.outcomes)


# -- one feed -------------------------------------------------------------------


async def test_a_feed_that_gained_one_item_is_parsed_for_that_item_only(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    assert (await bot.round()).new_articles == 2

    # The feed's build date moves with its new item, as WordPress does.
    route.body = rss(item(3), item(2), item(1), built="11:00")
    report = await bot.round()
    assert outcomes(report) == [(url, "new", 1, 1, None)]
    last = bot.pool.bodies[url][-1]
    assert b"story-3" in last and b"story-2" not in last and b"story-1" not in last
    assert b"<title>Loopback News</title>" in last  # the channel is parsed as ever
    titles = {a[2] for a in await bot.articles()}
    assert titles == {"Story 1", "Story 2", "Story 3"}
    assert await bot.storage.outbox.pending_count() == 1


async def test_a_corrected_title_is_parsed_alone_and_corrects_the_stored_article(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()

    route.body = rss(item(2), item(1, "Story 1, corrected"))
    assert outcomes(await bot.round()) == [(url, "new", 0, 0, None)]
    assert b"story-2" not in bot.pool.bodies[url][-1]
    assert {a[2] for a in await bot.articles()} == {"Story 2", "Story 1, corrected"}
    assert await bot.storage.outbox.pending_count() == 0


async def test_items_dropped_and_reordered_send_nothing_and_stay_stored(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(3), item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()
    stored = await bot.articles()

    route.body = rss(item(1), item(3))
    assert outcomes(await bot.round()) == [(url, "new", 0, 0, None)]
    assert b"<item>" not in bot.pool.bodies[url][-1]  # only the channel was parsed
    # The dropped story comes back: it is known, nothing is sent again.
    route.body = rss(item(2), item(1), item(3))
    assert outcomes(await bot.round()) == [(url, "new", 0, 0, None)]
    assert await bot.articles() == stored
    assert await bot.storage.outbox.pending_count() == 0


async def test_a_changed_channel_means_the_whole_body_is_parsed(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()

    route.body = rss(item(3), item(2), item(1), title="Loopback News (renamed)")
    assert outcomes(await bot.round()) == [(url, "new", 1, 1, None)]
    assert bot.pool.bodies[url][-1] == route.body
    (feed,) = await bot.storage.feeds.feed_health()
    assert feed.title == "Loopback News (renamed)"


async def test_a_new_item_repeating_the_key_of_a_known_one_is_decided_on_the_whole_body(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()

    # A republished story 2 with a new title above the old copy: the whole
    # body keeps the first of the two, so the title is corrected.
    route.body = rss(item(2, "Story 2, updated"), item(2), item(1))
    assert outcomes(await bot.round()) == [(url, "new", 0, 0, None)]
    assert bot.pool.bodies[url][-1] == route.body
    assert {a[2] for a in await bot.articles()} == {"Story 1", "Story 2, updated"}


async def test_a_malformed_new_item_means_the_whole_body_is_parsed(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()

    route.body = rss(item(3, "Tom & Jerry"), item(2), item(1))  # an unescaped ampersand
    assert outcomes(await bot.round()) == [(url, "new", 1, 1, None)]
    assert bot.pool.bodies[url][-1] == route.body
    assert "Tom & Jerry" in {a[2] for a in await bot.articles()}
    # Malformed bodies are not remembered item by item: parsed whole again.
    route.body = rss(item(4), item(3, "Tom & Jerry"), item(2), item(1))
    assert outcomes(await bot.round()) == [(url, "new", 1, 1, None)]
    assert bot.pool.bodies[url][-1] == route.body


async def test_the_items_of_the_last_parsed_body_are_stored_with_its_articles(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(2), item(1)), content_type=RSS_TYPE)
    url = feed_server.url("/feed.xml")
    bot = await open_bot(news_config(tmp_path, [url]))
    await bot.round()
    (feed,) = await bot.storage.feeds.feed_health()
    assert sorted((await bot.storage.feeds.known_items(feed.id)).values()) == [
        "story-1",
        "story-2",
    ]

    route.body = rss(item(3), item(1))
    await bot.round()
    assert sorted((await bot.storage.feeds.known_items(feed.id)).values()) == [
        "story-1",
        "story-3",
    ]


# -- the real corpus, against whole parses -----------------------------------------


async def test_the_real_corpus_stores_the_same_articles_as_whole_parses(
    feed_server: FeedServer, tmp_path: Path, open_bot: OpenBot
) -> None:
    """Every real feed, polled by two bots, one cutting known items out and
    one parsing every body whole: first as served, then with a story added
    at the top, then with one title corrected, then with the oldest story
    dropped and the rest reversed, then with the dropped story back. After
    each round both have stored the same articles and queued the same cards."""
    bodies = {f"/real/{path.name}": path.read_bytes() for path in REAL_FEED_FILES}
    routes = {
        path: feed_server.serve(path, body, content_type="application/xml")
        for path, body in bodies.items()
    }
    config = news_config(tmp_path, [feed_server.url(path) for path in bodies])
    cutting = await open_bot(config)
    whole = await open_bot(config, cut_known_items=False)

    served = [{path: body for path, body in bodies.items()}]
    served.append({path: add_item_at_top(body) for path, body in served[0].items()})
    served.append({path: retitle_item(body, 3) for path, body in served[1].items()})
    served.append({path: reorder_and_drop_last(body) for path, body in served[2].items()})
    # A story on top of the retitled body: the dropped one back, the order as before.
    served.append({path: add_item_at_top(body) for path, body in served[2].items()})
    for number, round_bodies in enumerate(served):
        for path, body in round_bodies.items():
            routes[path].body = body
        cut_report, whole_report = await cutting.round(), await whole.round()
        assert outcomes(cut_report) == outcomes(whole_report), f"round {number}"
        assert all(o.status != "failed" for o in cut_report.outcomes), f"round {number}"
        assert await cutting.articles() == await whole.articles(), f"round {number}"
        assert (
            await cutting.storage.outbox.delivery_counts()
            == await whole.storage.outbox.delivery_counts()
        ), f"round {number}"
        if number == 1:
            assert sum(1 for o in cut_report.outcomes if o.new_articles) >= 50

    # The edits were parsed as reduced documents for most feeds (all but the
    # malformed, the multi-byte encoded, and those repeating a key).
    reduced = [
        url
        for url, parsed in cutting.pool.bodies.items()
        if all(len(later) < len(parsed[0]) for later in parsed[1:])
    ]
    assert len(reduced) >= 45, len(reduced)
