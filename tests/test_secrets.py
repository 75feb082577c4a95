"""The bot token never leaks: not in the log (at DEBUG, through network
errors, a failing handler, a token rejected at start-up or revoked while
running), not in the database files, not in any message sent to a user."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bot.config import parse_config
from bot.logs import RedactingFilter, setup_logging
from bot.telegram.app import NewsbotApplication
from tests.fake_telegram import ApiError, FakeTelegram
from tests.faults import BotProcess, db_count, eventually, subscribe_readers, write_config
from tests.feed_server import FeedServer
from tests.test_pipeline import item, rss

# Shaped like a real token (digits, a colon, 35 URL-safe characters).
TOKEN = "7012345678:AAE9xQm_Z3kLwP0bN7vR2tY5uI8oS1dF4gH"
SECRET = TOKEN.split(":", 1)[1]
READER = 4001
CLUMSY = 4002


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(token=TOKEN) as fake:
        yield fake
    assert not fake.internal_errors


def leaks(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return SECRET.encode() in data


def sent_texts(fake: FakeTelegram) -> list[str]:
    return [str(c.params) for c in fake.calls()]


def files_under(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_file()]


def test_a_rejected_token_is_never_printed(tmp_path: Path, telegram: FakeTelegram) -> None:
    config = write_config(tmp_path, telegram, ["http://127.0.0.1:9/feed.xml"])
    wrong = "7099999999:AAHsomeOtherRevokedTokenValue_zyxwvu1"
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "--log-level", "DEBUG", "run"],
        env={**os.environ, "NEWSBOT_TOKEN": wrong},
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert b"the bot token was rejected" in result.stderr
    assert wrong.split(":")[1].encode() not in output, output.decode()[-2000:]


@pytest.mark.slow
async def test_the_token_stays_secret_through_errors_of_every_kind(
    tmp_path: Path, feed_server: FeedServer, telegram: FakeTelegram
) -> None:
    fake = telegram
    db = tmp_path / "bot.db"
    feed_server.serve("/news.xml", rss(item(1, "Old story")))
    config = write_config(tmp_path, fake, [feed_server.url("/news.xml")])
    await subscribe_readers(db, [READER])
    bot = BotProcess(config, TOKEN, tmp_path / "bot.log", log_level="DEBUG").start()
    try:
        await eventually(
            lambda: db_count(db, "SELECT count(*) FROM feeds WHERE ever_fetched") == 1,
            what="the first fetch",
        )
        # A card goes out.
        feed_server.serve("/news.xml", rss(item(2, "Fresh story"), item(1, "Old story")))
        await fake.wait_for_async("sendMessage", chat_id=READER, timeout=30)

        # A handler fails (its reply is refused): logged with a traceback,
        # and the user gets an apology.
        fake.fail_next("sendMessage", ApiError(400, "Bad Request: odd failure"), chat_id=CLUMSY)
        fake.push_update(fake.message(CLUMSY, "/help"))
        await fake.wait_for_async(
            lambda c: c.ok and "went wrong" in str(c.params.get("text")),
            chat_id=CLUMSY,
            timeout=30,
        )

        # Telegram unreachable for a while: connection errors everywhere.
        fake.go_offline("refuse")
        await eventually(lambda: "ConnectError" in bot.log(), what="a connection error logged")
        fake.go_online()

        # The token is revoked: every call answers 401.
        fake.token = "7000000000:AAHnewTokenAfterRevocation_000000000"
        feed_server.serve(
            "/news.xml", rss(item(3, "Later story"), item(2, "Fresh story"), item(1, "Old"))
        )
        await eventually(
            lambda: "rejected the bot token" in bot.log(), within=60, what="the sender to notice"
        )
        await eventually(
            lambda: "Invalid token" in bot.log(), within=60, what="the update poller to notice"
        )
        # It still stops on SIGTERM (PTB's own stop raises here), closes the
        # database and says why it failed.
        assert await bot.terminate(within=60) == 2
        assert "newsbot: telegram: the bot token was rejected" in bot.log()
    finally:
        bot.ensure_stopped()

    log = bot.log()
    assert "Traceback" in log  # the failing handler was logged in full
    assert not leaks(log), [line for line in log.splitlines() if SECRET in line][:5]
    for file in files_under(tmp_path):
        assert not leaks(file.read_bytes()), file
    assert not any(leaks(text) for text in sent_texts(fake))


async def test_a_handler_exception_quoting_the_token_is_redacted(
    tmp_path: Path, feed_server: FeedServer, telegram: FakeTelegram
) -> None:
    fake = telegram
    config = parse_config(
        {
            "telegram": {"token": TOKEN, "base_url": fake.base_url},
            "storage": {"path": str(tmp_path / "bot.db")},
            "polling": {"interval": 600, "parse_workers": 1},
            "feeds": [{"url": feed_server.url("/none.xml")}],
        }
    )

    async def clumsy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # A library error that quotes the request URL, token and all.
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    setup_logging("DEBUG")
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    assert isinstance(handler, logging.StreamHandler)
    captured = io.StringIO()
    previous = handler.setStream(captured)
    try:
        app = NewsbotApplication(config)
        app.application.add_handler(CommandHandler("clumsy", clumsy), group=-1)
        async with app.running():
            fake.push_update(fake.message(CLUMSY, "/clumsy"))
            await fake.wait_for_async(
                lambda c: "went wrong" in str(c.params.get("text")), chat_id=CLUMSY, timeout=30
            )
            await asyncio.sleep(0)
    finally:
        handler.setStream(previous)
        root.setLevel(level)
        for added in set(root.handlers) - set(handlers):
            root.removeHandler(added)
    output = captured.getvalue()
    assert "RuntimeError: POST https://api.telegram.org/bot<token>/sendMessage failed" in output
    assert not leaks(output)
    assert not any(leaks(text) for text in sent_texts(fake))
    for file in files_under(tmp_path):
        assert not leaks(file.read_bytes()), file
