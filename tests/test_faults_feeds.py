"""Feeds that misbehave on purpose, polled by the real Runtime and Poller.

Every fault is served next to a healthy feed in the same round. For each one:
the round ends (bounded by the configured timeouts), the healthy feed is
unaffected, the feed's health row names the reason, and no story reaches a
chat twice, neither while the feed is broken nor after it heals.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import Config
from bot.models import FeedHealth
from bot.parse_pool import Parser
from bot.pipeline import FeedOutcome, RoundReport
from bot.render import render_card
from bot.runtime import Runtime
from bot.storage import Storage
from tests import held_parser
from tests.faults import FakeDNS, eventually, query, stories_sent_twice
from tests.feed_server import FeedServer
from tests.support import loopback_config
from tests.telegram_html import check_telegram_html
from tests.test_pipeline import item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHAT = 777
UNRESOLVABLE = "feeds.unresolvable.example"
MAX_BODY = 1_000_000
TOTAL_TIMEOUT = 2.0
# Short timeouts keep the slow faults quick; the read timeout is longer than
# the total one, so only the total timeout can stop a drip.
TIMEOUTS: dict[str, Any] = {
    "connect_timeout": 1,
    "read_timeout": 2.5,
    "total_timeout": TOTAL_TIMEOUT,
    "max_body_bytes": MAX_BODY,
    "per_host_concurrency": 8,
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@dataclass
class Bench:
    """A runtime polling ``/bad.xml`` (the fault) and ``/good.xml`` (healthy),
    both in category "news", with chat ``CHAT`` subscribed."""

    server: FeedServer
    runtime: Runtime
    clock: ManualClock
    dns: FakeDNS
    bad_url: str
    good_items: list[str] = field(default_factory=lambda: [item("g1")])

    @property
    def storage(self) -> Storage:
        return self.runtime.storage

    @property
    def config(self) -> Config:
        return self.runtime.config

    async def round(self) -> dict[str, FeedOutcome]:
        """One round over every feed, as the next tick would run it."""
        self.clock.advance(3600)
        # A hang guard: each fetch is bounded by the total timeout, and the
        # two feeds run concurrently.
        async with asyncio.timeout(TOTAL_TIMEOUT * 4 + 30):
            report: RoundReport | None = await self.runtime.poller.run_round(all_feeds=True)
        assert report is not None
        return {("bad" if o.url == self.bad_url else "good"): o for o in report.outcomes}

    def good_gains_a_story(self, name: str) -> None:
        self.good_items.insert(0, item(name))
        self.server.serve("/good.xml", rss(*self.good_items))

    async def health(self, which: str) -> FeedHealth:
        url = self.bad_url if which == "bad" else self.server.url("/good.xml")
        (feed,) = [f for f in await self.storage.feeds.feed_health() if f.url == url]
        return feed

    def sent_twice(self) -> list[tuple[Any, ...]]:
        return stories_sent_twice(self.config.storage.path)


@pytest.fixture
async def bench_factory(
    feed_server: FeedServer, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Runtime] = []

    async def make(
        bad_url: str | None = None, parser: Parser | None = None, **polling: Any
    ) -> Bench:
        bad_url = bad_url or feed_server.url("/bad.xml")
        feed_server.serve("/good.xml", rss(item("g1")))
        config = loopback_config(
            tmp_path,
            [
                {"url": bad_url, "categories": ["news"]},
                {"url": feed_server.url("/good.xml"), "categories": ["news"]},
            ],
            categories=[{"id": "news", "title": "News"}],
            **{**TIMEOUTS, **polling},
        )
        dns = FakeDNS({UNRESOLVABLE: None})
        runtime = await Runtime.open(config, clock=clock, network=dns.network, parser=parser)
        opened.append(runtime)
        await runtime.storage.chats.upsert_chat(CHAT, "private", None, None, NOW)
        await runtime.storage.chats.subscribe(CHAT, ["news"], NOW)
        return Bench(feed_server, runtime, clock, dns, bad_url)

    yield make
    for runtime in opened:
        await runtime.close()


# -- faults that make a fetch or a parse fail -----------------------------------


def _many_items(count: int) -> bytes:
    return rss(*(item(n) for n in range(count)))


@dataclass(frozen=True)
class Fault:
    name: str
    serve: Callable[[FeedServer], object]
    error: str  # part of the feed's last_error
    unresolvable: bool = False  # the feed's host does not resolve


def _answer(status: int, **options: Any) -> Callable[[FeedServer], object]:
    def serve(server: FeedServer) -> object:
        return server.serve("/bad.xml", b"no", status=status, content_type="text/plain", **options)

    return serve


def _bomb() -> bytes:
    bomb = gzip.compress(b"<rss>" + b" " * 60_000_000, compresslevel=9)
    assert len(bomb) < 200_000
    return bomb


FAULTS = [
    Fault(
        "slow-drip",
        # Bytes every second: never idle for the read timeout, never done.
        lambda s: s.serve("/bad.xml", _many_items(200), drip=1.0, chunk_size=32),
        f"fetch: timed out after {TOTAL_TIMEOUT:g}s",
    ),
    Fault(
        "no-answer",
        lambda s: s.serve("/bad.xml", _many_items(3), delay=60),
        f"fetch: timed out after {TOTAL_TIMEOUT:g}s",
    ),
    Fault(
        "reset-mid-body",
        lambda s: s.serve("/bad.xml", _many_items(100), reset_after=3000, chunk_size=1000),
        "fetch: ",
    ),
    Fault(
        "reset-mid-chunked-body",
        lambda s: s.serve(
            "/bad.xml", _many_items(100), reset_after=3000, chunk_size=1000, chunked=True
        ),
        "fetch: ",
    ),
    Fault(
        "endless-body",
        lambda s: s.serve("/bad.xml", _many_items(50), endless=True),
        f"exceeds the {MAX_BODY}-byte cap",
    ),
    Fault(
        "gzip-bomb",
        lambda s: s.serve("/bad.xml", raw_gzip=_bomb()),
        f"exceeds the {MAX_BODY}-byte cap",
    ),
    Fault(
        "huge-body",
        lambda s: s.serve("/bad.xml", b"<rss>" + b"x" * 11_000_000),
        f"exceeds the {MAX_BODY}-byte cap",
    ),
    Fault(
        "huge-chunked-body",
        lambda s: s.serve("/bad.xml", b"<rss>" + b"x" * 11_000_000, chunked=True),
        f"exceeds the {MAX_BODY}-byte cap",
    ),
    Fault(
        "corrupt-gzip",
        lambda s: s.serve("/bad.xml", raw_gzip=gzip.compress(_many_items(5))[:-30] + b"junk"),
        "fetch: ",
    ),
    Fault(
        "unknown-content-encoding",
        lambda s: s.serve("/bad.xml", _many_items(3), headers={"Content-Encoding": "br"}),
        "unsupported content-encoding 'br'",
    ),
    Fault(
        "html-page",
        lambda s: s.serve(
            "/bad.xml",
            b"<!doctype html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
            content_type="text/html; charset=utf-8",
        ),
        "parse: not an RSS, Atom or RDF feed",
    ),
    Fault("empty-200", lambda s: s.serve("/bad.xml", b""), "parse: empty body"),
    Fault(
        "binary-garbage",
        lambda s: s.serve(
            "/bad.xml", random.Random(7).randbytes(50_000), content_type="application/xml"
        ),
        "parse: ",
    ),
    Fault(
        "redirect-loop",
        lambda s: (s.redirect("/bad.xml", "/bad2.xml", 302), s.redirect("/bad2.xml", "/bad.xml")),
        "redirect",
    ),
    Fault(
        "redirect-to-javascript",
        lambda s: s.redirect("/bad.xml", "javascript:alert(document.cookie)", 302),
        "fetch: ",
    ),
    Fault(
        "redirect-to-ftp",
        lambda s: s.redirect("/bad.xml", "ftp://127.0.0.1/feed.xml", 301),
        "fetch: unsupported URL scheme",
    ),
    *(
        Fault(f"http-{status}", _answer(status), f"fetch: HTTP {status}")
        for status in (401, 403, 404, 500)
    ),
    Fault(
        "http-410",
        lambda s: s.serve("/bad.xml", b"gone", status=410, content_type="text/plain"),
        "fetch: HTTP 410 Gone",
    ),
    *(
        Fault(
            f"http-{status}-retry-after",
            _answer(status, headers={"Retry-After": "7200"}),
            f"fetch: HTTP {status}",
        )
        for status in (429, 503)
    ),
    Fault("dns-failure", lambda s: None, "Name or service not known", unresolvable=True),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_a_broken_feed_fails_alone_and_heals_without_a_flood(
    bench_factory: Callable[..., Any], feed_server: FeedServer, fault: Fault
) -> None:
    bad_url = f"http://{UNRESOLVABLE}/bad.xml" if fault.unresolvable else None
    bench: Bench = await bench_factory(bad_url)
    fault.serve(feed_server)

    # First round: the fault fails, the healthy feed's first fetch is stored
    # quietly (no cards for what a feed already had).
    first = await bench.round()
    assert first["bad"].status == "failed"
    assert first["good"].status == "new" and first["good"].new_articles == 1
    bad = await bench.health("bad")
    assert bad.error_count == 1
    assert fault.error in (bad.last_error or ""), bad.last_error
    assert (await bench.health("good")).error_count == 0
    if fault.name.endswith("retry-after"):
        assert bad.next_check_at is not None
        assert bad.next_check_at >= bench.clock.now() + timedelta(seconds=7200)

    # Second round: still broken; the healthy feed's new story makes a card.
    bench.good_gains_a_story("g2")
    second = await bench.round()
    assert (second["good"].status, second["good"].deliveries) == ("new", 1)
    bad = await bench.health("bad")
    if fault.name == "http-410":
        # Gone for good: disabled, not polled again.
        assert "bad" not in second and bad.disabled and bad.error_count == 1
        assert feed_server.hits("/bad.xml") == 1
    else:
        assert second["bad"].status == "failed"
        assert bad.error_count == 2 and fault.error in (bad.last_error or "")

        # The feed heals: what it lists then is stored quietly, like any first
        # fetch, and only a story that appears later becomes a card.
        if fault.unresolvable:
            bench.dns.hosts[UNRESOLVABLE] = feed_server.port
        feed_server.serve("/bad.xml", rss(item("b1"), item("b2")))
        healed = await bench.round()
        assert (healed["bad"].status, healed["bad"].new_articles) == ("new", 2)
        assert healed["bad"].deliveries == 0
        bad = await bench.health("bad")
        assert (bad.error_count, bad.last_error) == (0, None)
        feed_server.serve("/bad.xml", rss(item("b3"), item("b1"), item("b2")))
        assert (await bench.round())["bad"].deliveries == 1

    # Nothing changed: nothing new, nothing queued twice.
    last = await bench.round()
    assert all(o.deliveries == 0 for o in last.values())
    expected = 1 if fault.name == "http-410" else 2
    assert await bench.storage.outbox.delivery_counts() == {"pending": expected}
    assert bench.sent_twice() == []


async def test_every_fault_at_once_in_one_round(
    bench_factory: Callable[..., Any], feed_server: FeedServer, tmp_path: Path, clock: ManualClock
) -> None:
    # All the faults above, each on its own path, plus healthy feeds, polled
    # together: the round ends and every healthy feed is read.
    feeds = []
    for index, fault in enumerate(FAULTS):
        if fault.unresolvable:
            feeds.append({"url": f"http://{UNRESOLVABLE}/f{index}.xml"})
            continue
        fault.serve(feed_server)
        feed_server.routes[f"/f{index}.xml"] = feed_server.routes.pop("/bad.xml")
        if fault.name == "redirect-loop":
            feed_server.redirect("/bad2.xml", f"/f{index}.xml")
        feeds.append({"url": feed_server.url(f"/f{index}.xml")})
    for index in range(5):
        feed_server.serve(f"/ok{index}.xml", rss(item(f"ok{index}")))
        feeds.append({"url": feed_server.url(f"/ok{index}.xml")})
    config = loopback_config(tmp_path, feeds, **{**TIMEOUTS, "concurrency": 64})
    runtime = await Runtime.open(config, clock=clock, network=FakeDNS({UNRESOLVABLE: None}).network)
    try:
        async with asyncio.timeout(TOTAL_TIMEOUT * 4 + 30):
            report = await runtime.poller.run_round(all_feeds=True)
        assert report is not None
        by_url = {o.url: o for o in report.outcomes}
        for index in range(5):
            assert by_url[feed_server.url(f"/ok{index}.xml")].status == "new"
        assert report.count("failed") == len(FAULTS)
        for feed in await runtime.storage.feeds.feed_health():
            assert (feed.error_count == 1) == ("/ok" not in feed.url), feed
            assert (feed.last_error is None) == ("/ok" in feed.url), feed
    finally:
        await runtime.close()


# -- memory: caps hold while the bytes pour in ----------------------------------

MEMORY_CASES = [f for f in FAULTS if f.name in ("gzip-bomb", "huge-chunked-body", "endless-body")]


@pytest.mark.parametrize("fault", MEMORY_CASES, ids=[f.name for f in MEMORY_CASES])
async def test_oversized_bodies_never_take_much_more_than_the_cap(
    feed_server: FeedServer, tmp_path: Path, clock: ManualClock, fault: Fault
) -> None:
    fault.serve(feed_server)
    config = loopback_config(
        tmp_path, [{"url": feed_server.url("/bad.xml")}], **TIMEOUTS, parse_workers=1
    )
    runtime = await Runtime.open(config, clock=clock)
    try:
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            report = await runtime.poller.run_round(all_feeds=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await runtime.close()
    assert report is not None and report.outcomes[0].status == "failed"
    growth = peak - before
    print(f"{fault.name}: peak growth {growth / 1e6:.2f} MB for a {MAX_BODY / 1e6:g} MB cap")
    assert growth < 3 * MAX_BODY


# -- odd but readable feeds -------------------------------------------------------


def _declared(body: bytes, encoding: str) -> bytes:
    return body.replace(b'encoding="utf-8"', f'encoding="{encoding}"'.encode())


@dataclass(frozen=True)
class Odd:
    name: str
    body: Callable[[list[str]], bytes]  # items -> the body as served
    content_type: str | None = "application/rss+xml; charset=utf-8"
    title: str | None = None  # a stored title must contain this
    readable: bool = True  # False: it fails, with a reason


def _cyrillic(items: list[str]) -> bytes:
    return rss(*items, title="Новости").decode().encode("cp1251")


ODD = [
    Odd("served-as-html", lambda i: rss(*i), "text/html; charset=utf-8"),
    Odd("served-as-octet-stream", lambda i: rss(*i), "application/octet-stream"),
    Odd("served-as-text-plain", lambda i: rss(*i), "text/plain"),
    Odd("no-content-type", lambda i: rss(*i), None),
    Odd(
        "invalid-utf8",
        lambda i: rss(*i).replace(b"Story ", b"Story \xff\xfe\xc3("),
        title="Story",
    ),
    Odd("cp1251-declared-utf8", _cyrillic, "application/rss+xml; charset=utf-8"),
    Odd("cp1251-undeclared", lambda i: _declared(_cyrillic(i), "windows-1251"), "text/xml"),
    Odd(
        "utf8-declared-latin1",
        lambda i: _declared(rss(*i, title="Café ☕"), "iso-8859-1"),
        "text/xml; charset=iso-8859-1",
    ),
    Odd("unknown-charset", lambda i: _declared(rss(*i), "x-klingon"), "text/xml; charset=klingon"),
    Odd(
        "utf16-declared-utf8",
        lambda i: (
            rss(*i).decode().replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
        ),
        "application/xml; charset=utf-8",
        # The byte order mark should win over the header (RFC 7303), but
        # feedparser trusts the header: a failure, with a reason, for now.
        readable=False,
    ),
    Odd("nul-bytes", lambda i: rss(*i).replace(b"Text of", b"Text\x00of"), title="Story"),
]


@pytest.mark.parametrize("odd", ODD, ids=[o.name for o in ODD])
async def test_an_odd_but_readable_feed_is_read_once(
    bench_factory: Callable[..., Any], feed_server: FeedServer, odd: Odd
) -> None:
    bench: Bench = await bench_factory()
    items = [item("b1"), item("b2")]
    feed_server.serve("/bad.xml", odd.body(items), content_type=odd.content_type)
    first = await bench.round()
    assert first["good"].status == "new"
    outcome = first["bad"]
    if not odd.readable:
        assert outcome.status == "failed"
        assert ((await bench.health("bad")).last_error or "").startswith("parse: ")
        return
    assert (outcome.status, outcome.new_articles, outcome.deliveries) == ("new", 2, 0)

    items.insert(0, item("b3"))
    feed_server.serve("/bad.xml", odd.body(items), content_type=odd.content_type)
    second = await bench.round()
    assert (second["bad"].new_articles, second["bad"].deliveries) == (1, 1)
    assert (await bench.round())["bad"].deliveries == 0
    assert bench.sent_twice() == []
    # Whatever the bytes were, what is stored is text a card can carry.
    for article in await bench.storage.articles.latest_articles(None, 50):
        article.title.encode("utf-8")  # no lone surrogates
        if odd.title:
            assert odd.title in article.title
        card = render_card(article, {"news": "News"})
        check_telegram_html(card.html)


async def test_guids_that_change_every_poll_fall_back_to_the_link(
    bench_factory: Callable[..., Any], feed_server: FeedServer
) -> None:
    bench: Bench = await bench_factory()

    def body(poll: int, *numbers: int) -> bytes:
        return rss(*(item(n, guid=f"poll{poll}-{n}") for n in numbers))

    feed_server.serve("/bad.xml", body(1, 1, 2, 3))
    await bench.round()
    for poll in range(2, 5):
        feed_server.serve("/bad.xml", body(poll, 1, 2, 3))
        assert (await bench.round())["bad"].deliveries == 0
    feed_server.serve("/bad.xml", body(9, 4, 1, 2, 3))  # one real new story
    assert (await bench.round())["bad"].deliveries == 1
    feed_server.serve("/bad.xml", body(10, 4, 1, 2, 3))
    assert (await bench.round())["bad"].deliveries == 0
    assert await bench.storage.outbox.delivery_counts() == {"pending": 1}
    assert bench.sent_twice() == []


async def test_a_feed_that_redates_old_items_sends_nothing_again(
    bench_factory: Callable[..., Any], feed_server: FeedServer
) -> None:
    bench: Bench = await bench_factory()

    def body(day: int) -> bytes:
        when = f"Sun, {day:02d} Mar 2026 10:00:00 GMT"
        return rss(*(item(n, when=when) for n in range(5)))

    feed_server.serve("/bad.xml", body(1))
    await bench.round()
    for day in (2, 3, 4):
        feed_server.serve("/bad.xml", body(day))
        outcome = (await bench.round())["bad"]
        assert (outcome.status, outcome.new_articles, outcome.deliveries) == ("new", 0, 0)
    assert await bench.storage.outbox.delivery_counts() == {}


@pytest.mark.slow
async def test_a_feed_with_5000_items_is_stored_and_cards_are_capped(
    bench_factory: Callable[..., Any], feed_server: FeedServer
) -> None:
    bench: Bench = await bench_factory(max_body_bytes=5_000_000)
    feed_server.serve("/bad.xml", rss(*(item(n) for n in range(5000))))
    first = await bench.round()
    assert (first["bad"].new_articles, first["bad"].deliveries) == (5000, 0)
    # 5000 more "new" items at once: all stored, but only the newest
    # max_new_per_feed become cards, so a chat is not flooded.
    feed_server.serve("/bad.xml", rss(*(item(n) for n in range(5000, 10000))))
    bench.good_gains_a_story("g2")
    second = await bench.round()
    assert second["bad"].new_articles == 5000
    limit = bench.config.delivery.max_new_per_feed
    assert second["bad"].deliveries == limit
    assert second["good"].deliveries == 1
    assert (await bench.round())["bad"].status == "unchanged"
    assert await bench.storage.outbox.delivery_counts() == {"pending": limit + 1}
    assert await bench.storage.articles.article_count() == 10_000 + 2


async def test_enormous_titles_are_cut_and_still_make_a_valid_card(
    bench_factory: Callable[..., Any], feed_server: FeedServer
) -> None:
    bench: Bench = await bench_factory()
    huge = "Giant " * 20_000  # 120k characters
    feed_server.serve("/bad.xml", rss(item(1, huge)))
    await bench.round()
    feed_server.serve(
        "/bad.xml", rss(item(2, "Ünïcödé " * 15_000 + "&amp; &lt;b&gt;"), item(1, huge))
    )
    second = await bench.round()
    assert second["bad"].deliveries == 1
    (pending,) = await bench.storage.outbox.claim_deliveries(
        bench.clock.now(), 10, worker="test", lease_seconds=60
    )
    assert len(pending.article.title) <= 500
    card = render_card(pending.article, {"news": "News"})
    assert len(check_telegram_html(card.html)) <= 4096
    rows = query(bench.config.storage.path, "SELECT max(length(title)) FROM articles")
    assert rows[0][0] <= 500


# -- bodies that keep the parser busy -------------------------------------------

# A healthy parse of these small bodies takes milliseconds; the deadline
# only has to be longer than that, on any machine.
PARSE_TIMEOUT = 3


@pytest.mark.parametrize(
    "workers", [1, pytest.param(2, marks=pytest.mark.slow)], ids=["thread", "process"]
)
async def test_a_feed_that_keeps_the_parser_busy_does_not_hold_up_the_round(
    bench_factory: Callable[..., Any], feed_server: FeedServer, tmp_path: Path, workers: int
) -> None:
    bench: Bench = await bench_factory(
        parser=held_parser.parse, parse_workers=workers, parse_timeout=PARSE_TIMEOUT
    )
    feed_server.serve("/bad.xml", rss(item("b1")))
    assert (await bench.round())["bad"].status == "new"  # workers are up
    # The parser is held until the round is over: past the deadline on any
    # machine, however fast (the way a pathological body keeps feedparser
    # busy for hours).
    gate = tmp_path / "stuck-parse"
    feed_server.serve(
        "/bad.xml", rss(item("b9"), item("b1"), extra=held_parser.hold(gate).decode())
    )
    bench.good_gains_a_story("g2")
    try:
        stuck = await bench.round()
    finally:
        held_parser.release(gate)  # a thread cannot be stopped: let it end
    assert held_parser.started(gate).exists()
    assert stuck["bad"].status == "failed"
    assert stuck["good"].deliveries == 1
    bad = await bench.health("bad")
    assert bad.error_count == 1 and bad.last_error == f"parse: gave up after {PARSE_TIMEOUT}s"
    # The feed heals and the parser works again.
    feed_server.serve("/bad.xml", rss(item("b2"), item("b1")))
    healed = await bench.round()
    assert (healed["bad"].status, healed["bad"].deliveries) == ("new", 1)
    assert bench.sent_twice() == []


@pytest.mark.slow
async def test_giving_up_on_a_parse_stops_only_its_worker(
    feed_server: FeedServer, tmp_path: Path, clock: ManualClock
) -> None:
    # Both workers held past the deadline, and more parses queued behind
    # them meanwhile: each stuck worker is replaced on its own, and the
    # queued parses run in the new workers.
    gates = [tmp_path / "stuck1", tmp_path / "stuck2"]
    stuck = ["/stuck1.xml", "/stuck2.xml"]
    for path, gate in zip(stuck, gates, strict=True):
        feed_server.serve(path, rss(item(path), extra=held_parser.hold(gate).decode()))
    opened = threading.Event()  # the queued feeds answer once both workers are held
    queued = [f"/queued{n}.xml" for n in range(6)]
    for n, path in enumerate(queued):
        feed_server.serve(path, rss(item(f"q{n}")), gate=opened)
    config = loopback_config(
        tmp_path,
        [{"url": feed_server.url(p)} for p in stuck + queued],
        parse_workers=2,
        parse_timeout=PARSE_TIMEOUT,
    )
    runtime = await Runtime.open(config, clock=clock, parser=held_parser.parse)
    try:
        polling = asyncio.create_task(runtime.poller.run_round(all_feeds=True))
        try:
            await eventually(
                lambda: all(held_parser.started(gate).exists() for gate in gates),
                what="both workers held",
            )
        finally:
            opened.set()
        async with asyncio.timeout(60):  # a hang guard
            report = await polling
        assert report is not None
        by_path = {"/" + o.url.rsplit("/", 1)[1]: o for o in report.outcomes}
        assert {p: by_path[p].error for p in stuck} == {
            p: f"parse: gave up after {PARSE_TIMEOUT}s" for p in stuck
        }
        assert {p: by_path[p].status for p in queued} == {p: "new" for p in queued}
        for feed in await runtime.storage.feeds.feed_health():
            assert (feed.error_count == 1) == ("/stuck" in feed.url), feed
        # The pool works on: the next round parses with fresh workers.
        for path in stuck:
            feed_server.serve(path, rss(item(path)))
        clock.advance(3600)
        healed = await runtime.poller.run_round(all_feeds=True)
        assert healed is not None
        assert {
            o.url.rsplit("/", 1)[1]: o.status for o in healed.outcomes if "/stuck" in o.url
        } == {
            "stuck1.xml": "new",
            "stuck2.xml": "new",
        }
    finally:
        opened.set()
        for gate in gates:
            held_parser.release(gate)
        await runtime.close()
