"""What ``--log-level DEBUG`` shows: the program's own debugging lines, never
a secret the database or a request holds (WebSub hub secrets, the webhook
secret, the bot token)."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.config import parse_config
from bot.logs import QUIET_LOGGERS, RedactingFilter, setup_logging
from bot.telegram.app import NewsbotApplication
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.support import open_test_storage
from tests.test_pipeline import item
from tests.test_websub import pushed_feed
from tests.websub_hub import WebSubHub

# Shaped like a real token (digits, a colon, 35 URL-safe characters).
TOKEN = "7012345678:AAE9xQm_Z3kLwP0bN7vR2tY5uI8oS1dF4gH"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """The log the program writes with ``--log-level DEBUG``, as text."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    setup_logging("DEBUG")
    (handler,) = [
        h for h in root.handlers if any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    assert isinstance(handler, logging.StreamHandler)
    captured = io.StringIO()
    previous = handler.setStream(captured)
    try:
        yield captured
    finally:
        handler.setStream(previous)
        root.setLevel(level)
        for added in set(root.handlers) - set(handlers):
            root.removeHandler(added)
        for name, held in quiet.items():
            logging.getLogger(name).setLevel(held)


async def test_debug_logs_never_show_a_hub_secret(
    tmp_path: Path,
    database_url: str,
    feed_server: FeedServer,
    websub_hub: WebSubHub,
    debug_log: io.StringIO,
) -> None:
    url = feed_server.url("/pushed.xml")
    feed_server.serve("/pushed.xml", pushed_feed(websub_hub, feed_server, item("a", "A")))
    storage = (
        f'url = "{database_url}"'
        if database_url.startswith("postgres")
        else f'path = "{database_url.removeprefix("sqlite://")}"'
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"[storage]\n{storage}\n\n[polling]\nparse_workers = 1\n\n"
        '[websub]\ncallback_url = "https://bot.example/websub"\n\n'
        f'[[feeds]]\nurl = "{url}"\n'
    )
    # A polling round notes the hub the feed names, with a new secret.
    argv = ["--config", str(config), "--log-level", "DEBUG", "poll", "--once"]
    assert await asyncio.to_thread(main, argv) == 0
    opened = await open_test_storage(database_url)
    try:
        (subscription,) = await opened.websub.subscriptions()
    finally:
        await opened.close()
    output = debug_log.getvalue()
    assert "websub: feed" in output  # the round was logged
    assert subscription.secret not in output


async def test_debug_logs_of_a_running_bot_never_show_the_token_or_the_webhook_secret(
    tmp_path: Path, feed_server: FeedServer, debug_log: io.StringIO
) -> None:
    with FakeTelegram(token=TOKEN) as fake:
        config = parse_config(
            {
                "telegram": {"token": TOKEN, "base_url": fake.base_url},
                "storage": {"path": str(tmp_path / "bot.db")},
                "polling": {"interval": 600, "parse_workers": 1},
                "feeds": [{"url": feed_server.url("/none.xml")}],
            }
        )
        app = NewsbotApplication(config)
        async with app.running():
            # The generated webhook secret, stored in the database on first use.
            generated = await app.webhook_secret()
            fake.push_update(fake.message(4001, "/help"))
            await fake.wait_for_async("sendMessage", chat_id=4001, timeout=30)
    output = debug_log.getvalue()
    assert "Calling Bot API endpoint `sendMessage`" in output  # PTB's DEBUG lines are there
    # PTB logs the Bot API URL at DEBUG, token and all: the filter redacts it.
    assert f"{fake.base_url}<token>" in output
    for secret in (TOKEN.split(":", 1)[1], generated):
        assert secret not in output
