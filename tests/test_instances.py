"""Several ``newsbot run`` processes on one PostgreSQL database, in mixed
roles: two pollers sharing the feeds, two senders (one active, one on
standby), and one reader of Telegram's updates elected among two candidates. The active sender is killed with
SIGKILL in the middle of a fan-out of 300 cards to 100 chats: the standby
takes over, every card arrives, the duplicates are at most the cards in
flight at the kill, the fake Bot API (enforcing Telegram's flood limits)
answered no 429, and no feed was fetched by two pollers at once. Run with
``pytest -s`` to see the counts.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.roles import SENDER_LOCK
from tests.fake_telegram import FakeTelegram, FloodLimits
from tests.faults import BotProcess, eventually, write_config
from tests.feed_server import FeedServer
from tests.support import open_test_storage
from tests.test_delivery import headlines
from tests.test_pipeline import item, rss

pytestmark = pytest.mark.slow

CHATS = list(range(700_001, 700_101))  # 100 private chats
FEEDS = ("/a.xml", "/b.xml", "/c.xml")
INTERVAL = 4.0


async def active_sender_pid(url: str) -> int | None:
    """The process holding the sender's advisory lock (its lock connection
    is named after its pid)."""
    storage = await open_test_storage(url)
    try:
        name = await storage.db.fetchval(
            "SELECT a.application_name FROM pg_locks AS l "
            "JOIN pg_stat_activity AS a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.objid = ? AND l.granted",
            SENDER_LOCK,
        )
    finally:
        await storage.close()
    return int(str(name).split(":")[1]) if name else None


async def claimed_cards(url: str) -> int:
    storage = await open_test_storage(url)
    try:
        return int(
            await storage.db.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = 'pending' "
                "AND claimed_by IS NOT NULL"
            )
        )
    finally:
        await storage.close()


async def test_three_processes_in_mixed_roles_survive_the_active_sender_being_killed(
    tmp_path: Path,
    feed_server: FeedServer,
    fake_telegram: FakeTelegram,
    postgres_url: str,
    processes: list[BotProcess],
) -> None:
    fake = fake_telegram
    fake.enable_flood_limits(FloodLimits(per_bot_per_second=30, private_chat_interval=1.0))
    for n, path in enumerate(FEEDS):
        feed_server.serve(path, rss(item(f"seed-{n}", f"Seed story {n}")))
    config = write_config(
        tmp_path,
        fake,
        [feed_server.url(p) for p in FEEDS],
        storage_url=postgres_url,
        interval=INTERVAL,
        messages_per_second=20,
    )
    storage = await open_test_storage(postgres_url)  # migrates
    try:
        now = datetime.now(UTC)
        for chat_id in CHATS:
            await storage.chats.upsert_chat(chat_id, "private", None, None, now)
            await storage.chats.subscribe(chat_id, ["news"], now)
    finally:
        await storage.close()

    roles = {
        "updates-poller": "updates,poller",
        "poller-sender": "poller,sender",
        "sender": "sender",
    }
    bots = {
        name: BotProcess(config, fake.token, tmp_path / f"{name}.log", roles=role).start()
        for name, role in roles.items()
    }
    processes.extend(bots.values())

    async def seeds_stored() -> bool:
        checker = await open_test_storage(postgres_url)
        try:
            return await checker.articles.article_count() == len(FEEDS)
        finally:
            await checker.close()

    await eventually(seeds_stored, within=60, what="the first fetch of every feed")
    # One new story per feed: 3 x 100 = 300 cards.
    for n, path in enumerate(FEEDS):
        feed_server.serve(
            path, rss(item(f"new-{n}", f"Breaking story {n}"), item(f"seed-{n}", f"Seed story {n}"))
        )

    def delivered() -> int:
        return len([c for c in fake.calls("sendMessage") if c.ok and c.chat_id in CHATS])

    await eventually(lambda: delivered() >= 100, within=90, what="a third of the fan-out")
    victim_pid = await active_sender_pid(postgres_url)
    assert victim_pid is not None
    victim = next(b for b in bots.values() if b.process is not None and b.process.pid == victim_pid)
    claimed_at_kill = await claimed_cards(postgres_url)
    sent_at_kill = delivered()
    await victim.kill()

    expected = sorted(f"Breaking story {n}" for n in range(len(FEEDS)))

    def everyone_has_everything() -> bool:
        return all(sorted(set(headlines(fake, chat))) == expected for chat in CHATS)

    await eventually(everyone_has_everything, within=120, what="every card after the takeover")
    # Read before the others stop: a poller that stops gives back the feeds
    # it was fetching, and the one still running may fetch them at once.
    fetches = {path: [r.time for r in feed_server.requests(path)] for path in FEEDS}
    for bot in bots.values():
        if bot is not victim:
            assert await bot.terminate() == 0, bot.log()

    per_chat = Counter(c.chat_id for c in fake.calls("sendMessage") if c.ok and c.chat_id in CHATS)
    duplicates = sum(count - len(FEEDS) for count in per_chat.values())
    closest = min(
        (b - a for times in fetches.values() for a, b in itertools.pairwise(times)),
        default=INTERVAL,
    )
    print(
        f"\nmulti-instance: {len(CHATS)} chats, {len(CHATS) * len(FEEDS)} cards; "
        f"{sent_at_kill} sent before the kill, {claimed_at_kill} claimed at the kill, "
        f"{duplicates} duplicates, {fake.flood_429_count} x 429; "
        f"feed fetches {[len(t) for t in fetches.values()]}, closest two of a feed "
        f"{closest:.2f}s apart (interval {INTERVAL:g}s)"
    )
    assert duplicates <= claimed_at_kill
    assert fake.flood_429_count == 0
    # Two pollers never fetched one feed at once: a feed's fetches are an
    # interval apart (less the round's tick), never two in one round.
    assert closest > INTERVAL / 2
    logs = "".join(b.log() for b in bots.values())
    assert "Conflict" not in logs
    assert logs.count("this process is now the reader of Telegram's updates") >= 1
    # (The fake may still answer 409 to a long poll its client had given up
    # on: a killed reader's, or the one a stopping reader abandons when it
    # confirms the last offset. No live reader ever got one: none logged it.)
