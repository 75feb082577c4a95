"""The outbox sender against the fake Bot API: pacing within flood limits, and
what each Telegram error does to a card and its chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from telegram import Bot

from bot.clock import SystemClock
from bot.config import DeliveryConfig, FeedConfig
from bot.deliver import Sender
from bot.models import NewArticle
from bot.storage import Storage
from tests.fake_telegram import ApiError, FakeTelegram, FloodLimits
from tests.faults import eventually
from tests.telegram_html import check_telegram_html

CATEGORIES = {"space": "Space"}


def headlines(fake: FakeTelegram, chat_id: int) -> list[str]:
    """First line of each card a chat received, as the reader sees it."""
    shown = []
    for message in fake.sent_messages(chat_id):
        text = message["text"]
        if message.get("parse_mode") == "HTML":
            text = check_telegram_html(text)
        shown.append(text.split("\n")[0])
    return shown


async def seed(storage: Storage, chats: dict[int, str], articles: int) -> None:
    """``articles`` new space articles, each pending for every chat in ``chats``
    (chat id -> chat type), as a second fetch of a feed would leave them."""
    now = datetime.now(UTC)
    await storage.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/f.xml", categories=["space"])], now
    )
    for chat_id, chat_type in chats.items():
        await storage.upsert_chat(chat_id, chat_type, f"chat {chat_id}", None, now)
        await storage.subscribe(chat_id, ["space"], now)
    stored = 0
    for fetch in range(2):
        (feed,) = await storage.due_feeds(now + timedelta(days=1))
        batch = [
            NewArticle(
                key=f"k{fetch}-{i}",
                url=f"https://news.example/{fetch}/{i}",
                title=f"Story {fetch}-{i} <&>",
                summary="Summary & more",
                author=None,
                published=now - timedelta(minutes=articles - i),
                image_url=None,
                categories=("space",),
            )
            for i in range(1 if fetch == 0 else articles)
        ]
        outcome = await storage.store_articles(
            feed,
            batch,
            now=now,
            next_check=now,
            feed_title="Feed",
            site_url=None,
            body_hash=str(fetch),
            etag=None,
            last_modified=None,
            fetch_url=None,
        )
        stored += outcome.deliveries
    assert stored == articles * len(chats)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await Storage.open(tmp_path / "outbox.db")
    yield opened
    await opened.close()


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    made = fake_telegram.make_bot()
    async with made:
        yield made


def sender(storage: Storage, bot: Bot, **config: float) -> Sender:
    settings = {"private_chat_interval": 0.2, "group_chat_interval": 0.3, **config}
    return Sender(storage, bot.send_message, DeliveryConfig(**settings), SystemClock(), CATEGORIES)


async def test_cards_go_out_oldest_first_and_within_flood_limits(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    fake_telegram.enable_flood_limits(
        FloodLimits(per_bot_per_second=30, private_chat_interval=0.2, group_per_minute=200)
    )
    await seed(storage, {101: "private", 102: "private", -1003: "supergroup"}, 6)
    # The sender paces twice as slowly as the limit: two sends to a chat
    # arrive too close together only if one of them was held up a quarter of
    # a second more than the other on the way, not for a scheduling hiccup.
    await sender(storage, bot, private_chat_interval=0.4).drain(within=30)
    assert fake_telegram.flood_429_count == 0
    for chat_id in (101, 102, -1003):
        assert headlines(fake_telegram, chat_id) == [f"Story 1-{i} <&>" for i in range(6)]
    assert (await storage.delivery_counts()) == {"sent": 18}


async def test_retry_after_pauses_and_nothing_is_lost(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {201: "private"}, 3)
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(1))
    await sender(storage, bot).drain(within=30)
    # Once each, in order.
    assert headlines(fake_telegram, 201) == [f"Story 1-{i} <&>" for i in range(3)]
    assert (await storage.delivery_counts()) == {"sent": 3}


async def test_blocked_chat_is_deactivated_and_its_cards_dropped(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {301: "private", 302: "private"}, 3)
    fake_telegram.fail_next("sendMessage", ApiError.blocked_by_user(), chat_id=301, times=None)
    await sender(storage, bot).drain(within=30)
    chat = await storage.get_chat(301)
    assert chat is not None and not chat.active
    assert len(fake_telegram.sent_texts(302)) == 3
    assert (await storage.delivery_counts()) == {"sent": 3, "dropped": 3}
    assert await storage.subscriptions(301) == ["space"]  # kept for when it comes back


async def test_migrated_group_gets_its_cards_under_the_new_id(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {-401: "group"}, 2)
    fake_telegram.fail_next("sendMessage", ApiError.migrated(-100401), chat_id=-401)
    await sender(storage, bot).drain(within=30)
    assert len(fake_telegram.sent_texts(-100401)) == 2
    assert await storage.get_chat(-401) is None
    assert await storage.subscriptions(-100401) == ["space"]
    assert (await storage.delivery_counts()) == {"sent": 2}


async def test_chat_not_found_deactivates_the_chat(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {501: "private"}, 2)
    fake_telegram.fail_next("sendMessage", ApiError.chat_not_found(), chat_id=501)
    await sender(storage, bot).drain(within=30)
    chat = await storage.get_chat(501)
    assert chat is not None and not chat.active
    assert (await storage.delivery_counts()) == {"dropped": 2}


async def test_card_rejected_for_its_entities_is_resent_as_plain_text(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {601: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.cant_parse_entities(), chat_id=601)
    await sender(storage, bot).drain(within=30)
    (sent,) = fake_telegram.sent_messages(601)
    assert sent.get("parse_mode") in (None, "")
    assert sent["text"].startswith("Story 1-0 <&>")
    assert (await storage.delivery_counts()) == {"sent": 1}


async def test_server_errors_are_retried_then_delivered(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {701: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.server_error(), times=2)
    await sender(storage, bot).drain(within=30)
    assert len(fake_telegram.sent_texts(701)) == 1
    assert (await storage.delivery_counts()) == {"sent": 1}


async def test_a_card_fails_for_good_after_max_attempts(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {801: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.server_error(), times=None)
    await sender(storage, bot, max_attempts=2).drain(within=30)
    assert fake_telegram.sent_texts(801) == []
    assert (await storage.delivery_counts()) == {"failed": 1}


async def test_pending_cards_survive_a_restart(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {901: "private", 902: "private"}, 4)
    # An hour between a chat's cards: the stop surely comes before a second one.
    first = sender(storage, bot, private_chat_interval=3600)
    # One round of dispatch, then a stop: each chat got one card, the rest wait.
    task = asyncio.create_task(first.run())
    await fake_telegram.wait_for_async("sendMessage", count=2)
    await first.stop()
    await task
    assert (await storage.delivery_counts()) == {"sent": 2, "pending": 6}
    await sender(storage, bot).drain(within=30)
    for chat_id in (901, 902):
        assert len(fake_telegram.sent_texts(chat_id)) == 4  # none twice, none lost


async def test_an_unreachable_api_loses_no_card_whatever_max_attempts_says(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(storage, {1001: "private", 1002: "private"}, 2)
    fake_telegram.go_offline("refuse")
    drained = asyncio.create_task(sender(storage, bot, max_attempts=2).drain(within=60))
    # Three attempts against the closed port, one more than max_attempts.
    await eventually(
        lambda: sum("Telegram unreachable" in r.getMessage() for r in caplog.records) >= 3,
        within=60,
        what="three failed attempts",
    )
    assert (await storage.delivery_counts()) == {"pending": 4}  # none given up
    fake_telegram.go_online()
    await drained
    assert (await storage.delivery_counts()) == {"sent": 4}
    for chat_id in (1001, 1002):
        assert len(fake_telegram.sent_texts(chat_id)) == 2


async def test_a_rejected_token_stops_sending_and_keeps_every_card(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {1101: "private"}, 2)
    fake_telegram.fail_next("sendMessage", ApiError(401, "Unauthorized"), times=None)
    running = sender(storage, bot)
    task = asyncio.create_task(running.run())
    await fake_telegram.wait_for_async("sendMessage", answered=True)
    async with asyncio.timeout(10):
        await task  # it stops by itself
    assert running.token_rejected
    assert (await storage.delivery_counts()) == {"pending": 2}
