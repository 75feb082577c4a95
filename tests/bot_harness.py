"""The whole bot, running in-process against the fake Bot API and the loopback
feed server, for the command, permission and hostile-input tests.

``running_bot`` starts ``NewsbotApplication`` (PTB polling, the JobQueue
poller, the outbox sender) with three feeds already served. ``BotHarness.ask``
pushes updates and returns every Bot API call the bot made while handling
them. It knows when the bot is done without sleeping: PTB handles updates one
at a time, in order, so after the pushed updates it pushes a sentinel ``/help``
from a chat of its own and waits for that reply; whatever the bot did for the
earlier updates has been answered by then. This is also how a test proves that
the bot stayed silent. The work an update starts in the background (an
/addfeed discovery) is waited for as well, unless the test says not to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from bot.clock import Clock
from bot.config import Config, parse_config
from bot.fetch import NO_NETWORK, Network
from bot.i18n import SUPPORTED_LANGUAGES, translator
from bot.netguard import Resolver
from bot.storage import Storage
from bot.telegram.app import NewsbotApplication
from bot.telegram.feed_pending import running_discoveries
from tests.fake_telegram import DEFAULT_BOT_ID, DEFAULT_USER_ID, JSON, Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

BOT_ID = DEFAULT_BOT_ID
ALICE = DEFAULT_USER_ID  # the operator (listed in [telegram] admins)
BOB = 1002
CAROL = 1003
SENTINEL_CHAT = 999_000_001
# Telegram's stand-in sender for anonymous group admins.
GROUP_ANONYMOUS_BOT = 1_087_968_824

# A 32-character id, the longest allowed: toggle buttons for a channel carry
# it and the channel's id, and must still fit in 64 bytes of callback_data.
LONG_ID = "a_very_long_category_identifier_"
CATEGORIES: list[dict[str, Any]] = [
    {"id": "space", "title": "Space"},
    {"id": "science", "title": "Science"},
    {"id": "ai_robotics", "title": "AI and Robotics"},
    {"id": LONG_ID, "title": "Long Reads"},
]

# What the feeds hold when the bot starts: 12 + 8 + 5 articles, 25 in all.
SPACE_TITLES = [f"Rover mission update {n}" for n in range(1, 13)]
SCIENCE_TITLES = [f"Physics paper {n}" for n in range(1, 9)]
ROBOT_TITLES = [f"Robot arm {n}" for n in range(1, 6)]
SEEDED = len(SPACE_TITLES) + len(SCIENCE_TITLES) + len(ROBOT_TITLES)

APOLOGY = "Sorry, something went wrong"
# The error handler's apology in every language the bot speaks.
APOLOGIES = [
    translator(language).gettext("Sorry, something went wrong. Please try again later.")
    for language in SUPPORTED_LANGUAGES
]
_OUTPUT_METHODS = frozenset(
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery"}
)


def item(key: str, title: str, *, hours_ago: float = 1.0, link: str | None = None) -> str:
    """An RSS item published ``hours_ago`` before the real now (the bot runs on
    the system clock, and /categories counts this week's articles)."""
    published = datetime.now(UTC) - timedelta(hours=hours_ago)
    return (
        f"<item><title>{xml_escape(title)}</title>"
        f"<link>{xml_escape(link or f'https://loopback.example/{key}')}</link>"
        f'<guid isPermaLink="false">{xml_escape(key)}</guid>'
        f"<pubDate>{format_datetime(published, usegmt=True)}</pubDate>"
        f"<description>About {xml_escape(title)}.</description></item>"
    )


def rss(*items: str, title: str = "Loopback News") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://loopback.example/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def space_items(*extra: str) -> bytes:
    seeded = [item(f"space-{n}", t, hours_ago=n) for n, t in enumerate(SPACE_TITLES, 1)]
    return rss(*extra, *seeded, title="Space Daily")


def harness_config(
    tmp_path: Path,
    fake: FakeTelegram,
    feeds: FeedServer,
    *,
    polling: dict[str, Any] | None = None,
    extra_feeds: list[dict[str, Any]] | None = None,
    websub: dict[str, Any] | None = None,
    telegram: dict[str, Any] | None = None,
    **delivery: Any,
) -> Config:
    settings: dict[str, Any] = {"private_chat_interval": 0.2, "group_chat_interval": 0.2}
    settings.update(delivery)
    return parse_config(
        {
            "telegram": {
                "token": fake.token,
                "base_url": fake.base_url,
                "admins": [ALICE],
                **(telegram or {}),
            },
            "storage": {"path": str(tmp_path / "bot.db")},
            "polling": {"interval": 1, "jitter": 0, "parse_workers": 1, **(polling or {})},
            "delivery": settings,
            # Health alerts to ALICE would land amid the exchanges under test
            # (tests/test_operator_alerts.py turns them on).
            "alerts": {"enabled": False},
            # No push unless a test turns it on (and names where hubs call back).
            "websub": websub or {"enabled": False},
            "categories": CATEGORIES,
            "feeds": [
                {"url": feeds.url("/space.xml"), "categories": ["space"], "name": "Space Daily"},
                {"url": feeds.url("/science.xml"), "categories": ["science"]},
                {"url": feeds.url("/robots.xml"), "categories": ["ai_robotics"]},
                *(extra_feeds or []),
            ],
        }
    )


@dataclass
class Exchange:
    """The Bot API calls the bot made while handling some updates."""

    calls: list[Call]

    def of(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and (chat_id is None or c.chat_id == chat_id)
        ]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        return self.of("sendMessage", chat_id)

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [str(c.params["text"]) for c in self.sent(chat_id)]

    def reply(self, chat_id: int) -> Call:
        """The one message sent to ``chat_id``."""
        sent = self.sent(chat_id)
        assert len(sent) == 1, f"expected one reply to {chat_id}, got {self.texts(chat_id)}"
        return sent[0]

    def text(self, chat_id: int) -> str:
        """The one reply to ``chat_id`` as the user sees it (HTML parsed)."""
        return check_telegram_html(str(self.reply(chat_id).params["text"]))

    def answer(self) -> Call:
        """The one answerCallbackQuery."""
        (answer,) = self.of("answerCallbackQuery")
        return answer

    def check(self) -> None:
        """Everything the bot said was accepted, valid HTML, and no apology
        from the error handler (which means a handler raised)."""
        for call in self.calls:
            if call.method not in _OUTPUT_METHODS:
                continue
            if call.method.startswith("edit") and "not modified" in str(call.response):
                continue  # a repeated edit (a double tap): harmless, and the bot shrugs
            assert call.ok, f"{call.method} refused: {call.response} for {call.params}"
            text = str(call.params.get("text", ""))
            if call.params.get("parse_mode") == "HTML":
                check_telegram_html(text)
            assert not any(a in text for a in APOLOGIES), f"a handler failed: {call.params}"
            if call.method in ("sendMessage", "editMessageText"):
                # PTB sends an empty text as "[]" when Defaults are set.
                assert text.strip() not in ("", "[]"), f"an empty reply: {call.params}"
            assert text != "Something went wrong.", f"a button handler failed: {call.params}"


def keyboard(call: Call) -> list[list[dict[str, Any]]]:
    """The inline keyboard of a sendMessage or edit call."""
    markup = call.params.get("reply_markup") or {}
    assert isinstance(markup, dict)
    rows: list[list[dict[str, Any]]] = markup.get("inline_keyboard", [])
    return rows


def buttons(call: Call) -> list[dict[str, Any]]:
    return [button for row in keyboard(call) for button in row]


def message_id(call: Call) -> int:
    """The id of the message a sendMessage call created."""
    assert call.ok and isinstance(call.result, dict)
    value = call.result["message_id"]
    assert isinstance(value, int)
    return value


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class BotHarness:
    def __init__(self, fake: FakeTelegram, feeds: FeedServer, app: NewsbotApplication) -> None:
        self.fake = fake
        self.feeds = feeds
        self.app = app
        self._errors = _ErrorRecords()

    @property
    def storage(self) -> Storage:
        assert self.app.services is not None
        return self.app.services.runtime.storage

    @property
    def error_logs(self) -> list[str]:
        return [r.getMessage() for r in self._errors.records]

    async def ask(self, *updates: JSON, check: bool = True, settle: bool = True) -> Exchange:
        """Push ``updates``; return the calls made until all were handled and,
        with ``settle``, until the feed discoveries they started are done."""
        start = len(self.fake.calls())
        answered = len(self.fake.calls("sendMessage", SENTINEL_CHAT))
        for update in updates:
            self.fake.push_update(update)
        self.fake.push_update(self.fake.message(SENTINEL_CHAT, "/help"))
        await self.fake.wait_for_async(
            "sendMessage", chat_id=SENTINEL_CHAT, count=answered + 1, timeout=15
        )
        if settle:
            await asyncio.wait_for(
                running_discoveries(self.app.application.bot_data).settled(), timeout=15
            )
        calls = [
            c
            for c in self.fake.calls()[start:]
            if c.method != "getUpdates" and c.chat_id != SENTINEL_CHAT
        ]
        exchange = Exchange(calls)
        if check:
            exchange.check()
        return exchange

    async def say(self, chat_id: int, text: str, **options: Any) -> Exchange:
        """A user's message in ``chat_id`` (private unless the id says otherwise)."""
        return await self.ask(self.fake.message(chat_id, text, **options))

    async def press(
        self, chat_id: int, user_id: int, data: str, *, message_id: int | None = None
    ) -> Exchange:
        """``user_id`` presses a button with ``data`` (on message ``message_id``)."""
        return await self.ask(
            self.fake.callback_query(chat_id, user_id, data, message_id=message_id)
        )

    async def articles(self) -> int:
        return await self.storage.articles.article_count()


async def eventually(
    condition: Callable[[], Awaitable[bool]], within: float = 15.0, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{what or condition.__name__} did not happen"
        await asyncio.sleep(0.05)


def serve_seed_feeds(feeds: FeedServer) -> None:
    feeds.serve("/space.xml", space_items())
    feeds.serve(
        "/science.xml",
        rss(
            *(item(f"sci-{n}", t, hours_ago=n) for n, t in enumerate(SCIENCE_TITLES, 1)),
            # Older than a week: stored and searchable, not counted by /categories.
            item("sci-old", "Archived physics review", hours_ago=24 * 10),
            title="Science Weekly",
        ),
    )
    feeds.serve(
        "/robots.xml",
        rss(*(item(f"bot-{n}", t, hours_ago=n) for n, t in enumerate(ROBOT_TITLES, 1))),
    )


@asynccontextmanager
async def running_bot(
    tmp_path: Path,
    fake: FakeTelegram,
    feeds: FeedServer,
    *,
    wait_for_articles: bool = True,
    expect_error_logs: bool = False,
    polling: dict[str, Any] | None = None,
    extra_feeds: list[dict[str, Any]] | None = None,
    feed_network: Network = NO_NETWORK,
    feed_resolver: Resolver | None = None,
    clock: Clock | None = None,
    websub: dict[str, Any] | None = None,
    telegram: dict[str, Any] | None = None,
    **delivery: Any,
) -> AsyncIterator[BotHarness]:
    """Start the bot with the seed feeds served; by default wait until their
    first fetch is stored. On exit, fail if anything logged an ERROR.
    ``clock``: the bot's time (a ManualClock moves only when the test says)."""
    serve_seed_feeds(feeds)
    config = harness_config(
        tmp_path,
        fake,
        feeds,
        polling=polling,
        extra_feeds=extra_feeds,
        websub=websub,
        telegram=telegram,
        **delivery,
    )
    # Runtime feeds (public addresses only) reach the loopback feed server
    # through a stub resolver and sockets that refuse the real network.
    app = (
        NewsbotApplication(
            config, clock=clock, feed_network=feed_network, feed_resolver=feed_resolver
        )
        if feed_resolver is not None
        else NewsbotApplication(config, clock=clock, feed_network=feed_network)
    )
    harness = BotHarness(fake, feeds, app)
    root = logging.getLogger()
    root.addHandler(harness._errors)
    try:
        # poll_interval=0: the fake long-polls, so PTB waits on the socket
        # instead of sleeping between getUpdates calls.
        async with app.running(poll_interval=0.0):
            if wait_for_articles:

                async def seed_feeds_stored() -> bool:
                    return await harness.articles() == SEEDED + 1

                await eventually(seed_feeds_stored)
            yield harness
    finally:
        root.removeHandler(harness._errors)
    if not expect_error_logs:
        assert not harness.error_logs, f"ERROR logged: {harness.error_logs}"


def anonymous_admin_message(fake: FakeTelegram, group_id: int, text: str) -> JSON:
    """A message an anonymous group admin sends: Telegram signs it with the
    group itself (``sender_chat``) and a placeholder bot user."""
    update = fake.message(group_id, text, user_id=GROUP_ANONYMOUS_BOT)
    message = update["message"]
    message["from"] = {
        "id": GROUP_ANONYMOUS_BOT,
        "is_bot": True,
        "first_name": "Group",
        "username": "GroupAnonymousBot",
    }
    message["sender_chat"] = dict(message["chat"])
    return update


def labels(call: Call) -> list[str]:
    return [b["text"] for b in buttons(call)]


def data_of(call: Call) -> list[str]:
    return [b["callback_data"] for b in buttons(call) if "callback_data" in b]


def headline_count(html: str) -> int:
    return html.count("<a href=")
