"""The metrics endpoint: scraped over loopback and parsed as Prometheus text."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from telegram import Bot

from bot.clock import SystemClock
from bot.config import DeliveryConfig
from bot.deliver import Sender
from bot.metrics import BotMetrics, MetricsServer
from bot.pipeline import FeedOutcome, RoundReport
from bot.storage import Storage
from tests.fake_telegram import ApiError, FakeTelegram
from tests.support import open_test_storage
from tests.test_delivery import CATEGORIES, seed


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    made = fake_telegram.make_bot()
    async with made:
        yield made


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def serving(
    metrics: BotMetrics, storage: Storage, verdict: Callable[[], tuple[bool, str]] | None = None
) -> MetricsServer:
    server = MetricsServer(
        metrics, storage, verdict or (lambda: (True, "healthy: test")), "127.0.0.1", 0
    )
    await server.start()
    return server


async def test_the_sender_and_a_round_show_in_a_scrape_of_metrics(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {101: "private", -1002: "channel"}, 3)
    metrics = BotMetrics()
    sender = Sender(
        storage,
        bot.send_message,
        DeliveryConfig(private_chat_interval=0.2, group_chat_interval=0.2),
        SystemClock(),
        CATEGORIES,
    )
    sender.events = metrics
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(1), chat_id=101)
    fake_telegram.fail_next("sendMessage", ApiError.message_too_long(), chat_id=-1002)
    await sender.drain(within=30)
    metrics.observe_round(
        RoundReport(
            [
                FeedOutcome(1, "u1", "new", new_articles=4),
                FeedOutcome(2, "u2", "failed", error="HTTP 500"),
                FeedOutcome(3, "u3", "not_modified"),
            ],
            seconds=1.5,
        )
    )
    server = await serving(metrics, storage)
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.stop()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    assert value(found, "newsbot_cards_sent_total") == 5
    assert value(found, "newsbot_telegram_flood_waits_total") == 1
    assert value(found, "newsbot_card_failures_total", reason="rejected") == 1
    assert value(found, "newsbot_card_failures_total", reason="attempts_exhausted") == 0
    assert value(found, "newsbot_card_delivery_delay_seconds_count") == 5
    assert value(found, "newsbot_feed_fetches_total", status="new") == 1
    assert value(found, "newsbot_feed_fetches_total", status="failed") == 1
    assert value(found, "newsbot_feed_fetches_total", status="unchanged") == 0
    assert value(found, "newsbot_poll_round_seconds_count") == 1
    assert value(found, "newsbot_poll_round_seconds_sum") == 1.5
    assert value(found, "newsbot_articles_stored_total") == 4
    assert value(found, "newsbot_outbox_rows", state="sent") == 5
    assert value(found, "newsbot_outbox_rows", state="failed") == 1
    assert value(found, "newsbot_outbox_rows", state="pending") == 0
    assert value(found, "newsbot_feeds", state="ok") == 1
    assert value(found, "newsbot_feeds", state="disabled") == 0
    assert value(found, "newsbot_subscribed_chats", type="private") == 1
    assert value(found, "newsbot_subscribed_chats", type="channel") == 1
    assert value(found, "newsbot_subscribed_chats", type="group") == 0


async def test_the_database_gauges_are_read_at_most_every_half_minute(storage: Storage) -> None:
    metrics = BotMetrics()
    await metrics.refresh(storage)
    assert metrics.feeds.labels("ok")._value.get() == 0
    await seed(storage, {301: "private"}, 2)
    await metrics.refresh(storage)  # within the half minute: no query
    assert metrics.outbox.labels("pending")._value.get() == 0
    await metrics.refresh(storage, force=True)
    assert metrics.outbox.labels("pending")._value.get() == 2
    assert metrics.feeds.labels("ok")._value.get() == 1


async def test_two_bots_in_one_process_count_apart() -> None:
    first, second = BotMetrics(), BotMetrics()
    first.told_to_wait()
    assert first.flood_waits._value.get() == 1
    assert second.flood_waits._value.get() == 0
    assert b"newsbot_cards_sent_total" not in __import__("prometheus_client").generate_latest()


async def test_healthz_answers_200_when_healthy_and_503_with_the_reason(storage: Storage) -> None:
    verdict = [True, "healthy: last scheduler tick 3s ago"]
    server = await serving(BotMetrics(), storage, lambda: (bool(verdict[0]), str(verdict[1])))
    try:
        async with httpx.AsyncClient() as client:
            url = f"http://127.0.0.1:{server.port}/healthz"
            healthy = await client.get(url)
            verdict[:] = [False, "unhealthy: no heartbeat yet"]
            unhealthy = await client.get(url)
    finally:
        await server.stop()
    assert (healthy.status_code, healthy.text) == (200, "healthy: last scheduler tick 3s ago\n")
    assert (unhealthy.status_code, unhealthy.text) == (503, "unhealthy: no heartbeat yet\n")


async def test_the_endpoint_refuses_what_it_does_not_serve_and_stops_cleanly(
    storage: Storage,
) -> None:
    server = await serving(BotMetrics(), storage)
    port = server.port
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).status_code == 404
            assert (await client.post(f"http://127.0.0.1:{port}/metrics")).status_code == 405
            head = await client.head(f"http://127.0.0.1:{port}/metrics")
            assert head.status_code == 200 and head.content == b""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"garbage\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
        writer.close()
        # A client that connects and says nothing does not keep stop() waiting.
        _idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        await server.stop()
    idle_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
