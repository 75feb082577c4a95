"""Crashes: ``newsbot run`` as a real process, killed with SIGKILL in the middle
of a fan-out and in the middle of a polling round, and stopped with SIGTERM.

The feed server and the fake Bot API run in the test process, so they see
exactly what the bot did before it died. After a restart: every card arrives,
at most once more for the ones in flight at the kill (Telegram accepted them,
the database never heard), no feed is half stored, and the database is sound.
Run with ``pytest -s`` to see the counts.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.fake_telegram import FakeTelegram
from tests.faults import BotProcess, db_count, eventually, query, subscribe_readers, write_config
from tests.feed_server import FeedServer
from tests.test_delivery import headlines
from tests.test_pipeline import item, rss

pytestmark = pytest.mark.slow


def launch(processes: list[BotProcess], config: Path, fake: FakeTelegram, name: str) -> BotProcess:
    process = BotProcess(config, fake.token, config.parent / f"{name}.log").start()
    processes.append(process)
    return process


async def fake_settled(fake: FakeTelegram) -> None:
    """Wait until every request that reached the fake has been answered."""
    await eventually(
        lambda: all(c.status is not None for c in fake.calls("sendMessage")),
        within=30,
        what="the fake to answer what it received",
    )


def in_flight(fake: FakeTelegram, db: Path) -> int:
    """Cards Telegram accepted that the database still has as pending: the
    ones a restart sends again."""
    pending = query(
        db,
        "SELECT d.chat_id, a.title FROM deliveries AS d JOIN articles AS a "
        "ON a.id = d.article_id WHERE d.status = 'pending'",
    )
    return sum(1 for chat_id, title in pending if title in headlines(fake, chat_id))


def tally(fake: FakeTelegram, readers: list[int], cards: list[str]) -> tuple[int, int]:
    """(lost, duplicates) over every reader and card; at most one duplicate
    per chat (the sender has one card in flight per chat)."""
    lost = duplicates = 0
    for chat_id in readers:
        got = Counter(headlines(fake, chat_id))
        assert set(got) <= set(cards), got
        lost += sum(1 for card in cards if got[card] == 0)
        extra = sum(got.values()) - len(set(got))
        assert extra <= 1, (chat_id, got)
        duplicates += extra
    return lost, duplicates


def integrity(db: Path) -> str:
    return str(query(db, "PRAGMA integrity_check")[0][0])


async def test_sigkill_in_the_middle_of_a_fan_out_loses_nothing(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    processes: list[BotProcess],
) -> None:
    fake = fake_telegram
    readers = list(range(10_001, 10_301))  # 300 chats
    cards = ["Breaking one", "Breaking two"]  # 600 cards in all
    db = tmp_path / "bot.db"
    feed_server.serve("/news.xml", rss(item(1, "Old story")))
    config = write_config(tmp_path, fake, [feed_server.url("/news.xml")])
    await subscribe_readers(db, readers)

    first = launch(processes, config, fake, "first")
    await eventually(
        lambda: db_count(db, "SELECT count(*) FROM feeds WHERE ever_fetched") == 1,
        what="the first (quiet) fetch",
    )
    feed_server.serve("/news.xml", rss(item(3, cards[1]), item(2, cards[0]), item(1, "Old story")))
    total = len(readers) * len(cards)
    await fake.wait_for_async(
        lambda c: c.method == "sendMessage" and c.ok, count=total // 3, timeout=60
    )
    await first.kill()
    await fake_settled(fake)
    sent_before = len(fake.sent_messages())
    assert integrity(db) == "ok"
    flying = in_flight(fake, db)
    assert sent_before < total  # killed mid-way

    second = launch(processes, config, fake, "second")
    await eventually(
        lambda: db_count(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == total,
        within=90,
        what="every card marked sent",
    )
    assert await second.terminate() == 0
    assert db_count(db, "SELECT count(*) FROM deliveries WHERE status != 'sent'") == 0
    lost, duplicates = tally(fake, readers, cards)
    print(
        f"\nSIGKILL mid fan-out: {total} cards, {sent_before} sent before the kill, "
        f"{flying} in flight, {duplicates} duplicates, {lost} lost"
    )
    assert lost == 0
    assert duplicates == flying  # exactly the in-flight ones, at most one per chat
    assert integrity(db) == "ok"


async def test_sigkill_in_the_middle_of_a_polling_round_leaves_no_half_stored_feed(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    processes: list[BotProcess],
) -> None:
    fake = fake_telegram
    feeds = 30
    readers = [20_001, 20_002]
    db = tmp_path / "bot.db"
    paths = [f"/feed{n}.xml" for n in range(feeds)]

    def old(n: int) -> list[str]:
        return [item(f"{n}-old{k}", f"Old {n}.{k}") for k in range(4)]

    for n, path in enumerate(paths):
        feed_server.serve(path, rss(*old(n)))
    # 90 cards per reader within the hour: past the burst cap they would
    # fold into one message, and this test counts cards.
    config = write_config(
        tmp_path,
        fake,
        [feed_server.url(p) for p in paths],
        private_chat_interval=0.05,
        max_cards_per_hour=1000,
    )
    await subscribe_readers(db, readers)

    first = launch(processes, config, fake, "first")
    await eventually(
        lambda: db_count(db, "SELECT count(*) FROM feeds WHERE ever_fetched") == feeds,
        what="every feed's first fetch",
    )
    # Every feed gains three stories, and the server turns slow: with two
    # requests at a time to this host, the round takes several seconds. The
    # last feed answers only after the kill, so the kill is mid-round
    # however quickly the rest goes.
    last = threading.Event()
    for n, path in enumerate(paths):
        new = [item(f"{n}-new{k}", f"New {n}.{k}") for k in range(3)]
        gate = last if n == feeds - 1 else None
        feed_server.serve(path, rss(*new, *old(n)), delay=0.4, gate=gate)
    new_stored = "SELECT count(DISTINCT feed_id) FROM articles WHERE title LIKE 'New %'"
    await eventually(lambda: db_count(db, new_stored) >= feeds // 3, what="a third of the round")
    await first.kill()
    stored_before = db_count(db, new_stored)
    assert integrity(db) == "ok"
    # One transaction per feed: all three new stories of a feed, or none.
    per_feed = query(
        db,
        "SELECT feed_id, count(*) FROM articles WHERE title LIKE 'New %' GROUP BY feed_id",
    )
    assert {count for _, count in per_feed} <= {3}, per_feed
    # Every stored story has its outbox rows, in the same transaction.
    assert (
        db_count(
            db,
            "SELECT count(*) FROM deliveries AS d JOIN articles AS a ON a.id = d.article_id "
            "WHERE a.title LIKE 'New %'",
        )
        == 3 * len(readers) * stored_before
    )
    assert stored_before < feeds  # killed mid-round

    last.set()
    for path in paths:
        feed_server.routes[path].delay = 0
    second = launch(processes, config, fake, "second")
    expected = feeds * 3 * len(readers)
    await eventually(
        lambda: db_count(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == expected,
        within=90,
        what="every new story delivered",
    )
    assert await second.terminate() == 0
    assert db_count(db, "SELECT count(*) FROM articles WHERE title LIKE 'New %'") == feeds * 3
    cards = [f"New {n}.{k}" for n in range(feeds) for k in range(3)]
    lost, duplicates = tally(fake, readers, cards)
    print(
        f"\nSIGKILL mid polling round: {stored_before}/{feeds} feeds stored before the kill, "
        f"{len(cards) * len(readers)} cards, {duplicates} duplicates, {lost} lost"
    )
    assert lost == 0
    assert duplicates <= len(readers)
    assert integrity(db) == "ok"


async def test_sigterm_mid_fan_out_exits_cleanly_and_loses_nothing(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    processes: list[BotProcess],
) -> None:
    fake = fake_telegram
    readers = list(range(30_001, 30_301))
    cards = ["Only story"]
    db = tmp_path / "bot.db"
    feed_server.serve("/news.xml", rss(item(1, "Old story")))
    config = write_config(tmp_path, fake, [feed_server.url("/news.xml")])
    await subscribe_readers(db, readers)

    first = launch(processes, config, fake, "first")
    await eventually(
        lambda: db_count(db, "SELECT count(*) FROM feeds WHERE ever_fetched") == 1,
        what="the first (quiet) fetch",
    )
    feed_server.serve("/news.xml", rss(item(2, cards[0]), item(1, "Old story")))
    await fake.wait_for_async(
        lambda c: c.method == "sendMessage" and c.ok, count=len(readers) // 3, timeout=60
    )
    loop = asyncio.get_running_loop()
    asked = loop.time()
    code = await first.terminate(within=30)
    took = loop.time() - asked
    await fake_settled(fake)
    sent_before = len(fake.sent_messages())
    assert code == 0, first.log()[-3000:]
    assert "Traceback" not in first.log(), first.log()[-3000:]
    assert integrity(db) == "ok"
    # A clean stop waits for the sends in flight and records them.
    assert in_flight(fake, db) == 0
    assert db_count(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == sent_before

    second = launch(processes, config, fake, "second")
    await eventually(
        lambda: (
            db_count(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == len(readers)
        ),
        within=60,
        what="every card marked sent",
    )
    assert await second.terminate() == 0
    lost, duplicates = tally(fake, readers, cards)
    print(
        f"\nSIGTERM mid fan-out: exit code {code} after {took:.1f}s, "
        f"{sent_before} sent before, {duplicates} duplicates, {lost} lost"
    )
    assert (lost, duplicates) == (0, 0)
    assert integrity(db) == "ok"
