"""A paused chat (``/pause``): routing queues nothing for it, a card queued
just before the pause is not sent, and ``/resume`` replays nothing. Route is
pure; the rest runs on both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.chat_settings import ChatSettings
from bot.clock import SystemClock
from bot.config import DeliveryConfig, FeedConfig
from bot.deliver import Sender
from bot.models import NewArticle
from bot.route import ChatRouting, Delivery, Subscription, route
from bot.storage import Storage
from tests.fake_telegram import FakeTelegram
from tests.support import open_test_storage


def test_a_paused_chat_gets_no_delivery() -> None:
    subscriptions = [Subscription(1, "space"), Subscription(2, "space"), Subscription(3, "space")]
    chats = {
        1: ChatRouting(1, True, settings=ChatSettings(paused=True)),
        2: ChatRouting(2, True, settings=ChatSettings(paused=False, silent=True)),
        3: ChatRouting(3, True),
    }
    assert route(("space",), subscriptions, chats) == [Delivery(2, "space"), Delivery(3, "space")]


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    yield opened
    await opened.close()


async def store(storage: Storage, keys: list[str]) -> int:
    """Store space stories ``keys`` as one fetch; returns the cards queued."""
    now = datetime.now(UTC)
    (feed,) = await storage.feeds.due_feeds(now + timedelta(days=365))
    outcome = await storage.articles.store_articles(
        feed,
        [
            NewArticle(
                key=key,
                url=f"https://news.example/{key}",
                title=f"Story {key}",
                summary="",
                author=None,
                published=now,
                image_url=None,
                categories=("space",),
            )
            for key in keys
        ],
        now=now,
        next_check=now,
        feed_title="Feed",
        site_url=None,
        body_hash="-".join(keys),
        etag=None,
        last_modified=None,
        fetch_url=None,
    )
    return outcome.deliveries


async def subscribed(storage: Storage, *chat_ids: int) -> None:
    now = datetime.now(UTC)
    await storage.feeds.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/f.xml", categories=["space"])], now
    )
    for chat_id in chat_ids:
        await storage.chats.upsert_chat(chat_id, "private", None, None, now)
        await storage.chats.subscribe(chat_id, ["space"], now)
    await store(storage, ["seen-at-first-fetch"])


async def test_no_card_is_queued_for_a_paused_chat_and_resume_replays_none(
    storage: Storage, fake_telegram: FakeTelegram
) -> None:
    await subscribed(storage, 11, 12)
    now = datetime.now(UTC)
    await storage.chats.update_chat_settings(11, {"paused": True}, now)
    assert await store(storage, ["during-pause"]) == 1  # chat 12 only
    await storage.chats.update_chat_settings(11, {"paused": False}, now)
    assert await store(storage, ["after-resume"]) == 2

    async with fake_telegram.make_bot() as bot:
        await sender(storage, bot).drain(within=20)
    assert [m["text"].split("\n")[0] for m in fake_telegram.sent_messages(11)] == [
        "<b>Story after-resume</b>"
    ]
    assert len(fake_telegram.sent_messages(12)) == 2


async def test_a_card_queued_before_the_pause_is_not_sent(
    storage: Storage, fake_telegram: FakeTelegram
) -> None:
    await subscribed(storage, 21)
    assert await store(storage, ["just-before"]) == 1
    await storage.chats.update_chat_settings(21, {"paused": True}, datetime.now(UTC))
    async with fake_telegram.make_bot() as bot:
        await sender(storage, bot).drain(within=20)
    assert not fake_telegram.sent_messages(21)
    assert await storage.outbox.has_pending_deliveries() is False


def sender(storage: Storage, bot: Bot) -> Sender:
    return Sender(
        storage,
        bot.send_message,
        DeliveryConfig(private_chat_interval=0.01, group_chat_interval=0.01),
        SystemClock(),
        {"space": "Space"},
    )
