"""Operator alerts and the metrics endpoint in the running bot, end to end:
feeds served failing by the loopback feed server, chats changing through the
fake Bot API, the operator (ALICE) told by private message."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import AlertsConfig, MetricsConfig
from bot.telegram.app import NewsbotApplication
from tests.bot_harness import (
    ALICE,
    BOB,
    SEEDED,
    BotHarness,
    eventually,
    harness_config,
    rss,
    serve_seed_feeds,
)
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

FLAKY = "/flaky.xml"
GONE = "/gone.xml"
CHANNEL = -1001234


@asynccontextmanager
async def bot_for_operators(
    tmp_path: Path, fake: FakeTelegram, feeds: FeedServer, **changes: Any
) -> AsyncIterator[BotHarness]:
    """The harness's bot with two more feeds and ``[alerts]``/``[metrics]`` changes."""
    serve_seed_feeds(feeds)
    feeds.serve(FLAKY, b"", status=500)
    feeds.serve(GONE, b"", status=410)
    config = harness_config(
        tmp_path,
        fake,
        feeds,
        extra_feeds=[{"url": feeds.url(FLAKY)}, {"url": feeds.url(GONE)}],
    )
    config = config.model_copy(update={"alerts": AlertsConfig(), **changes})
    app = NewsbotApplication(config)
    harness = BotHarness(fake, feeds, app)
    async with app.running(poll_interval=0.0):

        async def seed_feeds_stored() -> bool:
            return await harness.articles() == SEEDED + 1

        await eventually(seed_feeds_stored)
        yield harness


def alerts_to_operators(fake: FakeTelegram, about: str) -> list[str]:
    return [
        check_telegram_html(str(c.params["text"]))
        for c in fake.calls("sendMessage")
        if str(c.params.get("text", "")).startswith(f"<b>newsbot: {about}")
    ]


def operator_messages_elsewhere(fake: FakeTelegram) -> list[Any]:
    return [
        c
        for c in fake.calls("sendMessage")
        if str(c.params.get("text", "")).startswith("<b>newsbot:") and c.chat_id != ALICE
    ]


async def flaky_failures(bot: BotHarness) -> int:
    for feed in await bot.storage.feeds.feed_health():
        if feed.url.endswith(FLAKY):
            return feed.error_count
    raise AssertionError("no flaky feed")


def now(bot: BotHarness) -> Any:
    assert bot.app.services is not None
    return bot.app.services.runtime.clock.now()


async def flaky_id(bot: BotHarness) -> int:
    (feed_id,) = [f.id for f in await bot.storage.feeds.feed_health() if f.url.endswith(FLAKY)]
    return feed_id


async def fetch_flaky_again(bot: BotHarness) -> None:
    """Make the flaky feed due now and wait for its fetch. The round before
    it, with whatever it told, is over by then: rounds never overlap."""
    hits = bot.feeds.hits(FLAKY)
    await bot.storage.feeds.resume_feed(await flaky_id(bot), now(bot))

    async def fetched() -> bool:
        return bot.feeds.hits(FLAKY) > hits

    await eventually(fetched, what="another fetch of the flaky feed")


async def fail_until(bot: BotHarness, count: int) -> None:
    """Let the flaky feed fail ``count`` times in a row: after each failure it
    is made due again at once, instead of waiting out its backoff."""
    feed_id = await flaky_id(bot)
    while (failures := await flaky_failures(bot)) < count:

        async def failed_again(seen: int = failures) -> bool:
            return await flaky_failures(bot) > seen

        await bot.storage.feeds.resume_feed(feed_id, now(bot))
        await eventually(failed_again, what=f"failure {failures + 1}")


async def test_a_feed_failing_five_times_is_told_once_and_its_recovery_once(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with bot_for_operators(tmp_path, fake_telegram, feed_server) as bot:
        await fail_until(bot, 4)
        assert [t for t in alerts_to_operators(fake_telegram, "feeds") if "flaky" in t] == []
        await fail_until(bot, 5)

        async def told() -> bool:
            return any("flaky" in t for t in alerts_to_operators(fake_telegram, "feeds"))

        await eventually(told, what="the failing alert")
        await fail_until(bot, 10)
        await fetch_flaky_again(bot)  # the tenth round is over
        flaky = [t for t in alerts_to_operators(fake_telegram, "feeds") if "flaky" in t]
        assert len(flaky) == 1
        assert "failed 5 times in a row" in flaky[0]
        assert "HTTP 500" in flaky[0]

        feed_server.serve(FLAKY, rss(title="Flaky"))
        await fetch_flaky_again(bot)

        async def recovered() -> bool:
            return any("works again" in t for t in alerts_to_operators(fake_telegram, "feeds"))

        await eventually(recovered, what="the recovery alert")
        # More successes say nothing more.
        await fetch_flaky_again(bot)
        await fetch_flaky_again(bot)
        flaky = [t for t in alerts_to_operators(fake_telegram, "feeds") if "flaky" in t]
        assert len(flaky) == 2 and "works again" in flaky[1]
        assert operator_messages_elsewhere(fake_telegram) == []


async def test_a_feed_gone_with_410_is_told_once(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with bot_for_operators(tmp_path, fake_telegram, feed_server) as bot:

        async def told() -> bool:
            return any("gone" in t for t in alerts_to_operators(fake_telegram, "feeds"))

        await eventually(told, what="the 410 alert")
        (feed,) = [f for f in await bot.storage.feeds.feed_health() if f.url.endswith(GONE)]
        assert feed.disabled
        await fail_until(bot, 2)  # more rounds go by
        gone = [t for t in alerts_to_operators(fake_telegram, "feeds") if "gone" in t]
        assert len(gone) == 1
        assert "410" in gone[0]
        assert feed_server.hits(GONE) == 1
        assert operator_messages_elsewhere(fake_telegram) == []


async def test_a_channel_that_stops_letting_the_bot_post_is_told_once_and_its_return_once(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with bot_for_operators(tmp_path, fake_telegram, feed_server) as bot:
        await bot.ask(
            fake_telegram.my_chat_member(CHANNEL, "channel", "left", "administrator", title="News")
        )

        # The first look sets the baseline; wait until it has been taken.
        async def baseline() -> bool:
            return await bot.storage.state.get_state("alerts.suspended_chats") is not None

        await eventually(baseline)
        await bot.ask(
            fake_telegram.my_chat_member(
                CHANNEL, "channel", "administrator", "administrator", can_post_messages=False
            )
        )

        async def told() -> bool:
            return len(alerts_to_operators(fake_telegram, "chats")) >= 1

        await eventually(told, what="the suspension alert")
        (suspended,) = alerts_to_operators(fake_telegram, "chats")
        assert "News" in suspended and "no longer lets the bot post" in suspended
        await bot.ask(
            fake_telegram.my_chat_member(
                CHANNEL, "channel", "administrator", "administrator", can_post_messages=True
            )
        )

        async def told_again() -> bool:
            return len(alerts_to_operators(fake_telegram, "chats")) >= 2

        await eventually(told_again, what="the resumption alert")
        await fail_until(bot, 2)  # a few more looks go by
        chats = alerts_to_operators(fake_telegram, "chats")
        assert len(chats) == 2 and "lets the bot post again" in chats[1]
        assert operator_messages_elsewhere(fake_telegram) == []


async def test_the_running_bot_serves_its_metrics_and_health(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with bot_for_operators(
        tmp_path,
        fake_telegram,
        feed_server,
        metrics=MetricsConfig(listen="127.0.0.1:0"),
        alerts=AlertsConfig(failures=50, daily_report="09:00"),
    ) as bot:
        assert bot.app.operations is not None and bot.app.operations.server is not None
        base = f"http://127.0.0.1:{bot.app.operations.server.port}"
        heartbeat = bot.app.config.heartbeat_path

        async def beating() -> bool:
            return heartbeat.exists()

        await eventually(beating)
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"{base}/metrics")).text
            healthy = await client.get(f"{base}/healthz")
            os.utime(heartbeat, (0, 0))  # as if the scheduler had stopped long ago
            unhealthy = await client.get(f"{base}/healthz")
        found = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(scraped)
            for s in family.samples
        }
        assert found[("newsbot_articles_stored_total", ())] >= SEEDED + 1
        assert found[("newsbot_feed_fetches_total", (("status", "new"),))] >= 3
        assert found[("newsbot_feed_fetches_total", (("status", "failed"),))] >= 2
        assert found[("newsbot_feeds", (("state", "disabled"),))] == 1
        assert found[("newsbot_poll_round_seconds_count", ())] >= 1
        assert healthy.status_code == 200 and healthy.text.startswith("healthy")
        assert unhealthy.status_code == 503 and "last scheduler tick" in unhealthy.text
        jobs = [job.name for job in bot.app.application.job_queue.jobs()]  # type: ignore[union-attr]
        assert "daily-report" in jobs
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"{base}/healthz")
        except httpx.ConnectError:
            pass
        else:
            raise AssertionError("the endpoint outlived the bot")


async def test_operators_who_turned_alerts_off_are_not_told(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with bot_for_operators(
        tmp_path, fake_telegram, feed_server, alerts=AlertsConfig(enabled=False, failures=1)
    ) as bot:

        async def gone_disabled() -> bool:
            return any(f.disabled for f in await bot.storage.feeds.feed_health())

        await eventually(gone_disabled)
        await fail_until(bot, 2)
        await fetch_flaky_again(bot)
        assert alerts_to_operators(fake_telegram, "") == []


async def test_a_metrics_port_in_use_is_logged_and_the_bot_runs_on(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        async with bot_for_operators(
            tmp_path, fake_telegram, feed_server, metrics=MetricsConfig(listen=f"127.0.0.1:{port}")
        ) as bot:
            assert bot.app.operations is not None and bot.app.operations.server is None
            assert any(
                f"metrics: cannot listen on 127.0.0.1:{port}" in r.getMessage()
                for r in caplog.records
            )
            assert "Space" in (await bot.say(BOB, "/categories")).text(BOB)
    finally:
        taken.close()
