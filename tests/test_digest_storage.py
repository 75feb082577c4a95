"""Held cards and digests in the outbox, on SQLite and PostgreSQL: held
cards are never claimed, a digest is claimed once through its oldest card,
and its cards are sent, failed or dropped together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import FeedConfig
from bot.digest import (
    HELD_FOR_CAP,
    HELD_FOR_DIGEST,
    HELD_FOR_QUIET,
    KIND_DIGEST,
    KIND_MORE,
    KIND_QUIET,
)
from bot.models import NewArticle
from bot.storage import Storage
from tests.support import open_test_storage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = 300.0


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def article(key: str, categories: tuple[str, ...] = ("tech",)) -> NewArticle:
    return NewArticle(
        key=key,
        url=f"https://news.example/{key}",
        title=f"Story {key}",
        summary="",
        author=None,
        published=NOW,
        image_url=None,
        categories=categories,
    )


async def queue_cards(storage: Storage, chats: dict[int, int]) -> None:
    """``chats[chat_id]`` new cards for each chat (every chat gets every
    article; the extra ones are for the chats that want more)."""
    await storage.feeds.sync_feeds(
        [FeedConfig(url="https://news.example/feed", categories=["tech"])], NOW
    )
    for chat_id in chats:
        await storage.chats.upsert_chat(chat_id, "private", None, None, NOW)
        await storage.chats.subscribe(chat_id, ["tech"], NOW)
    (feed,) = await storage.feeds.due_feeds(NOW + timedelta(days=3650))
    await store(storage, feed, [article("seed")], NOW)
    (feed,) = await storage.feeds.due_feeds(NOW + timedelta(days=3650))
    count = max(chats.values())
    await store(storage, feed, [article(f"a{n}") for n in range(count)], NOW)


async def store(storage: Storage, feed: object, articles: list[NewArticle], now: datetime) -> None:
    await storage.articles.store_articles(
        feed,  # type: ignore[arg-type]
        articles,
        now=now,
        next_check=now + timedelta(minutes=10),
        feed_title="Example News",
        site_url="https://news.example/",
        body_hash=f"hash-{len(articles)}",
        etag=None,
        last_modified=None,
        fetch_url=None,
        deliver_limit=1_000_000,
    )


async def claim(storage: Storage, now: datetime = NOW, worker: str = "w1") -> list[int]:
    rows = await storage.outbox.claim_deliveries(now, 100, worker=worker, lease_seconds=LEASE)
    return [row.chat_id for row in rows]


async def test_held_cards_are_never_claimed_and_not_waited_for(storage: Storage) -> None:
    await queue_cards(storage, {1: 3})
    (row,) = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    held = await storage.outbox.hold_cards(1, HELD_FOR_QUIET, NOW + timedelta(hours=1), "w1")
    assert held == 3  # the claimed card and the two behind it
    assert await claim(storage, NOW + timedelta(hours=2)) == []
    assert not await storage.outbox.has_pending_deliveries()
    assert await storage.outbox.next_delivery_time() is None
    (summary,) = await storage.outbox.held_summaries()
    assert summary.chat_id == 1 and not summary.for_digest
    assert summary.first_until == NOW + timedelta(hours=1)
    cards = await storage.outbox.held_cards(1)
    assert [c.reason for c in cards] == [HELD_FOR_QUIET] * 3
    assert row.id == cards[0].id


async def test_holding_leaves_a_card_another_sender_claimed_alone(storage: Storage) -> None:
    await queue_cards(storage, {1: 2})
    await storage.outbox.claim_deliveries(NOW, 100, worker="other", lease_seconds=LEASE)
    assert await storage.outbox.hold_cards(1, HELD_FOR_DIGEST, None, "w1") == 1
    (summary,) = await storage.outbox.held_summaries()
    assert summary.for_digest and summary.first_until is None


async def test_a_new_card_behind_held_ones_is_claimed_so_that_it_can_be_held(
    storage: Storage,
) -> None:
    await queue_cards(storage, {1: 1})
    await storage.outbox.hold_cards(1, HELD_FOR_DIGEST, None, "w1")
    (feed,) = await storage.feeds.due_feeds(NOW + timedelta(days=3650))
    await store(storage, feed, [article("late")], NOW + timedelta(minutes=1))
    (row,) = await storage.outbox.claim_deliveries(
        NOW + timedelta(minutes=1), 100, worker="w1", lease_seconds=LEASE
    )
    assert row.article.title == "Story late" and row.digest_id is None


async def test_a_digest_is_claimed_once_through_its_oldest_card_and_sent_whole(
    storage: Storage,
) -> None:
    await queue_cards(storage, {1: 4, 2: 4})
    await storage.outbox.hold_cards(1, HELD_FOR_DIGEST, None, "w1")
    ids = [c.id for c in await storage.outbox.held_cards(1)]
    assert await storage.outbox.gather_digest(1, KIND_DIGEST, ids, None, NOW, NOW) == 4
    assert await storage.outbox.held_summaries() == []
    rows = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    digest_rows = [r for r in rows if r.chat_id == 1]
    assert len(digest_rows) == 1 and digest_rows[0].digest_id is not None
    # One claim per chat: the digest's other cards are not handed out.
    assert await claim(storage, NOW, "w2") == []
    digest = await storage.outbox.digest_to_send(digest_rows[0].digest_id)
    assert digest.kind == KIND_DIGEST
    assert sorted(a.title for a in digest.articles) == [f"Story a{n}" for n in range(4)]
    assert await storage.outbox.mark_digest_sent(digest.id, 77, NOW) == 4
    counts = await storage.outbox.delivery_counts()
    assert counts == {"sent": 4, "pending": 4}  # chat 2: its claimed card and three behind
    assert await storage.outbox.last_digest_times([1]) == {1: NOW}
    # A digest's cards are not instant cards: the burst cap does not count them.
    assert await storage.outbox.recent_card_times([1], NOW - timedelta(hours=1)) == {}


async def test_a_failed_digest_fails_all_its_cards_and_only_them(storage: Storage) -> None:
    await queue_cards(storage, {1: 3})
    await storage.outbox.hold_cards(1, HELD_FOR_CAP, NOW, "w1")
    ids = [c.id for c in await storage.outbox.held_cards(1)]
    await storage.outbox.gather_digest(1, KIND_MORE, ids[:2], None, None, NOW)
    (row,) = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    assert row.digest_id is not None
    await storage.outbox.mark_failed(row.id, "rejected")
    assert await storage.outbox.delivery_counts() == {"failed": 2, "pending": 1}
    assert [c.id for c in await storage.outbox.held_cards(1)] == ids[2:]


async def test_a_dropped_card_drops_only_itself(storage: Storage) -> None:
    await queue_cards(storage, {1: 2})
    (row,) = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    await storage.outbox.mark_dropped(row.id, "too old")
    assert await storage.outbox.delivery_counts() == {"dropped": 1, "pending": 1}


async def test_released_cards_are_claimed_as_cards_again(storage: Storage) -> None:
    await queue_cards(storage, {1: 2})
    await storage.outbox.hold_cards(1, HELD_FOR_QUIET, NOW, "w1")
    ids = [c.id for c in await storage.outbox.held_cards(1)]
    assert await storage.outbox.release_held(1, ids) == 2
    (row,) = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    assert row.digest_id is None and row.id == ids[0]


async def test_a_digest_goes_to_the_topic_it_was_gathered_for(storage: Storage) -> None:
    await queue_cards(storage, {1: 2})
    await storage.outbox.hold_cards(1, HELD_FOR_DIGEST, None, "w1")
    ids = [c.id for c in await storage.outbox.held_cards(1)]
    await storage.outbox.gather_digest(1, KIND_DIGEST, ids, 42, NOW, NOW)
    (row,) = await storage.outbox.claim_deliveries(NOW, 100, worker="w1", lease_seconds=LEASE)
    assert row.thread_id == 42


async def test_recent_card_times_are_the_instant_cards_sent_in_the_window(
    storage: Storage,
) -> None:
    await queue_cards(storage, {1: 3, 2: 3})
    for minutes in (0, 30, 90):
        for row in await storage.outbox.claim_deliveries(
            NOW, 100, worker="w1", lease_seconds=LEASE
        ):
            await storage.outbox.mark_sent(row.id, 1, NOW + timedelta(minutes=minutes))
    since = NOW + timedelta(minutes=20)
    recent = await storage.outbox.recent_card_times([1, 2, 3], since)
    expected = [NOW + timedelta(minutes=30), NOW + timedelta(minutes=90)]
    assert {chat: sorted(times) for chat, times in recent.items()} == {1: expected, 2: expected}


async def test_a_digest_is_due_at_its_digest_time_or_when_it_was_gathered(
    storage: Storage,
) -> None:
    await queue_cards(storage, {1: 2, 2: 2})
    slot = NOW - timedelta(hours=20)  # the bot was down over it
    for chat_id in (1, 2):
        await storage.outbox.hold_cards(chat_id, HELD_FOR_QUIET, NOW, "w1")
    one = [c.id for c in await storage.outbox.held_cards(1)]
    two = [c.id for c in await storage.outbox.held_cards(2)]
    await storage.outbox.gather_digest(1, KIND_DIGEST, one, None, slot, NOW)
    await storage.outbox.gather_digest(2, KIND_QUIET, two, None, None, NOW)
    rows = await storage.outbox.claim_deliveries(
        NOW + timedelta(hours=1), 100, worker="w1", lease_seconds=LEASE
    )
    due = {}
    for row in rows:
        assert row.digest_id is not None
        due[row.chat_id] = (await storage.outbox.digest_to_send(row.digest_id)).due_at
    assert due == {1: slot, 2: NOW}


async def test_an_empty_digest_time_is_remembered(storage: Storage) -> None:
    await queue_cards(storage, {1: 1})
    await storage.outbox.mark_digest_time(1, NOW, NOW)
    await storage.outbox.mark_digest_time(1, NOW + timedelta(hours=8), NOW + timedelta(hours=8))
    assert await storage.outbox.last_digest_times([1]) == {1: NOW + timedelta(hours=8)}
    # Pruning keeps each chat's latest digest time.
    await storage.outbox.prune_finished(NOW + timedelta(days=30))
    assert await storage.outbox.last_digest_times([1]) == {1: NOW + timedelta(hours=8)}


async def test_a_migrated_chat_keeps_its_held_cards(storage: Storage) -> None:
    await queue_cards(storage, {-1: 2})
    await storage.outbox.hold_cards(-1, HELD_FOR_DIGEST, None, "w1")
    await storage.chats.migrate_chat(-1, -1001, NOW)
    assert len(await storage.outbox.held_cards(-1001)) == 2


async def test_chats_in_digest_mode_are_the_active_ones_with_digest_times(
    storage: Storage,
) -> None:
    await queue_cards(storage, {1: 1, 2: 1, 3: 1, 4: 1})
    await storage.chats.update_chat_settings(1, {"digest_times": ("08:00",)}, NOW)
    await storage.chats.update_chat_settings(2, {"quiet_hours": ("23:00", "07:00")}, NOW)
    await storage.chats.update_chat_settings(3, {"digest_times": ("09:00",)}, NOW)
    await storage.chats.deactivate_chat(3, "blocked", NOW)
    await storage.chats.update_chat_settings(4, {"digest_times": ("08:00",)}, NOW)
    await storage.chats.update_chat_settings(4, {"digest_times": ()}, NOW)
    found = await storage.chats.chats_in_digest_mode()
    assert {chat: s.digest_times for chat, s in found.items()} == {1: ("08:00",)}
