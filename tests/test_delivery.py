"""The outbox sender against the fake Bot API: pacing within flood limits, and
what each Telegram error does to a card and its chat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram import Bot

from bot.clock import ManualClock, SystemClock
from bot.config import DeliveryConfig, FeedConfig
from bot.deliver import Sender
from bot.errors import StorageError
from bot.models import NewArticle
from bot.storage import Storage
from tests.fake_telegram import ApiError, FakeTelegram, FloodLimits
from tests.faults import eventually
from tests.support import open_test_storage
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
    await storage.feeds.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/f.xml", categories=["space"])], now
    )
    for chat_id, chat_type in chats.items():
        await storage.chats.upsert_chat(chat_id, chat_type, f"chat {chat_id}", None, now)
        await storage.chats.subscribe(chat_id, ["space"], now)
    stored = 0
    for fetch in range(2):
        (feed,) = await storage.feeds.due_feeds(now + timedelta(days=1))
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
        outcome = await storage.articles.store_articles(
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
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """The outbox on each backend in turn: every sender test runs on SQLite
    and on PostgreSQL."""
    opened = await open_test_storage(database_url)
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
    assert (await storage.outbox.delivery_counts()) == {"sent": 18}


async def test_retry_after_pauses_and_nothing_is_lost(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {201: "private"}, 3)
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(1))
    await sender(storage, bot).drain(within=30)
    # Once each, in order.
    assert headlines(fake_telegram, 201) == [f"Story 1-{i} <&>" for i in range(3)]
    assert (await storage.outbox.delivery_counts()) == {"sent": 3}


async def test_blocked_chat_is_deactivated_and_its_cards_dropped(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {301: "private", 302: "private"}, 3)
    fake_telegram.fail_next("sendMessage", ApiError.blocked_by_user(), chat_id=301, times=None)
    await sender(storage, bot).drain(within=30)
    chat = await storage.chats.get_chat(301)
    assert chat is not None and not chat.active
    assert len(fake_telegram.sent_texts(302)) == 3
    assert (await storage.outbox.delivery_counts()) == {"sent": 3, "dropped": 3}
    assert await storage.chats.subscriptions(301) == ["space"]  # kept for when it comes back


async def test_migrated_group_gets_its_cards_under_the_new_id(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {-401: "group"}, 2)
    fake_telegram.fail_next("sendMessage", ApiError.migrated(-100401), chat_id=-401)
    await sender(storage, bot).drain(within=30)
    assert len(fake_telegram.sent_texts(-100401)) == 2
    assert await storage.chats.get_chat(-401) is None
    assert await storage.chats.subscriptions(-100401) == ["space"]
    assert (await storage.outbox.delivery_counts()) == {"sent": 2}


async def test_chat_not_found_deactivates_the_chat(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {501: "private"}, 2)
    fake_telegram.fail_next("sendMessage", ApiError.chat_not_found(), chat_id=501)
    await sender(storage, bot).drain(within=30)
    chat = await storage.chats.get_chat(501)
    assert chat is not None and not chat.active
    assert (await storage.outbox.delivery_counts()) == {"dropped": 2}


async def test_card_rejected_for_its_entities_is_resent_as_plain_text(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {601: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.cant_parse_entities(), chat_id=601)
    await sender(storage, bot).drain(within=30)
    (sent,) = fake_telegram.sent_messages(601)
    assert sent.get("parse_mode") in (None, "")
    assert sent["text"].startswith("Story 1-0 <&>")
    assert (await storage.outbox.delivery_counts()) == {"sent": 1}


async def test_server_errors_are_retried_then_delivered(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {701: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.server_error(), times=2)
    await sender(storage, bot).drain(within=30)
    assert len(fake_telegram.sent_texts(701)) == 1
    assert (await storage.outbox.delivery_counts()) == {"sent": 1}


async def test_a_card_fails_for_good_after_max_attempts(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {801: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.server_error(), times=None)
    await sender(storage, bot, max_attempts=2).drain(within=30)
    assert fake_telegram.sent_texts(801) == []
    assert (await storage.outbox.delivery_counts()) == {"failed": 1}


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
    assert (await storage.outbox.delivery_counts()) == {"sent": 2, "pending": 6}
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
    assert (await storage.outbox.delivery_counts()) == {"pending": 4}  # none given up
    fake_telegram.go_online()
    await drained
    assert (await storage.outbox.delivery_counts()) == {"sent": 4}
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
    assert (await storage.outbox.delivery_counts()) == {"pending": 2}


# -- outcomes that storage cannot record, lost rights, stale cards --------


async def test_a_storage_error_after_a_send_never_repeats_the_card(
    storage: Storage,
    bot: Bot,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The disk is full or another process holds the lock past the busy
    timeout just when a sent card is to be marked: the outcome is written
    again until it sticks, and meanwhile no card goes out twice or at all."""
    await seed(storage, {1201: "private", 1202: "private"}, 2)
    real_mark_sent = storage.outbox.mark_sent
    failures = 0
    storage_broken = asyncio.Event()
    storage_broken.set()

    async def flaky_mark_sent(delivery_id: int, message_id: int, now: datetime) -> None:
        nonlocal failures
        if storage_broken.is_set():
            failures += 1
            raise StorageError("storage: database or disk is full")
        await real_mark_sent(delivery_id, message_id, now)

    monkeypatch.setattr(storage.outbox, "mark_sent", flaky_mark_sent)
    running = sender(storage, bot)
    task = asyncio.create_task(running.run())
    await fake_telegram.wait_for_async("sendMessage", answered=True)
    for _ in range(100):  # until the sender has tried to record it a few times
        if failures >= 3:
            break
        await asyncio.sleep(0.1)
    assert failures >= 3
    assert not running.healthy
    # Held: the two cards of the first dispatch went out, nothing after them.
    assert sorted(c.chat_id for c in fake_telegram.calls("sendMessage")) == [1201, 1202]
    storage_broken.clear()
    for _ in range(300):
        if not await storage.outbox.has_pending_deliveries():
            break
        await asyncio.sleep(0.1)
    await running.stop()
    await task
    for chat_id in (1201, 1202):
        assert headlines(fake_telegram, chat_id) == ["Story 1-0 <&>", "Story 1-1 <&>"]
    assert running.healthy
    assert (await storage.outbox.delivery_counts()) == {"sent": 4}
    said = [r.getMessage() for r in caplog.records if r.name == "bot.outcomes"]
    assert sum("cannot record" in line for line in said) == 1  # once, not per retry


async def test_losing_the_right_to_post_suspends_the_chat_and_keeps_its_cards(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {-1001301: "channel", 1302: "private"}, 3)
    fake_telegram.fail_next(
        "sendMessage",
        ApiError(400, "Bad Request: need administrator rights in the channel chat"),
        chat_id=-1001301,
        times=None,
    )
    await sender(storage, bot).drain(within=30)
    assert len(fake_telegram.sent_texts(1302)) == 3
    (suspended,) = await storage.chats.suspended_chats()
    assert suspended.id == -1001301
    assert "administrator rights" in suspended.reason
    assert suspended.pending == 3  # kept, not failed
    assert len(fake_telegram.calls("sendMessage", -1001301)) == 1  # not tried card by card
    chat = await storage.chats.get_chat(-1001301)
    assert chat is not None and chat.active

    fake_telegram.clear_failures()
    assert await storage.chats.resume_chat(-1001301, datetime.now(UTC))
    await sender(storage, bot).drain(within=30)
    assert headlines(fake_telegram, -1001301) == [f"Story 1-{i} <&>" for i in range(3)]
    assert await storage.chats.suspended_chats() == []


@pytest.mark.parametrize(
    "refusal",
    [
        "Bad Request: not enough rights to send text messages to the chat",
        "Forbidden: CHAT_WRITE_FORBIDDEN",
        "Bad Request: TOPIC_CLOSED",
    ],
)
async def test_every_kind_of_lost_right_suspends_the_chat(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram, refusal: str
) -> None:
    await seed(storage, {-1001401: "supergroup"}, 2)
    code = 403 if refusal.startswith("Forbidden") else 400
    fake_telegram.fail_next("sendMessage", ApiError(code, refusal), times=None)
    await sender(storage, bot).drain(within=30)
    (suspended,) = await storage.chats.suspended_chats()
    assert suspended.pending == 2
    assert (await storage.outbox.delivery_counts()) == {"pending": 2}


async def test_max_age_is_checked_when_a_card_comes_up(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    """A running bot after a week-long outage: the week-old cards are
    dropped when they come up, not sent late."""
    await seed(storage, {1501: "private"}, 2)
    week_later = ManualClock(datetime.now(UTC) + timedelta(days=8))
    late = Sender(
        storage,
        bot.send_message,
        DeliveryConfig(private_chat_interval=0.2),
        week_later,
        CATEGORIES,
    )
    await late.drain(within=30)
    assert fake_telegram.sent_texts(1501) == []
    assert (await storage.outbox.delivery_counts()) == {"dropped": 2}


@pytest.mark.parametrize(
    "gateway", [ApiError(503, "Service Unavailable"), ApiError(504, "Gateway Timeout")]
)
async def test_gateway_errors_use_up_no_attempts(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram, gateway: ApiError
) -> None:
    await seed(storage, {1601: "private"}, 1)
    fake_telegram.fail_next("sendMessage", gateway, times=3)
    await sender(storage, bot, max_attempts=2).drain(within=60)
    assert len(fake_telegram.sent_texts(1601)) == 1
    assert (await storage.outbox.delivery_counts()) == {"sent": 1}


async def test_one_chats_flood_control_does_not_pause_the_others(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {1701: "private", 1702: "private", 1703: "private"}, 4)
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(4), chat_id=1701)
    await sender(storage, bot).drain(within=60)
    for chat_id in (1701, 1702, 1703):
        assert headlines(fake_telegram, chat_id) == [f"Story 1-{i} <&>" for i in range(4)]
    delivered = [c for c in fake_telegram.calls("sendMessage") if c.ok]
    resumed = min(c.time for c in delivered if c.chat_id == 1701)
    others_done = max(c.time for c in delivered if c.chat_id != 1701)
    # The other chats kept their pace: all their cards went out while 1701 waited.
    assert others_done < resumed
    assert (await storage.chats.get_chat(1701)) is not None


async def test_several_chats_told_to_wait_in_a_row_pause_all_sending(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    chats = {1801: "private", 1802: "private", 1803: "private", 1804: "private"}
    await seed(storage, chats, 2)
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(3), times=3)
    await sender(storage, bot).drain(within=60)
    for chat_id in chats:
        assert headlines(fake_telegram, chat_id) == ["Story 1-0 <&>", "Story 1-1 <&>"]
    calls = fake_telegram.calls("sendMessage")
    third_refusal = [c for c in calls if c.status == 429][2].time
    # Sends already under way when the third refusal came may still land;
    # none may start during the bot-wide pause that followed it.
    during = [c for c in calls if 0.5 < c.time - third_refusal < 2.5]
    assert during == []


async def test_a_card_whose_html_is_rejected_keeps_its_buttons(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {1901: "private"}, 1)
    fake_telegram.fail_next("sendMessage", ApiError.cant_parse_entities(), chat_id=1901)
    await sender(storage, bot).drain(within=30)
    (sent,) = fake_telegram.sent_messages(1901)
    assert sent.get("parse_mode") in (None, "")
    labels = [b["text"] for row in sent["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["Read", "Share"]
    assert "https://news.example/1/0" in sent["text"]


async def test_a_card_whose_buttons_are_rejected_keeps_its_link_as_text(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    await seed(storage, {2001: "private"}, 1)
    fake_telegram.fail_next(
        "sendMessage", ApiError(400, "Bad Request: BUTTON_URL_INVALID"), chat_id=2001
    )
    await sender(storage, bot).drain(within=30)
    (sent,) = fake_telegram.sent_messages(2001)
    assert not sent.get("reply_markup")
    assert "https://news.example/1/0" in sent["text"]


async def store_story(storage: Storage, key: str) -> int:
    """One more space story of the seeded feed; returns the cards it made."""
    now = datetime.now(UTC)
    (feed,) = await storage.feeds.due_feeds(now + timedelta(days=1))
    outcome = await storage.articles.store_articles(
        feed,
        [
            NewArticle(
                key=key,
                url=f"https://news.example/{key}",
                title=f"Story {key}",
                summary="Summary",
                author=None,
                published=now,
                image_url=None,
                categories=("space",),
            )
        ],
        now=now,
        next_check=now,
        feed_title="Feed",
        site_url=None,
        body_hash=key,
        etag=None,
        last_modified=None,
        fetch_url=None,
    )
    return outcome.deliveries


async def test_a_wake_while_the_sender_looks_for_due_cards_is_not_lost(
    storage: Storage, bot: Bot, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a wake the sender would sleep for an hour: only the wake can send the card.
    monkeypatch.setattr("bot.deliver._IDLE_WAIT", 3600.0)
    now = datetime.now(UTC)
    await storage.feeds.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/f.xml", categories=["space"])], now
    )
    await storage.chats.upsert_chat(101, "private", "chat 101", None, now)
    await storage.chats.subscribe(101, ["space"], now)
    assert await store_story(storage, "first-fetch") == 0  # a first fetch makes no cards
    idle_sender = sender(storage, bot)
    looked = storage.outbox.next_delivery_time
    arrived = False

    async def next_delivery_time_as_a_story_arrives() -> datetime | None:
        nonlocal arrived
        due = await looked()
        # Once only: the sender looks again after sending, maybe before the
        # fake Bot API has noted the call.
        if not arrived:
            arrived = True
            # A poller (or a push) stores a card and wakes the sender just as
            # the sender, finding nothing to do, asks when the next card is due.
            assert await store_story(storage, "late") == 1
            idle_sender.wake()
        return due

    monkeypatch.setattr(storage.outbox, "next_delivery_time", next_delivery_time_as_a_story_arrives)
    running = asyncio.create_task(idle_sender.run())
    try:
        card = await fake_telegram.wait_for_async("sendMessage", chat_id=101, timeout=15)
        assert "Story late" in str(card.params["text"])
    finally:
        await idle_sender.stop()
        await running


async def test_sending_resumes_once_a_failed_read_of_the_outbox_works_again(
    storage: Storage,
    bot: Bot,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading the outbox fails for a while (a lock held, a database
    restarting): no outcome is waiting, so the next read that works ends the
    trouble and the cards go out."""
    await seed(storage, {1251: "private"}, 1)
    real_claim = storage.outbox.claim_deliveries
    failures = 0

    async def flaky_claim(*args: Any, **kwargs: Any) -> list[Any]:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise StorageError("storage: database is locked")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(storage.outbox, "claim_deliveries", flaky_claim)
    running = sender(storage, bot)
    task = asyncio.create_task(running.run())
    try:
        await fake_telegram.wait_for_async("sendMessage", answered=True, timeout=30)
        for _ in range(100):
            if not await storage.outbox.has_pending_deliveries():
                break
            await asyncio.sleep(0.1)
    finally:
        await running.stop()
        await task
    assert failures == 2
    assert headlines(fake_telegram, 1251) == ["Story 1-0 <&>"]
    assert running.healthy
