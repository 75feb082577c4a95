"""Stopping in the middle of a polling round: ``docker stop`` allows 10 s
before it kills, so a shutdown must not wait for the round to end. It stops
at a feed boundary: what was stored stays, the rest is polled next time, and
a fetch or parse cut short is not held against its feed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import ManualClock
from bot.runtime import Runtime
from tests import bot_harness, held_parser
from tests.fake_telegram import FakeTelegram
from tests.faults import BotProcess, db_count, eventually, query, write_config
from tests.feed_server import FeedServer
from tests.support import loopback_config
from tests.test_pipeline import item, rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Only a stop ends these waits, whatever the machine's speed.
NEVER = {"read_timeout": 600, "total_timeout": 600, "parse_timeout": 600}


async def test_a_stop_mid_round_keeps_what_was_stored_and_leaves_the_rest_due(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    never = threading.Event()
    parse_gate = tmp_path / "held-parse"
    stored = [f"/stored{n}.xml" for n in range(3)]
    hanging = [f"/hanging{n}.xml" for n in range(3)]
    for n, path in enumerate(stored):
        feed_server.serve(path, rss(item(f"a{n}"), item(f"b{n}")))
    for n, path in enumerate(hanging):
        feed_server.serve(path, rss(item(f"h{n}")), gate=never)
    feed_server.serve("/parsing.xml", rss(item("p"), extra=held_parser.hold(parse_gate).decode()))
    # More feeds than slots: some have not started when the stop comes.
    waiting = [f"/waiting{n}.xml" for n in range(4)]
    for n, path in enumerate(waiting):
        feed_server.serve(path, rss(item(f"w{n}")), gate=never)
    paths = [*stored, *hanging, "/parsing.xml", *waiting]
    config = loopback_config(
        tmp_path,
        [{"url": feed_server.url(p)} for p in paths],
        concurrency=8,
        per_host_concurrency=8,
        **NEVER,
    )
    clock = ManualClock(NOW)
    runtime = await Runtime.open(config, clock=clock, parser=held_parser.parse)
    try:
        polling = asyncio.create_task(runtime.poller.run_round(all_feeds=True))

        async def stored_feeds_done() -> bool:
            health = {f.url: f for f in await runtime.storage.feeds.feed_health()}
            return all(health[feed_server.url(p)].articles == 2 for p in stored)

        try:
            await eventually(stored_feeds_done, what="the quick feeds stored")
            await eventually(held_parser.started(parse_gate).exists, what="the held parse")
            await eventually(
                lambda: all(feed_server.hits(p) == 1 for p in hanging), what="hanging fetches"
            )
            async with asyncio.timeout(30):  # a hang guard: without a stop, 600 s
                await runtime.poller.stop()
                report = await polling
        finally:
            never.set()
            held_parser.release(parse_gate)
        assert report is not None
        assert sorted(o.url for o in report.outcomes) == sorted(feed_server.url(p) for p in stored)
        assert all(o.status == "new" for o in report.outcomes)
        health = {f.url: f for f in await runtime.storage.feeds.feed_health()}
        assert await runtime.storage.articles.article_count() == 2 * len(stored)
        for path in paths:
            feed = health[feed_server.url(path)]
            assert (feed.error_count, feed.last_error) == (0, None), feed
        due = {f.url for f in await runtime.storage.feeds.due_feeds(clock.now())}
        assert due == {feed_server.url(p) for p in paths if p not in stored}
        assert await runtime.poller.run_round(all_feeds=True) is None  # stopped for good
    finally:
        never.set()
        held_parser.release(parse_gate)
        await runtime.close()


async def test_stopping_the_bot_does_not_wait_for_the_running_round(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    # PTB's stop waits for running jobs, the polling round among them; a
    # round waiting on a feed that never answers would hold it for 600 s.
    never = threading.Event()
    feed_server.serve("/stuck.xml", rss(item("stuck")), gate=never)

    async def stuck_fetch_started() -> bool:
        return feed_server.hits("/stuck.xml") >= 1

    try:
        async with (
            asyncio.timeout(60),  # a hang guard
            bot_harness.running_bot(
                tmp_path,
                fake_telegram,
                feed_server,
                polling=NEVER,
                extra_feeds=[{"url": feed_server.url("/stuck.xml"), "categories": ["space"]}],
            ),
        ):
            await bot_harness.eventually(stuck_fetch_started)
    finally:
        never.set()
    ((errors, last_error),) = query(
        tmp_path / "bot.db",
        "SELECT error_count, last_error FROM feeds WHERE url = ?",
        (feed_server.url("/stuck.xml"),),
    )
    assert (errors, last_error) == (0, None)


@pytest.mark.slow
async def test_sigterm_mid_round_exits_cleanly_without_waiting_for_a_hanging_feed(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    processes: list[BotProcess],
) -> None:
    # What docker stop does: SIGTERM, and SIGKILL 10 s later. The round is
    # waiting on a feed that would keep it busy for 600 s.
    never = threading.Event()
    feed_server.serve("/quick.xml", rss(item(1)))
    feed_server.serve("/hanging.xml", rss(item(2)), gate=never)
    config = write_config(
        tmp_path, fake_telegram, [feed_server.url("/quick.xml"), feed_server.url("/hanging.xml")]
    )
    config.write_text(
        config.read_text().replace(
            "[polling]\n", "[polling]\nread_timeout = 600\ntotal_timeout = 600\n"
        )
    )
    db = tmp_path / "bot.db"
    bot = BotProcess(config, fake_telegram.token, tmp_path / "bot.log").start()
    processes.append(bot)
    try:

        def quick_feed_stored() -> bool:
            try:
                return db_count(db, "SELECT count(*) FROM articles") == 1
            except sqlite3.OperationalError:  # the bot has not created it yet
                return False

        await eventually(quick_feed_stored, what="the quick feed")
        await eventually(lambda: feed_server.hits("/hanging.xml") >= 1, what="the hanging fetch")
        code = await bot.terminate(within=30)  # a hang guard: the round alone would take 600 s
    finally:
        never.set()
    assert code == 0, bot.log()[-3000:]
    assert "Traceback" not in bot.log(), bot.log()[-3000:]
    ((errors, last_error),) = query(
        db,
        "SELECT error_count, last_error FROM feeds WHERE url = ?",
        (feed_server.url("/hanging.xml"),),
    )
    assert (errors, last_error) == (0, None)
