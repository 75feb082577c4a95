"""Polling rounds end to end: a real HTTP server on loopback, the real
fetcher, parser and SQLite database, and a clock moved by hand."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.categorize import Categorizer
from bot.clock import ManualClock
from bot.config import Config
from bot.errors import StorageError
from bot.fetch import Fetcher
from bot.models import FeedHealth
from bot.parse_pool import EntryCategories, ParsePool
from bot.parsed import ParsedFeed
from bot.pipeline import FeedOutcome, Poller, RoundReport
from bot.runtime import Runtime
from tests.faults import FakeDNS, eventually
from tests.feed_server import FeedServer
from tests.support import (
    REAL_FEED_FILES,
    is_absolute_http_url,
    is_aware,
    loopback_config,
    markup_problems,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RSS_TYPE = "application/rss+xml; charset=utf-8"

OpenRuntime = Callable[..., Awaitable[Runtime]]


def rss(*items: str, title: str = "Loopback News", extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://loopback.example/</link>{extra}"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(
    n: int | str,
    title: str | None = None,
    *,
    guid: str | None = None,
    link: str | None = None,
    categories: tuple[str, ...] = (),
    when: str = "Sun, 01 Mar 2026 10:00:00 GMT",
) -> str:
    return (
        f"<item><title>{title or f'Story {n}'}</title>"
        f"<link>{link or f'https://loopback.example/story/{n}'}</link>"
        f'<guid isPermaLink="false">{guid or f"story-{n}"}</guid>'
        f"<pubDate>{when}</pubDate><description>Text of story {n}.</description>"
        + "".join(f"<category>{c}</category>" for c in categories)
        + "</item>"
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def open_runtime(clock: ManualClock, database_url: str) -> AsyncIterator[OpenRuntime]:
    """Opens a runtime on each backend in turn: the pipeline tests that take
    it run on SQLite and on PostgreSQL."""
    opened: list[Runtime] = []

    async def factory(config: Config) -> Runtime:
        if database_url.startswith("postgresql://"):
            storage = config.storage.model_copy(update={"url": database_url})
            config = config.model_copy(update={"storage": storage})
        runtime = await Runtime.open(config, clock=clock)
        opened.append(runtime)
        return runtime

    yield factory
    for runtime in opened:
        await runtime.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (set by the server thread) for up to ten seconds."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 10 s")


async def one_round(runtime: Runtime, *, all_feeds: bool = True) -> RoundReport:
    report = await runtime.poller.run_round(all_feeds=all_feeds)
    assert report is not None
    return report


async def only(runtime: Runtime, *, all_feeds: bool = True) -> FeedOutcome:
    (outcome,) = (await one_round(runtime, all_feeds=all_feeds)).outcomes
    return outcome


async def health(runtime: Runtime) -> FeedHealth:
    (feed,) = await runtime.storage.feeds.feed_health()
    return feed


def single_feed(tmp_path: Path, url: str, **options: Any) -> Config:
    categories = options.pop("categories", None)
    feed = {"url": url, **options.pop("feed", {})}
    return loopback_config(tmp_path, [feed], categories=categories, **options)


# -- the real corpus ------------------------------------------------------------


async def test_the_whole_real_corpus_ingests_in_one_round(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    sources: dict[str, bytes] = {}
    for path in REAL_FEED_FILES:
        feed_server.serve_file(f"/real/{path.name}", path, content_type="application/xml")
        sources[feed_server.url(f"/real/{path.name}")] = path.read_bytes()
    # Two worker processes: this is also the test that the process pool works
    # (every result crosses a process boundary); the other tests use a thread.
    config = loopback_config(tmp_path, [{"url": url} for url in sources], parse_workers=2)
    runtime = await open_runtime(config)

    report = await one_round(runtime)
    assert runtime.parse_pool._processes is not None

    summary = report.summary()
    assert summary["feeds"] == 58
    assert summary["failed"] == 0, [o.error for o in report.outcomes if o.error]
    assert summary["fetched"] == 58
    assert all(o.status == "new" and o.new_articles > 0 for o in report.outcomes)
    feeds = {f.id: f for f in await runtime.storage.feeds.feed_health()}
    assert all(f.error_count == 0 and f.articles > 0 for f in feeds.values())
    articles = await runtime.storage.articles.latest_articles(None, 100_000)
    assert (
        len(articles) == summary["new_articles"] == await runtime.storage.articles.article_count()
    )
    for article in articles:
        source = sources[feeds[article.feed_id].url]
        assert article.title.strip()
        assert is_absolute_http_url(article.url), article.url
        assert is_aware(article.published)
        assert article.published <= NOW
        assert not markup_problems(article.title, source), article.title
        assert not markup_problems(article.summary, source), article.summary
    by_url = {feeds[a.feed_id].url.rsplit("/", 1)[1]: a for a in articles}
    # Every post of Scripting News is its own article (anchors on a daily page).
    scripting = next(f for f in feeds.values() if "scriptingnews" in f.url)
    assert scripting.articles == 48
    assert "rss-news-japantimes-nodates-118items.rss.xml" in by_url

    again = await one_round(runtime)
    assert again.summary()["unchanged"] == 58
    assert again.new_articles == 0


async def test_entries_without_a_date_are_dated_when_first_seen(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    undated = "<item><title>Undated</title><link>https://loopback.example/u</link></item>"
    future = item(2, "From the future", when="Sat, 01 Jan 2100 00:00:00 GMT")
    feed_server.serve("/feed.xml", rss(undated, future), content_type=RSS_TYPE)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).new_articles == 2
    assert {a.published for a in await runtime.storage.articles.latest_articles(None, 10)} == {NOW}


# -- conditional GET ---------------------------------------------------------


async def test_conditional_get_sends_validators_and_304_is_not_modified(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    modified = "Sun, 01 Mar 2026 09:00:00 GMT"
    feed_server.serve("/feed.xml", rss(item(1)), etag='"v1"', last_modified=modified)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))

    first = await only(runtime)
    assert first.status == "new"
    assert "if-none-match" not in feed_server.requests("/feed.xml")[0].headers

    clock.advance(600)
    report = await one_round(runtime, all_feeds=False)
    assert [o.status for o in report.outcomes] == ["not_modified"]
    assert report.summary()["not_modified"] == 1
    sent = feed_server.requests("/feed.xml")[-1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == modified
    feed = await health(runtime)
    assert feed.error_count == 0
    assert feed.last_success_at == NOW + timedelta(seconds=600)
    assert feed.next_check_at == NOW + timedelta(seconds=1200)


async def test_last_modified_alone_is_enough_for_a_304(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    modified = "Sun, 01 Mar 2026 09:00:00 GMT"
    feed_server.serve("/feed.xml", rss(item(1)), last_modified=modified)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).status == "new"
    assert (await only(runtime)).status == "not_modified"
    assert feed_server.requests("/feed.xml")[-1].headers["if-modified-since"] == modified


async def test_a_non_ascii_etag_does_not_break_later_polls(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    # The server sends the byte 0xE9 in its ETag; it cannot be sent back as
    # an HTTP/1.1 header value, so the body hash has to do the job.
    feed_server.serve("/feed.xml", rss(item(1)), etag='"caf\xe9"', last_modified="M\xe4r 2026")
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).status == "new"
    second = await only(runtime)
    assert (second.status, second.error) == ("unchanged", None)


class CountingParsePool(ParsePool):
    """A ParsePool that remembers how often it was asked to parse."""

    def __init__(self) -> None:
        super().__init__(workers=1, timeout=30)
        self.calls = 0

    async def parse_and_categorize(
        self,
        body: bytes,
        url: str,
        content_type: str | None,
        categorizer: Categorizer,
        feed_categories: Sequence[str],
    ) -> tuple[ParsedFeed, EntryCategories]:
        self.calls += 1
        return await super().parse_and_categorize(
            body, url, content_type, categorizer, feed_categories
        )


async def test_unchanged_body_is_not_reparsed(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    route = feed_server.serve(
        "/feed.xml", rss(item(1), item(2)), etag='"same"', honour_conditional=False
    )
    config = single_feed(tmp_path, feed_server.url("/feed.xml"))
    runtime = await open_runtime(config)
    pool = CountingParsePool()
    poller = Poller(config, runtime.storage, Fetcher(runtime.http, config.polling), pool, clock)

    first = await poller.run_round(all_feeds=True)
    assert first is not None and [o.status for o in first.outcomes] == ["new"]
    assert pool.calls == 1

    second = await poller.run_round(all_feeds=True)
    assert second is not None and [o.status for o in second.outcomes] == ["unchanged"]
    assert second.summary()["unchanged"] == 1
    assert pool.calls == 1  # the identical body was recognised by its hash
    assert feed_server.requests("/feed.xml")[-1].headers["if-none-match"] == '"same"'

    route.body = rss(item(1), item(2), item(3))
    third = await poller.run_round(all_feeds=True)
    assert third is not None and [o.new_articles for o in third.outcomes] == [1]
    assert pool.calls == 2


# -- redirects ------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
async def test_permanent_redirect_updates_the_fetch_url(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, status: int
) -> None:
    feed_server.redirect("/old.xml", "/new.xml", status)
    feed_server.serve("/new.xml", rss(item(1)))
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/old.xml")))

    assert (await only(runtime)).status == "new"
    feed = await health(runtime)
    assert feed.url == feed_server.url("/old.xml")  # the identity stays
    assert feed.fetch_url == feed_server.url("/new.xml")

    assert (await only(runtime)).status == "unchanged"
    assert feed_server.hits("/old.xml") == 1
    assert feed_server.hits("/new.xml") == 2


@pytest.mark.parametrize("status", [302, 307])
async def test_temporary_redirect_keeps_the_fetch_url(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, status: int
) -> None:
    feed_server.redirect("/old.xml", "/new.xml", status)
    feed_server.serve("/new.xml", rss(item(1)))
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/old.xml")))

    assert (await only(runtime)).status == "new"
    assert (await health(runtime)).fetch_url == feed_server.url("/old.xml")
    await only(runtime)
    assert feed_server.hits("/old.xml") == 2


async def test_a_chain_with_one_temporary_hop_is_not_permanent(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.redirect("/a.xml", "/b.xml", 301)
    feed_server.redirect("/b.xml", "/c.xml", 302)
    feed_server.serve("/c.xml", rss(item(1)))
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/a.xml")))
    assert (await only(runtime)).status == "new"
    assert (await health(runtime)).fetch_url == feed_server.url("/a.xml")


@pytest.mark.parametrize(
    "location",
    ["javascript:alert(1)", "ftp://127.0.0.1/feed.xml", "http://xn--.example/feed.xml"],
    ids=["javascript", "ftp", "bad-idna"],
)
async def test_a_redirect_to_an_unusable_url_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, location: str
) -> None:
    feed_server.redirect("/feed.xml", location, 302)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert (outcome.error or "").startswith("fetch: "), outcome.error


async def test_a_redirect_loop_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.redirect("/a.xml", "/b.xml", 302)
    feed_server.redirect("/b.xml", "/a.xml", 302)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/a.xml")))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert outcome.error is not None and "redirect" in outcome.error


# -- HTTP errors, backoff and server hints ------------------------------------


async def test_410_gone_disables_the_feed(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.serve("/feed.xml", b"gone", status=410, content_type="text/plain")
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert outcome.error is not None and "410" in outcome.error
    feed = await health(runtime)
    assert feed.disabled
    assert (await one_round(runtime)).outcomes == []
    assert feed_server.hits("/feed.xml") == 1


async def test_server_errors_back_off_and_a_success_resets(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    route = feed_server.serve("/feed.xml", b"oops", status=500, content_type="text/plain")
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))

    delays = []
    for expected_errors in (1, 2, 3):
        outcome = await only(runtime, all_feeds=False)
        assert outcome.status == "failed" and outcome.error == "fetch: HTTP 500"
        feed = await health(runtime)
        assert feed.error_count == expected_errors
        assert feed.last_error == "fetch: HTTP 500"
        assert feed.next_check_at is not None
        delays.append((feed.next_check_at - clock.now()).total_seconds())
        # Not due before the backoff has passed...
        assert (await one_round(runtime, all_feeds=False)).outcomes == []
        clock.set(feed.next_check_at)
    assert delays == [600, 1200, 2400]

    route.status, route.body = 200, rss(item(1))
    assert (await only(runtime, all_feeds=False)).status == "new"
    feed = await health(runtime)
    assert feed.error_count == 0 and feed.last_error is None
    assert feed.next_check_at == clock.now() + timedelta(seconds=600)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_delays_the_next_check(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, status: int
) -> None:
    feed_server.serve("/feed.xml", b"slow down", status=status, headers={"Retry-After": "7200"})
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    outcome = await only(runtime)
    assert outcome.status == "failed" and str(status) in (outcome.error or "")
    feed = await health(runtime)
    assert feed.next_check_at is not None
    assert feed.next_check_at >= NOW + timedelta(seconds=7200)


async def test_retry_after_as_an_http_date(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.serve(
        "/feed.xml", b"", status=429, headers={"Retry-After": "Sun, 01 Mar 2026 15:00:00 GMT"}
    )
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    await only(runtime)
    next_check = (await health(runtime)).next_check_at
    assert next_check is not None and next_check >= datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


async def test_cache_control_and_ttl_stretch_the_next_check(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.serve("/cc.xml", rss(item(1)), headers={"Cache-Control": "public, max-age=3600"})
    feed_server.serve("/ttl.xml", rss(item(2), extra="<ttl>120</ttl>"))
    config = loopback_config(
        tmp_path, [{"url": feed_server.url("/cc.xml")}, {"url": feed_server.url("/ttl.xml")}]
    )
    runtime = await open_runtime(config)
    await one_round(runtime)
    by_path = {
        f.url.rsplit("/", 1)[1]: f.next_check_at for f in await runtime.storage.feeds.feed_health()
    }
    assert by_path == {"cc.xml": NOW + timedelta(hours=1), "ttl.xml": NOW + timedelta(hours=2)}


# -- slow, huge and wrong bodies ---------------------------------------------


async def test_a_timeout_fails_only_that_feed(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    # The slow route answers only when the server shuts down, after the test.
    feed_server.serve("/slow.xml", rss(item(1)), gate=threading.Event())
    feed_server.serve("/fast.xml", rss(item(2)))
    config = loopback_config(
        tmp_path,
        [{"url": feed_server.url("/slow.xml")}, {"url": feed_server.url("/fast.xml")}],
        connect_timeout=2,
        read_timeout=1,
        total_timeout=10,
    )
    runtime = await open_runtime(config)
    report = await one_round(runtime)
    by_path = {o.url.rsplit("/", 1)[1]: o for o in report.outcomes}
    assert by_path["slow.xml"].status == "failed"
    assert "timeout" in (by_path["slow.xml"].error or "").lower()
    assert by_path["fast.xml"].status == "new"
    assert report.summary()["failed"] == 1


async def test_a_dripping_server_hits_the_total_timeout(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    # Never silent long enough for the read timeout, never finished either.
    feed_server.serve("/drip.xml", rss(*(item(n) for n in range(50))), drip=0.05, chunk_size=16)
    config = single_feed(tmp_path, feed_server.url("/drip.xml"), read_timeout=5, total_timeout=0.5)
    runtime = await open_runtime(config)
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert outcome.error == "fetch: timed out after 0.5s"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_body_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, chunked: bool
) -> None:
    feed_server.serve("/big.xml", rss(*(item(n) for n in range(200))), chunked=chunked)
    runtime = await open_runtime(
        single_feed(tmp_path, feed_server.url("/big.xml"), max_body_bytes=4096)
    )
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert "4096-byte cap" in (outcome.error or "")
    assert (await health(runtime)).error_count == 1


async def test_a_gzip_bomb_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    bomb = gzip.compress(b"<rss>" + b" " * 20_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    feed_server.serve("/bomb.xml", raw_gzip=bomb)
    runtime = await open_runtime(
        single_feed(tmp_path, feed_server.url("/bomb.xml"), max_body_bytes=200_000)
    )
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert "200000-byte cap" in (outcome.error or "")


async def test_a_gzip_encoded_feed_is_decoded(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.serve("/feed.xml", rss(item(1), item(2)), gzip=True)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    outcome = await only(runtime)
    assert (outcome.status, outcome.new_articles) == ("new", 2)
    assert "gzip" in feed_server.requests("/feed.xml")[0].headers["accept-encoding"]


async def test_a_corrupt_gzip_body_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    feed_server.serve("/feed.xml", raw_gzip=gzip.compress(rss(item(1)))[:-20] + b"garbage")
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("fetch:")


async def test_an_html_page_fails_with_a_clear_reason(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    page = b"<!doctype html><html><head><title>Welcome</title></head><body>Hi</body></html>"
    feed_server.serve("/feed", page, content_type="text/html; charset=utf-8")
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed")))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert outcome.error == "parse: not an RSS, Atom or RDF feed"
    assert (await health(runtime)).last_error == "parse: not an RSS, Atom or RDF feed"


async def test_an_unreachable_server_fails_cleanly(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    # A port that was free a moment ago: nothing listens there.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runtime = await open_runtime(single_feed(tmp_path, f"http://127.0.0.1:{port}/feed.xml"))
    outcome = await only(runtime)
    assert outcome.status == "failed"
    assert (outcome.error or "").startswith("fetch: cannot connect")


async def test_only_one_round_runs_at_a_time(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    gate = threading.Event()
    feed_server.serve("/feed.xml", rss(item(1)), gate=gate)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    first = asyncio.create_task(runtime.poller.run_round(all_feeds=True))
    try:
        await wait_until(lambda: feed_server.hits("/feed.xml") == 1)
        assert runtime.poller.running
        assert await runtime.poller.run_round(all_feeds=True) is None
    finally:
        gate.set()
    report = await first
    assert report is not None and [o.status for o in report.outcomes] == ["new"]
    assert not runtime.poller.running


# -- what gets stored ---------------------------------------------------------


@pytest.mark.parametrize(
    "site_link",
    [
        "<link>https://loopback.example</link>",
        "<link>HTTPS://Loopback.example:443/</link>",
        "",
    ],
    ids=["no-slash", "not-canonical", "no-site-link"],
)
async def test_entries_without_links_are_not_merged_into_one(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, site_link: str
) -> None:
    # Items with neither link nor guid fall back to the site's URL (or the
    # feed's), which names no single story: they must not be de-duplicated.
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Notes</title>'
        + site_link
        + "<item><title>First note</title></item><item><title>Second note</title></item>"
        + "</channel></rss>"
    ).encode()
    feed_server.serve("/feed.xml", body)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).new_articles == 2


async def test_duplicate_guids_inside_one_feed_are_stored_once(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    body = rss(item(1, "First copy", guid="same"), item(2, "Second copy", guid="same"), item(3))
    feed_server.serve("/feed.xml", body)
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).new_articles == 2
    titles = {a.title for a in await runtime.storage.articles.latest_articles(None, 10)}
    assert titles == {"First copy", "Story 3"}


async def test_first_fetch_is_quiet_and_one_new_item_makes_one_card_per_chat(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    route = feed_server.serve("/feed.xml", rss(item(1), item(2), item(3)))
    config = single_feed(
        tmp_path,
        feed_server.url("/feed.xml"),
        categories=[{"id": "news", "title": "News"}, {"id": "misc", "title": "Misc"}],
        feed={"categories": ["news", "misc"]},
    )
    runtime = await open_runtime(config)
    for chat_id in (101, -200):
        await runtime.storage.chats.upsert_chat(chat_id, "private", None, None, NOW)
        await runtime.storage.chats.subscribe(chat_id, ["news", "misc"], NOW)
    await runtime.storage.chats.upsert_chat(
        300, "private", None, None, NOW
    )  # subscribed to nothing

    first = await only(runtime)
    assert (first.new_articles, first.deliveries) == (3, 0)
    assert await runtime.storage.outbox.delivery_counts() == {}

    clock.advance(600)
    route.body = rss(item(4, "Breaking"), item(1), item(2), item(3))
    second = await only(runtime)
    assert (second.new_articles, second.deliveries) == (1, 2)
    pending = await runtime.storage.outbox.claim_deliveries(
        clock.now(), 10, worker="test", lease_seconds=60
    )
    assert sorted((p.chat_id, p.article.title) for p in pending) == [
        (-200, "Breaking"),
        (101, "Breaking"),
    ]


async def test_category_rules_place_articles(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime
) -> None:
    body = rss(
        item(1, "New phone reviewed", categories=("Gadgets",)),
        item(2, "NASA picks a landing site"),
        item(3, "Gardening tips"),
        item(4, "Sunday roundup", categories=("consumer-tech", "Space")),
    )
    feed_server.serve("/feed.xml", body)
    config = single_feed(
        tmp_path,
        feed_server.url("/feed.xml"),
        categories=[
            {"id": "tech", "title": "Technology", "aliases": ["Gadgets", "Consumer Tech"]},
            {"id": "space", "title": "Space", "keywords": ["NASA"]},
        ],
    )
    runtime = await open_runtime(config)
    await only(runtime)
    latest = runtime.storage.articles.latest_articles
    assert {a.title for a in await latest("tech", 10)} == {"New phone reviewed", "Sunday roundup"}
    assert {a.title for a in await latest("space", 10)} == {
        "NASA picks a landing site",
        "Sunday roundup",
    }
    by_title = {a.title: a.categories for a in await latest(None, 10)}
    assert by_title["Gardening tips"] == ()
    assert by_title["Sunday roundup"] == ("tech", "space")


async def test_guids_that_change_every_poll_do_not_make_new_articles(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    def body(poll: int) -> bytes:
        return rss(*(item(n, guid=f"poll{poll}-{n}") for n in range(5)))

    route = feed_server.serve("/feed.xml", body(1))
    runtime = await open_runtime(single_feed(tmp_path, feed_server.url("/feed.xml")))
    assert (await only(runtime)).new_articles == 5
    for poll in (2, 3):
        clock.advance(600)
        route.body = body(poll)
        outcome = await only(runtime)
        assert (outcome.status, outcome.new_articles) == ("new", 0)
    assert await runtime.storage.articles.article_count() == 5


# -- slots: a slow host keeps only its own feeds waiting ------------------------


async def test_feeds_on_a_slow_host_do_not_keep_other_hosts_waiting(
    feed_server: FeedServer, tmp_path: Path, clock: ManualClock
) -> None:
    # 40 feeds on one host that does not answer until the test says so, 10
    # on other hosts, 4 round slots, 2 fetches per host: the slow host holds
    # two slots, and the other hosts' feeds all finish while it still hangs.
    slow_host = FakeDNS({"slow.example": feed_server.port})
    opened = threading.Event()
    slow = [f"http://slow.example/s{n}.xml" for n in range(40)]
    fast = [f"http://fast{n}.example/f{n}.xml" for n in range(10)]
    for n in range(40):
        feed_server.serve(f"/s{n}.xml", rss(item(f"s{n}")), gate=opened)
    for n in range(10):
        feed_server.serve(f"/f{n}.xml", rss(item(f"f{n}")))
        slow_host.hosts[f"fast{n}.example"] = feed_server.port
    config = loopback_config(
        tmp_path,
        [{"url": url} for url in slow + fast],  # the slow host's feeds come first
        concurrency=4,
        per_host_concurrency=2,
        # Only the gate ends the slow host's wait, whatever the machine's speed.
        read_timeout=600,
        total_timeout=600,
    )
    runtime = await Runtime.open(config, clock=clock, network=slow_host.network)
    try:
        polling = asyncio.create_task(runtime.poller.run_round(all_feeds=True))

        async def fast_feeds_stored() -> bool:
            health = {f.url: f for f in await runtime.storage.feeds.feed_health()}
            return all(health[url].articles == 1 for url in fast)

        try:
            await eventually(fast_feeds_stored, what="the other hosts' feeds stored")
            # Meanwhile the slow host never had more than its two fetches.
            assert len([r for r in feed_server.requests() if r.path.startswith("/s")]) == 2
        finally:
            opened.set()
        async with asyncio.timeout(60):  # a hang guard
            report = await polling
        assert report is not None
        assert [o.status for o in report.outcomes] == ["new"] * 50
    finally:
        opened.set()
        await runtime.close()


# -- the outcomes of unchanged feeds, written in batches -------------------------


def unchanged_feeds(feed_server: FeedServer, count: int) -> list[str]:
    """``count`` feeds that answer a conditional GET with 304."""
    modified = "Sun, 01 Mar 2026 09:00:00 GMT"
    for n in range(count):
        feed_server.serve(f"/u{n}.xml", rss(item(n)), etag=f'"u{n}"', last_modified=modified)
    return [feed_server.url(f"/u{n}.xml") for n in range(count)]


def batch_poller(runtime: Runtime, clock: ManualClock, batch: int, delay: float) -> Poller:
    return Poller(
        runtime.config,
        runtime.storage,
        runtime.fetcher,
        runtime.parse_pool,
        clock,
        unchanged_batch=batch,
        unchanged_delay=delay,
    )


async def test_a_round_of_unchanged_feeds_stores_each_feed_as_if_written_alone(
    feed_server: FeedServer,
    tmp_path: Path,
    open_runtime: OpenRuntime,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = unchanged_feeds(feed_server, 11)
    runtime = await open_runtime(loopback_config(tmp_path, [{"url": url} for url in urls]))
    # Never by the timer: batches of 4 by size, the last 3 when no feed is left.
    poller = batch_poller(runtime, clock, batch=4, delay=3600)
    first = await poller.run_round(all_feeds=True)
    assert first is not None and {o.status for o in first.outcomes} == {"new"}
    written: list[int] = []
    record = runtime.storage.feeds.record_unchanged_fetches

    async def counted(fetches: Sequence[Any]) -> None:
        written.append(len(fetches))
        await record(fetches)

    monkeypatch.setattr(runtime.storage.feeds, "record_unchanged_fetches", counted)

    clock.advance(600)
    report = await poller.run_round(all_feeds=False)
    assert report is not None
    assert [o.status for o in report.outcomes] == ["not_modified"] * 11
    assert sorted(written) == [3, 4, 4]  # three transactions for eleven feeds
    for feed in await runtime.storage.feeds.feed_health():
        assert (feed.error_count, feed.last_error) == (0, None)
        assert feed.last_checked_at == NOW + timedelta(seconds=600)
        assert feed.last_success_at == NOW + timedelta(seconds=600)
        assert feed.next_check_at == NOW + timedelta(seconds=1200)
    # Every claim was given back with its outcome: another poller may take them all.
    later = NOW + timedelta(seconds=1200)
    assert len(await runtime.storage.feeds.claim_due_feeds(later, "other", 60)) == 11
    await runtime.storage.feeds.release_feeds(
        [f.id for f in await runtime.storage.feeds.feed_health()], "other"
    )
    # The validators were kept: the next round is all 304s again.
    clock.advance(600)
    again = await poller.run_round(all_feeds=False)
    assert again is not None and [o.status for o in again.outcomes] == ["not_modified"] * 11
    assert feed_server.requests("/u0.xml")[-1].headers["if-none-match"] == '"u0"'


async def test_a_crash_mid_round_loses_only_the_unwritten_batch_and_refetches_only_its_feeds(
    feed_server: FeedServer,
    tmp_path: Path,
    open_runtime: OpenRuntime,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = [f"/u{n}.xml" for n in range(9)]
    config = loopback_config(tmp_path, [{"url": url} for url in unchanged_feeds(feed_server, 9)])
    runtime = await open_runtime(config)
    poller = batch_poller(runtime, clock, batch=3, delay=3600)
    assert (await poller.run_round(all_feeds=True)) is not None
    # The second batch's write never ends: the process dies before it commits.
    record = runtime.storage.feeds.record_unchanged_fetches
    lost: list[int] = []
    writes: list[asyncio.Task[Any]] = []

    async def dies_on_the_second(fetches: Sequence[Any]) -> None:
        writes.append(asyncio.current_task())  # type: ignore[arg-type]
        if len(writes) == 2:
            lost.extend(f.feed_id for f in fetches)
            await asyncio.Event().wait()
        await record(fetches)

    monkeypatch.setattr(runtime.storage.feeds, "record_unchanged_fetches", dies_on_the_second)
    clock.advance(600)
    dying = asyncio.create_task(poller.run_round(all_feeds=False))
    try:
        await eventually(lambda: len(writes) == 3 and writes[2].done(), what="three batches")
        assert len(lost) == 3
        # What the database holds now is all a restarted process finds. The
        # lost feeds are still claimed by the dead poller: nobody fetches them...
        restarted = await open_runtime(config)
        fetched_before = len(feed_server.requests())
        report = await one_round(restarted, all_feeds=False)
        assert report.outcomes == []
        # ...until the claims' lease runs out: then only they are fetched again.
        clock.advance(poller._claim_lease + 1)
        report = await one_round(restarted, all_feeds=False)
        assert sorted(o.feed_id for o in report.outcomes) == sorted(lost)
        assert [o.status for o in report.outcomes] == ["not_modified"] * 3
        refetched = [r.path for r in feed_server.requests()[fetched_before:]]
        ids = {f.url: f.id for f in await restarted.storage.feeds.feed_health()}
        assert sorted(refetched) == sorted(p for p in paths if ids[feed_server.url(p)] in lost)
        for feed in await restarted.storage.feeds.feed_health():
            assert feed.error_count == 0
            assert feed.next_check_at is not None and feed.next_check_at > clock.now()
    finally:
        writes[1].cancel()
        await asyncio.wait([dying])


async def test_a_batch_that_cannot_be_written_fails_only_its_own_feeds(
    feed_server: FeedServer,
    tmp_path: Path,
    open_runtime: OpenRuntime,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = await open_runtime(
        loopback_config(tmp_path, [{"url": url} for url in unchanged_feeds(feed_server, 6)])
    )
    poller = batch_poller(runtime, clock, batch=3, delay=3600)
    assert (await poller.run_round(all_feeds=True)) is not None
    record = runtime.storage.feeds.record_unchanged_fetches
    refused: list[int] = []

    async def refuses_the_first(fetches: Sequence[Any]) -> None:
        if not refused:
            refused.extend(f.feed_id for f in fetches)
            raise StorageError("storage: disk I/O error")
        await record(fetches)

    monkeypatch.setattr(runtime.storage.feeds, "record_unchanged_fetches", refuses_the_first)
    clock.advance(600)
    report = await poller.run_round(all_feeds=False)
    assert report is not None
    by_feed = {o.feed_id: o for o in report.outcomes}
    assert len(by_feed) == 6 and len(refused) == 3
    for feed_id, outcome in by_feed.items():
        if feed_id in refused:
            assert (outcome.status, outcome.error) == (
                "failed",
                "internal: storage: disk I/O error",
            )
        else:
            assert (outcome.status, outcome.error) == ("not_modified", None)
    # Recorded as a failure each, like any storage error in a feed's outcome.
    health = {f.id: f for f in await runtime.storage.feeds.feed_health()}
    assert {i for i, f in health.items() if f.error_count == 1} == set(refused)


async def test_an_unchanged_outcome_is_written_while_slow_feeds_are_still_fetched(
    feed_server: FeedServer, tmp_path: Path, open_runtime: OpenRuntime, clock: ManualClock
) -> None:
    quick = unchanged_feeds(feed_server, 2)
    opened = threading.Event()
    feed_server.serve("/slow.xml", rss(item("slow")), etag='"slow"')
    urls = [*quick, feed_server.url("/slow.xml")]
    runtime = await open_runtime(
        loopback_config(tmp_path, [{"url": url} for url in urls], read_timeout=600)
    )
    # A batch far larger than the round: only the timer writes it early.
    poller = batch_poller(runtime, clock, batch=100, delay=0.05)
    assert (await poller.run_round(all_feeds=True)) is not None
    feed_server.routes["/slow.xml"].gate = opened
    clock.advance(600)
    polling = asyncio.create_task(poller.run_round(all_feeds=False))

    async def quick_ones_written() -> bool:
        health = {f.url: f for f in await runtime.storage.feeds.feed_health()}
        return all(health[url].last_checked_at == clock.now() for url in quick)

    try:
        await eventually(quick_ones_written, what="the quick feeds' outcomes written")
        assert not polling.done()  # the slow feed still hangs
    finally:
        opened.set()
    report = await polling
    assert report is not None and len(report.outcomes) == 3
