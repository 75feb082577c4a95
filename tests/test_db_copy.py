"""Moving a live installation from SQLite to PostgreSQL: ``newsbot db copy``
over the real-world corpus, then the copied bot delivering what was pending."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.clock import SystemClock
from bot.config import DeliveryConfig
from bot.deliver import Sender
from bot.storage.copy import TABLES
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.support import REAL_FEED_FILES, REAL_FEEDS, open_test_storage

CATEGORIES = {"news": "News"}


def write_config(tmp_path: Path, feed_server: FeedServer) -> Path:
    feeds = "".join(
        f'\n[[feeds]]\nurl = "{feed_server.url("/" + path.name)}"\ncategories = ["news"]\n'
        for path in REAL_FEED_FILES
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\npath = "{tmp_path / "newsbot.db"}"\n'
        '[polling]\ninterval = "10m"\njitter = 0\nparse_workers = 1\n'
        '[[categories]]\nid = "news"\ntitle = "News"\n' + feeds,
        encoding="utf-8",
    )
    return config


async def table_counts(where: str) -> dict[str, int]:
    storage = await open_test_storage(where)
    try:
        return {
            t.name: int(await storage.db.fetchval(f"SELECT count(*) FROM {t.name}")) for t in TABLES
        }
    finally:
        await storage.close()


@pytest.mark.slow
async def test_db_copy_moves_every_row_once_and_the_copied_bot_delivers_what_was_pending(
    tmp_path: Path,
    feed_server: FeedServer,
    postgres_url: str,
    fake_telegram: FakeTelegram,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path in REAL_FEED_FILES:
        feed_server.serve_file("/" + path.name, path)
    config = write_config(tmp_path, feed_server)
    poll = ["--config", str(config), "--log-level", "ERROR", "poll", "--once"]
    # The CLI runs its own event loop: give it a thread of its own.
    assert await asyncio.to_thread(main, poll) == 0
    database = tmp_path / "newsbot.db"

    # Two readers, and a second round in which one feed has a new story:
    # pending cards for both, as a live bot's outbox would hold them.
    now = datetime.now(UTC)
    storage = await open_test_storage(database)
    try:
        for chat_id in (501, 502):
            await storage.chats.upsert_chat(chat_id, "private", f"Reader {chat_id}", None, now)
            await storage.chats.subscribe(chat_id, ["news"], now)
        wordpress = REAL_FEEDS / "wordpress-news-arstechnica.rss.xml"
        item = (
            b"<item><title>Copied across</title><link>https://copy.example/new</link>"
            b"<guid>copy-new</guid><description>Moved to PostgreSQL.</description></item>"
        )
        body = wordpress.read_bytes().replace(b"<item>", item + b"<item>", 1)
        feed_server.serve("/" + wordpress.name, body)
        await storage.state.set_state_if_absent("webhook_secret", "s3cret-value", now)
    finally:
        await storage.close()
    capsys.readouterr()
    assert await asyncio.to_thread(main, poll) == 0
    source = await table_counts(str(database))
    assert source["articles"] > 3000
    assert source["deliveries"] >= 2
    capsys.readouterr()

    argv = ["--config", str(config), "db", "copy", "--from", str(database), "--to", postgres_url]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    for table in TABLES:  # a progress line per table
        assert f"  {table.name} " in out
    assert await table_counts(postgres_url) == source

    # Again: nothing is copied twice.
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert all(line.rstrip().endswith(" 0 new") for line in out.splitlines() if " rows, " in line)
    assert await table_counts(postgres_url) == source

    # The copied bot delivers the pending cards.
    copied = await open_test_storage(postgres_url)
    try:
        bot = fake_telegram.make_bot()
        async with bot:
            sender = Sender(
                copied,
                bot.send_message,
                DeliveryConfig(
                    private_chat_interval=0.2, max_age=timedelta(days=3650).total_seconds()
                ),
                SystemClock(),
                CATEGORIES,
            )
            await sender.drain(within=60)
        assert not await copied.outbox.has_pending_deliveries()
        for chat_id in (501, 502):
            assert any("Copied across" in text for text in fake_telegram.sent_texts(chat_id))
        # New rows get ids past the copied ones.
        await copied.chats.upsert_chat(503, "private", None, None, now)
        assert await copied.state.get_state("webhook_secret") == "s3cret-value"
    finally:
        await copied.close()


async def test_db_copy_knows_every_table_of_both_schemas(tmp_path: Path) -> None:
    """A table added by a migration but missing from the copy would be lost
    silently by the move to PostgreSQL."""
    storage = await open_test_storage(str(tmp_path / "newsbot.db"))
    try:
        rows = await storage.db.fetch(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' AND name NOT LIKE 'articles_fts%'"
        )
    finally:
        await storage.close()
    assert {r[0] for r in rows} == {t.name for t in TABLES}
