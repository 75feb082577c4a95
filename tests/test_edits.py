"""Cards that follow the story: a feed corrects a headline already sent, and
each sent card is edited (once, with the latest text), paced like sends,
never sent again. End to end: the loopback feed server, the real pipeline
and storage (both backends), the sender against the fake Bot API, and a
clock moved by hand."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import Bot, Message

from bot.clock import ManualClock
from bot.config import Config, DeliveryConfig
from bot.deliver import Sender
from bot.edits import (
    EDIT_INTERVAL,
    edit_due,
    edit_too_late,
    message_gone,
    next_edit_after,
    not_modified,
)
from bot.runtime import Runtime
from bot.telegram.ratelimit import MessageRateLimiter
from tests.fake_telegram import DEFAULT_BOT_ID, ApiError, FakeTelegram, FloodLimits
from tests.feed_server import FeedServer, Route
from tests.support import REAL_FEEDS, loopback_config
from tests.telegram_html import check_telegram_html

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PRIVATE, GROUP = 101, -1_001_000_000_202


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Loopback News</title><link>https://loopback.example/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def item(n: int, title: str | None = None) -> str:
    return (
        f"<item><title>{title or f'Story {n}'}</title>"
        f"<link>https://loopback.example/story/{n}</link>"
        f'<guid isPermaLink="false">story-{n}</guid>'
        "<pubDate>Sun, 01 Mar 2026 10:00:00 GMT</pubDate>"
        f"<description>Text of story {n}.</description></item>"
    )


def shown(params: dict[str, Any]) -> str:
    """The first line of a sent or edited card, as the reader sees it."""
    text = str(params.get("text", params.get("caption", "")))
    if params.get("parse_mode") == "HTML":
        text = check_telegram_html(text)
    return text.split("\n")[0]


@dataclass
class Rig:
    runtime: Runtime
    sender: Sender
    clock: ManualClock
    fake: FakeTelegram
    route: Route
    new_sender: Callable[[], Sender]

    async def poll(self) -> None:
        report = await self.runtime.poller.run_round(all_feeds=True)
        assert report is not None
        assert [o.status for o in report.outcomes] != ["failed"], report.outcomes

    async def poll_and_send(self, seconds_later: float = 0) -> None:
        self.clock.advance(seconds_later)
        await self.poll()
        await self.sender.drain(within=30)

    async def send_due(self, seconds_later: float) -> None:
        self.clock.advance(seconds_later)
        await self.sender.drain(within=30)

    def cards(self, chat_id: int) -> list[str]:
        return [shown(p) for p in self.fake.sent_messages(chat_id)] + [
            shown(c.params) for c in self.fake.calls("sendPhoto", chat_id) if c.ok
        ]

    def edits(self, chat_id: int) -> list[str]:
        return [shown(p) for p in self.fake.edited_messages(chat_id)]

    def edit_calls(self, chat_id: int | None = None) -> int:
        return len(self.fake.calls("editMessageText", chat_id)) + len(
            self.fake.calls("editMessageCaption", chat_id)
        )


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    made = fake_telegram.make_bot()
    async with made:
        yield made


@pytest.fixture
async def make_rig(
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    bot: Bot,
    tmp_path: Path,
    database_url: str,
) -> AsyncIterator[Callable[..., Any]]:
    """Builds a rig on each backend in turn: a feed at /feed.xml serving
    ``body``, chats subscribed to its category, a runtime and a sender."""
    opened: list[Runtime] = []

    async def factory(
        body: bytes,
        *,
        chats: tuple[int, ...] = (PRIVATE, GROUP),
        send_message: Callable[..., Any] | None = None,
        **delivery: Any,
    ) -> Rig:
        route = feed_server.serve("/feed.xml", body)
        config: Config = loopback_config(
            tmp_path,
            [{"url": feed_server.url("/feed.xml"), "categories": ["news"]}],
            categories=[{"id": "news", "title": "News"}],
        )
        settings = {"private_chat_interval": 0.05, "group_chat_interval": 0.05, **delivery}
        config = config.model_copy(update={"delivery": DeliveryConfig(**settings)})
        if database_url.startswith("postgresql://"):
            storage = config.storage.model_copy(update={"url": database_url})
            config = config.model_copy(update={"storage": storage})
        clock = ManualClock(NOW)
        runtime = await Runtime.open(config, clock=clock)
        opened.append(runtime)
        for chat_id in chats:
            kind = "private" if chat_id > 0 else "supergroup"
            await runtime.storage.chats.upsert_chat(chat_id, kind, None, None, NOW)
            await runtime.storage.chats.subscribe(chat_id, ["news"], NOW)

        def new_sender() -> Sender:
            return Sender(
                runtime.storage,
                send_message or bot.send_message,
                config.delivery,
                clock,
                {"news": "News"},
                edit_message_text=bot.edit_message_text,
                edit_message_caption=bot.edit_message_caption,
            )

        return Rig(runtime, new_sender(), clock, fake_telegram, route, new_sender)

    yield factory
    for runtime in opened:
        await runtime.close()


async def sent_story(make_rig: Callable[..., Any], **options: Any) -> Rig:
    """A rig whose chats each got one card, "Story 2" (the first fetch is
    quiet, the second brings the story)."""
    rig: Rig = await make_rig(rss(item(1)), **options)
    await rig.poll_and_send()
    rig.route.body = rss(item(2), item(1))
    await rig.poll_and_send(60)
    for chat_id in options.get("chats", (PRIVATE, GROUP)):
        assert rig.cards(chat_id) == ["Story 2"]
    return rig


# -- end to end ------------------------------------------------------------------


async def test_a_corrected_headline_edits_each_sent_card_once_and_sends_no_second_card(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig)
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    # The edit waits out the interval for further corrections.
    assert rig.edit_calls() == 0

    await rig.send_due(EDIT_INTERVAL.total_seconds())
    for chat_id in (PRIVATE, GROUP):
        assert rig.cards(chat_id) == ["Story 2"]
        assert rig.edits(chat_id) == ["Story 2, corrected"]
        (card,) = rig.fake.sent_messages(chat_id)
        message_id = rig.fake.calls("sendMessage", chat_id)[0].result["message_id"]
        assert rig.fake.edited_messages(chat_id)[0]["message_id"] == message_id
        content = rig.fake.message_content(chat_id, message_id) or ""
        assert content.startswith("Story 2, corrected\n")
        # Its buttons stay, and Share shares the corrected headline.
        (sent_buttons,) = card["reply_markup"]["inline_keyboard"]
        (edited_buttons,) = rig.fake.edited_messages(chat_id)[0]["reply_markup"]["inline_keyboard"]
        assert [b["text"] for b in edited_buttons] == [b["text"] for b in sent_buttons]
        assert edited_buttons[0] == sent_buttons[0]
        assert "Story%202%2C%20corrected" in edited_buttons[1]["url"]

    # Nothing more to do: no second edit, no second card, however long.
    await rig.poll_and_send(3600)
    assert rig.edit_calls() == 2
    assert await rig.runtime.storage.edits.waiting_edits() == 0
    assert await rig.runtime.storage.outbox.delivery_counts() == {"sent": 2}


async def test_three_corrections_within_ten_minutes_make_one_edit_with_the_latest(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    for version in ("v1", "v2", "v3"):
        rig.route.body = rss(item(2, f"Story 2 {version}"), item(1))
        await rig.poll_and_send(120)
    assert rig.edit_calls() == 0

    await rig.send_due(EDIT_INTERVAL.total_seconds())
    assert rig.edits(PRIVATE) == ["Story 2 v3"]

    # A correction soon after the edit waits until the interval since it is over.
    rig.route.body = rss(item(2, "Story 2 v4"), item(1))
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds() - 120)
    assert rig.edits(PRIVATE) == ["Story 2 v3"]
    await rig.send_due(120)
    assert rig.edits(PRIVATE) == ["Story 2 v3", "Story 2 v4"]
    assert rig.cards(PRIVATE) == ["Story 2"]


async def test_a_correction_after_the_edit_window_edits_nothing(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, edit_window=3600)
    rig.route.body = rss(item(2, "Story 2, corrected a day later"), item(1))
    await rig.poll_and_send(86400)
    assert await rig.runtime.storage.edits.waiting_edits() == 0
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    assert rig.edit_calls() == 0
    assert rig.cards(PRIVATE) == rig.cards(GROUP) == ["Story 2"]


async def test_an_edit_left_waiting_past_the_window_while_no_sender_ran_is_dropped(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,), edit_window=3600)
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    rig.clock.advance(60)
    await rig.poll()
    assert await rig.runtime.storage.edits.waiting_edits() == 1
    await rig.send_due(2 * 3600)
    assert rig.edit_calls() == 0
    assert await rig.runtime.storage.edits.waiting_edits() == 0


async def test_a_correction_near_the_end_of_the_window_is_edited_before_it_closes(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,), edit_window=3600)
    rig.route.body = rss(item(2, "Story 2, corrected late"), item(1))
    await rig.poll_and_send(3600 - 60)
    await rig.send_due(60)
    assert rig.edits(PRIVATE) == ["Story 2, corrected late"]


async def test_an_edit_of_a_deleted_card_is_dropped_quietly(
    make_rig: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    message_id = rig.fake.calls("sendMessage", PRIVATE)[0].result["message_id"]
    rig.fake.delete_message(PRIVATE, message_id)
    caplog.set_level(logging.INFO, logger="bot")

    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    (refused,) = rig.fake.calls("editMessageText", PRIVATE)
    assert not refused.ok and "message to edit not found" in refused.response["description"]

    # Not tried again: neither later, nor for the next correction.
    await rig.send_due(3600)
    rig.route.body = rss(item(2, "Story 2, corrected again"), item(1))
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    assert rig.edit_calls() == 1
    assert rig.cards(PRIVATE) == ["Story 2"]
    assert await rig.runtime.storage.edits.waiting_edits() == 0
    senders = ("bot.deliver", "bot.edit_delivery", "bot.pacing", "bot.outcomes")
    noisy = [r for r in caplog.records if r.name in senders and r.levelno >= logging.INFO]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert (await rig.runtime.storage.chats.get_chat(PRIVATE)) is not None
    assert await rig.runtime.storage.chats.suspended_chats() == []


async def test_an_edit_that_is_already_shown_counts_as_done(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    # Someone (another sender that died before recording it) made the edit already.
    rig.fake.fail_next(
        "editMessageText",
        ApiError(400, "Bad Request: message is not modified: specified new message content"),
    )
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    await rig.send_due(3600)
    assert rig.edit_calls() == 1
    assert await rig.runtime.storage.edits.waiting_edits() == 0


async def test_an_edit_refused_for_lost_rights_suspends_the_chat_like_a_send(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig)
    rig.fake.set_member(GROUP, DEFAULT_BOT_ID, "restricted", can_send_messages=False)
    rig.fake.set_member(PRIVATE, DEFAULT_BOT_ID, "kicked")  # the user blocked the bot
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds())

    storage = rig.runtime.storage
    (suspended,) = await storage.chats.suspended_chats()
    assert suspended.id == GROUP and "not enough rights" in suspended.reason.lower()
    blocked = await storage.chats.get_chat(PRIVATE)
    assert blocked is not None and not blocked.active
    # The group's edit waits for the right to post, like its cards; it is
    # not tried while the chat is suspended.
    assert await storage.edits.waiting_edits() == 1
    await rig.send_due(3600)
    assert rig.edit_calls(GROUP) == 1 and rig.edit_calls(PRIVATE) == 1

    rig.fake.set_member(GROUP, DEFAULT_BOT_ID, "administrator", can_post_messages=True)
    assert await storage.chats.resume_chat(GROUP, rig.clock.now())
    await rig.send_due(1)
    assert rig.edits(GROUP) == ["Story 2, corrected"]
    assert rig.cards(GROUP) == ["Story 2"]


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_control_on_an_edit_pauses_the_chat_and_the_edit_follows(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    rig.fake.fail_next("editMessageText", ApiError.retry_after(30), chat_id=PRIVATE)
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    # The chat waits (in the database, for every sender), and so does its edit.
    assert rig.edits(PRIVATE) == []
    assert await rig.runtime.storage.edits.next_edit_time() == rig.clock.now() + timedelta(
        seconds=30
    )
    await rig.send_due(29)
    assert rig.edit_calls() == 1

    # A sender started afresh (the first one keeps the pause in real time).
    rig.sender = rig.new_sender()
    await rig.send_due(1)
    assert rig.edits(PRIVATE) == ["Story 2, corrected"]
    assert rig.edit_calls() == 2


async def test_new_cards_and_edits_share_the_flood_budget(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,), private_chat_interval=0.4)
    # Telegram's limit for one private chat; the sender paces twice as slowly,
    # so only a real second message inside the spacing would be refused.
    rig.fake.enable_flood_limits(FloodLimits(private_chat_interval=0.2))
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    # When the edit falls due, a new story comes too: a card and an edit
    # for the same chat, both due at once.
    rig.route.body = rss(item(3), item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(EDIT_INTERVAL.total_seconds())
    assert rig.fake.flood_429_count == 0
    assert rig.cards(PRIVATE) == ["Story 2", "Story 3"]
    assert rig.edits(PRIVATE) == ["Story 2, corrected"]


async def test_a_photo_card_is_edited_by_its_caption(
    make_rig: Callable[..., Any], bot: Bot
) -> None:
    async def send_as_photo(**params: Any) -> Message:
        # A card sent as a photo with the card as its caption.
        return await bot.send_photo(
            chat_id=params["chat_id"],
            photo="https://loopback.example/story.jpg",
            caption=params["text"],
            parse_mode=params.get("parse_mode"),
            reply_markup=params.get("reply_markup"),
        )

    rig = await sent_story(make_rig, chats=(PRIVATE,), send_message=send_as_photo)
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    assert rig.fake.calls("editMessageText") == []
    (edit,) = rig.fake.edited_messages(PRIVATE)
    assert shown(edit) == "Story 2, corrected" and "caption" in edit


async def test_a_real_feed_with_a_changed_title_edits_the_card(
    make_rig: Callable[..., Any],
) -> None:
    body = (REAL_FEEDS / "rss-news-bbc-frontpage.rss.xml").read_bytes()
    items = list(re.finditer(rb"<item>.*?</item>", body, re.DOTALL))
    first = items[0]
    without_first = body[: first.start()] + body[first.end() :]
    title = re.search(rb"<title>(.*?)</title>", first.group(0), re.DOTALL)
    assert title is not None
    original = title.group(1)
    corrected_item = first.group(0).replace(original, original + b" (updated)", 1)
    corrected = body[: first.start()] + corrected_item + body[first.end() :]

    rig: Rig = await make_rig(without_first, chats=(PRIVATE,))
    await rig.poll_and_send()
    rig.route.body = body
    await rig.poll_and_send(60)
    (card,) = rig.cards(PRIVATE)
    rig.route.body = corrected
    await rig.poll_and_send(60)
    await rig.send_due(EDIT_INTERVAL.total_seconds())
    (edited,) = rig.edits(PRIVATE)
    assert edited == card + " (updated)"
    assert len(rig.cards(PRIVATE)) == 1


# -- storage: the queue on both backends --------------------------------------------


async def test_a_correction_during_an_edit_is_edited_after_it(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    storage = rig.runtime.storage
    rig.route.body = rss(item(2, "Story 2 v1"), item(1))
    await rig.poll_and_send(60)
    rig.clock.advance(EDIT_INTERVAL.total_seconds())
    (claimed,) = await storage.edits.claim_edits(rig.clock.now(), 10, worker="a", lease_seconds=300)
    assert claimed.article.title == "Story 2 v1" and claimed.kind == "text"
    # A second sender does not get it while the lease holds.
    assert await storage.edits.claim_edits(rig.clock.now(), 10, worker="b", lease_seconds=300) == []

    rig.route.body = rss(item(2, "Story 2 v2"), item(1))
    await rig.poll()  # while "a" is editing
    done_at = rig.clock.now()
    await storage.edits.mark_edited(claimed, done_at, done_at + EDIT_INTERVAL)
    assert await storage.edits.next_edit_time() == done_at + EDIT_INTERVAL
    rig.clock.advance(EDIT_INTERVAL.total_seconds())
    (again,) = await storage.edits.claim_edits(rig.clock.now(), 10, worker="b", lease_seconds=300)
    assert again.article.title == "Story 2 v2"
    await storage.edits.mark_edited(again, rig.clock.now(), None)
    assert await storage.edits.waiting_edits() == 0


async def test_an_edit_whose_sender_died_is_taken_by_the_next_after_its_lease(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    storage = rig.runtime.storage
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    rig.clock.advance(EDIT_INTERVAL.total_seconds())
    assert await storage.edits.claim_edits(rig.clock.now(), 10, worker="dead", lease_seconds=300)
    await rig.send_due(60)
    assert rig.edit_calls() == 0
    await rig.send_due(300)
    assert rig.edits(PRIVATE) == ["Story 2, corrected"]


async def test_the_new_active_sender_takes_over_the_edits_a_dead_one_claimed(
    make_rig: Callable[..., Any],
) -> None:
    rig = await sent_story(make_rig, chats=(PRIVATE,))
    storage = rig.runtime.storage
    rig.route.body = rss(item(2, "Story 2, corrected"), item(1))
    await rig.poll_and_send(60)
    rig.clock.advance(EDIT_INTERVAL.total_seconds())
    assert await storage.edits.claim_edits(rig.clock.now(), 10, worker="dead", lease_seconds=300)
    assert await storage.edits.take_over_edit_claims(rig.sender.worker) == 1
    await rig.sender.drain(within=30)
    assert rig.edits(PRIVATE) == ["Story 2, corrected"]


async def test_caption_edits_count_against_a_groups_message_budget() -> None:
    """The bot's rate limiter holds an edited photo card like a new card
    once the group's 20 messages a minute are used up."""
    limiter = MessageRateLimiter(max_retries=0)
    await limiter.initialize()

    async def answer(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        return {"ok": True}

    for _ in range(20):
        await limiter.process_request(
            answer, (), {}, "sendMessage", {"chat_id": GROUP, "text": "x"}, None
        )
    edit = asyncio.create_task(
        limiter.process_request(
            answer, (), {}, "editMessageCaption", {"chat_id": GROUP, "caption": "x"}, None
        )
    )
    # Held for most of a minute, not answered straight away.
    done, _ = await asyncio.wait([edit], timeout=0.5)
    assert not done
    edit.cancel()
    await limiter.shutdown()


# -- the pure rules -----------------------------------------------------------------

SENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=48)


def test_the_first_correction_waits_one_interval_for_more() -> None:
    changed = SENT + timedelta(hours=1)
    due = edit_due(
        changed_at=changed, sent_at=SENT, edit_window=WINDOW, waiting_due=None, last_edited_at=None
    )
    assert due == changed + EDIT_INTERVAL


def test_a_correction_while_an_edit_waits_goes_with_it() -> None:
    waiting = SENT + timedelta(hours=1)
    due = edit_due(
        changed_at=waiting - timedelta(minutes=1),
        sent_at=SENT,
        edit_window=WINDOW,
        waiting_due=waiting,
        last_edited_at=None,
    )
    assert due == waiting


def test_a_correction_after_the_window_is_not_edited() -> None:
    due = edit_due(
        changed_at=SENT + WINDOW + timedelta(seconds=1),
        sent_at=SENT,
        edit_window=WINDOW,
        waiting_due=None,
        last_edited_at=None,
    )
    assert due is None


def test_an_edit_never_falls_due_after_the_window() -> None:
    changed = SENT + WINDOW - timedelta(minutes=1)
    due = edit_due(
        changed_at=changed, sent_at=SENT, edit_window=WINDOW, waiting_due=None, last_edited_at=None
    )
    assert due == SENT + WINDOW
    # ... unless that would edit twice within an interval: then not at all.
    recently = SENT + WINDOW - timedelta(minutes=2)
    assert (
        edit_due(
            changed_at=changed,
            sent_at=SENT,
            edit_window=WINDOW,
            waiting_due=None,
            last_edited_at=recently,
        )
        is None
    )


def test_a_zero_window_edits_nothing() -> None:
    assert (
        edit_due(
            changed_at=SENT + timedelta(seconds=1),
            sent_at=SENT,
            edit_window=timedelta(0),
            waiting_due=None,
            last_edited_at=None,
        )
        is None
    )


@given(
    sent=st.integers(0, 10**6),
    changed=st.integers(0, 3 * 10**5),
    edited=st.one_of(st.none(), st.integers(0, 3 * 10**5)),
    window=st.integers(0, 2 * 10**5),
)
def test_edits_are_at_least_an_interval_apart_and_inside_the_window(
    sent: int, changed: int, edited: int | None, window: int
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    sent_at = base + timedelta(seconds=sent)
    changed_at = sent_at + timedelta(seconds=changed)
    last = None if edited is None else sent_at + timedelta(seconds=min(edited, changed))
    due = edit_due(
        changed_at=changed_at,
        sent_at=sent_at,
        edit_window=timedelta(seconds=window),
        waiting_due=None,
        last_edited_at=last,
    )
    if due is None:
        return
    assert changed_at <= due <= sent_at + timedelta(seconds=window)
    if last is not None:
        assert due >= last + EDIT_INTERVAL
    assert not edit_too_late(sent_at, due, timedelta(seconds=window))


def test_another_edit_follows_one_interval_later_inside_the_window() -> None:
    edited = SENT + timedelta(hours=1)
    assert next_edit_after(edited, SENT, WINDOW) == edited + EDIT_INTERVAL
    assert next_edit_after(SENT + WINDOW - timedelta(minutes=1), SENT, WINDOW) is None


def test_an_edit_left_over_long_after_the_window_is_too_late() -> None:
    assert not edit_too_late(SENT, SENT + WINDOW + EDIT_INTERVAL, WINDOW)
    assert edit_too_late(SENT, SENT + WINDOW + EDIT_INTERVAL + timedelta(seconds=1), WINDOW)


@pytest.mark.parametrize(
    "reason",
    [
        "Bad Request: message to edit not found",
        "Bad Request: message can't be edited",
        "Bad Request: MESSAGE_ID_INVALID",
        "Bad Request: there is no text in the message to edit",
    ],
)
def test_telegrams_words_for_a_card_that_cannot_be_edited(reason: str) -> None:
    assert message_gone(reason) and not not_modified(reason)


def test_telegrams_words_for_an_edit_already_shown() -> None:
    reason = "Bad Request: message is not modified: specified new message content and ..."
    assert not_modified(reason) and not message_gone(reason)
    assert not message_gone("Forbidden: bot was blocked by the user")


def test_the_edit_window_is_48_hours_unless_configured() -> None:
    assert DeliveryConfig().edit_window == 48 * 3600
    assert DeliveryConfig(edit_window="90m").edit_window == 5400  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edit_window"):
        DeliveryConfig(edit_window=-1)
