"""End to end, in one process: the loopback feed server, the fake Telegram Bot
API and the whole bot (PTB Application, JobQueue polling, outbox sender)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.config import Config, parse_config
from bot.telegram import startup
from bot.telegram.app import NewsbotApplication
from tests.fake_telegram import Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html
from tests.test_pipeline import item, rss

SPACE_READER = 1001
SCIENCE_READER = 1002


def bot_config(tmp_path: Path, fake: FakeTelegram, feeds: FeedServer, **delivery: Any) -> Config:
    return parse_config(
        {
            "telegram": {"token": fake.token, "base_url": fake.base_url, "admins": [SPACE_READER]},
            "storage": {"path": str(tmp_path / "bot.db")},
            "polling": {"interval": 1, "jitter": 0, "parse_workers": 1},
            "delivery": delivery,
            "categories": [
                {"id": "space", "title": "Space", "keywords": ["rocket"]},
                {"id": "science", "title": "Science"},
                {"id": "ai_robotics", "title": "AI and Robotics", "aliases": ["Robotics"]},
            ],
            "feeds": [
                {"url": feeds.url("/space.xml"), "categories": ["space"], "name": "Space Daily"},
                {"url": feeds.url("/science.xml"), "categories": ["science"]},
            ],
        }
    )


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"{condition.__name__} did not happen"
        await asyncio.sleep(0.05)


def is_send_to(chat_id: int, containing: str) -> Any:
    def match(call: Call) -> bool:
        return (
            call.method == "sendMessage"
            and call.chat_id == chat_id
            and containing in str(call.params.get("text", ""))
        )

    return match


def markup(call: Call) -> dict[str, Any]:
    value = call.params.get("reply_markup")
    return json.loads(value) if isinstance(value, str) else dict(value or {})


async def test_subscribed_chat_gets_the_new_space_article_once_and_commands_answer(
    tmp_path: Path, feed_server: FeedServer, fake_telegram: FakeTelegram
) -> None:
    fake = fake_telegram
    feed_server.serve("/space.xml", rss(item(1, "Old launch report")))
    feed_server.serve("/science.xml", rss(item(2, "Old physics paper")))
    app = NewsbotApplication(bot_config(tmp_path, fake, feed_server))
    async with app.running():
        assert app.services is not None
        storage = app.services.runtime.storage

        # Readers subscribe in their own chats.
        fake.push_update(fake.message(SPACE_READER, "/subscribe space"))
        fake.push_update(fake.message(SCIENCE_READER, "/subscribe@newsbot_test_bot Science"))
        await fake.wait_for_async(is_send_to(SPACE_READER, "Subscribed to Space"))
        await fake.wait_for_async(is_send_to(SCIENCE_READER, "Subscribed to Science"))

        # The first fetch stores what the feeds already had, without sending it.
        async def both_feeds_stored() -> bool:
            return len(await storage.articles.latest_articles(None, 10)) == 2

        await eventually(both_feeds_stored)

        # A new space story appears.
        feed_server.serve(
            "/space.xml",
            rss(
                item(
                    3,
                    "New rocket &amp; &lt;engine&gt; test",
                    link="https://loopback.example/rocket?a=1&amp;b=2",
                ),
                item(1, "Old launch report"),
            ),
        )
        card = await fake.wait_for_async(is_send_to(SPACE_READER, "New rocket"), timeout=20)

        assert card.params["parse_mode"] == "HTML"
        text = check_telegram_html(card.params["text"])
        assert text.startswith("New rocket & <engine> test")
        assert "Space Daily" in text and "#space" in text
        preview = card.params["link_preview_options"]
        preview = json.loads(preview) if isinstance(preview, str) else preview
        assert preview["url"] == "https://loopback.example/rocket?a=1&b=2"
        assert preview.get("prefer_large_media") is True
        (buttons,) = markup(card)["inline_keyboard"]
        assert [b["text"] for b in buttons] == ["Read", "Share"]
        assert buttons[0]["url"] == "https://loopback.example/rocket?a=1&b=2"
        share = parse_qs(urlsplit(buttons[1]["url"]).query)
        assert share["url"] == ["https://loopback.example/rocket?a=1&b=2"]

        # /latest and /search answer from the same store.
        fake.push_update(fake.message(SCIENCE_READER, "/latest space"))
        latest = await fake.wait_for_async(is_send_to(SCIENCE_READER, "Latest in Space"))
        assert "New rocket" in latest.params["text"]
        check_telegram_html(latest.params["text"])
        fake.push_update(fake.message(SCIENCE_READER, "/search rocket engine"))
        found = await fake.wait_for_async(is_send_to(SCIENCE_READER, "Results for"))
        assert "New rocket" in found.params["text"]

        # Two more polling rounds, and nothing left for the sender: still one
        # card, one chat.
        fetched = feed_server.hits("/space.xml")

        async def two_more_rounds_and_nothing_pending() -> bool:
            return (
                feed_server.hits("/space.xml") >= fetched + 2
                and "pending" not in await storage.outbox.delivery_counts()
            )

        await eventually(two_more_rounds_and_nothing_pending)
        cards = [c for c in fake.calls("sendMessage") if "New rocket" in str(c.params["text"])]
        assert [
            c.chat_id
            for c in cards
            if "Results" not in c.params["text"] and "Latest" not in c.params["text"]
        ] == [SPACE_READER]
        assert not [c for c in fake.sent_messages(SCIENCE_READER) if "#space" in c["text"]]
    # The bot registered its commands with descriptions: the menu without a
    # language first, then one per language it speaks.
    commands = fake.calls("setMyCommands")[0]
    names = (
        [c["command"] for c in json.loads(commands.params["commands"])]
        if isinstance(commands.params["commands"], str)
        else [c["command"] for c in commands.params["commands"]]
    )
    assert {"start", "subscribe", "latest", "search"} <= set(names)


async def test_a_start_without_telegram_polls_feeds_and_serves_once_telegram_answers(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(startup, "START_RETRY_FIRST", 0.05)
    monkeypatch.setattr(startup, "START_RETRY_MAX", 0.2)
    fake = fake_telegram
    feed_server.serve("/space.xml", rss(item(1, "Launch while offline")))
    feed_server.serve("/science.xml", rss(item(2, "Physics while offline")))
    config = bot_config(tmp_path, fake, feed_server)
    fake.go_offline()  # no route to Telegram when the bot starts
    app = NewsbotApplication(config)
    stop = asyncio.Event()

    async def run_bot() -> None:
        async with app.running():
            await stop.wait()

    def attempts() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "cannot reach the Bot API" in r.getMessage()]

    running = asyncio.create_task(run_bot())
    try:

        async def feeds_stored() -> bool:
            runtime = app.runtime
            return (
                runtime is not None
                and len(await runtime.storage.articles.latest_articles(None, 10)) == 2
            )

        await eventually(feeds_stored)

        async def retried_a_few_times() -> bool:
            return len(attempts()) >= 3

        await eventually(retried_a_few_times)
        assert app.services is None  # the bot itself has not started
        assert config.heartbeat_path.exists()  # the container stays healthy meanwhile

        fake.go_online()
        fake.push_update(fake.message(SPACE_READER, "/latest"))
        answer = await fake.wait_for_async(is_send_to(SPACE_READER, "Latest headlines"), timeout=20)
        assert "Launch while offline" in answer.params["text"]
    finally:
        stop.set()
        await running

    numbers = [r.args[0] for r in attempts() if isinstance(r.args, tuple)]
    assert numbers == list(range(1, len(numbers) + 1))  # one line per attempt
    assert all(r.exc_info is None and r.levelno <= logging.WARNING for r in caplog.records)
    assert "Traceback" not in caplog.text
