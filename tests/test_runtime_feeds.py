"""Feeds added at runtime: they live in the database only, the config sync
leaves them alone, and any feed can be paused and resumed; on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import FeedConfig
from bot.storage import Storage
from tests.support import open_test_storage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FAR = NOW + timedelta(days=3650)


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def polled_urls(storage: Storage) -> list[str]:
    return sorted(f.url for f in await storage.feeds.due_feeds(FAR))


async def test_a_config_sync_leaves_runtime_feeds_alone(storage: Storage) -> None:
    await storage.feeds.sync_feeds([FeedConfig(url="https://config.example/feed")], NOW)
    added = await storage.feeds.add_runtime_feeds(
        [("https://runtime.example/feed", ["space"])], NOW
    )
    assert len(added) == 1
    # The file no longer lists its feed: only the config feed stops being polled.
    await storage.feeds.sync_feeds([], NOW)
    assert await polled_urls(storage) == ["https://runtime.example/feed"]
    (feed,) = [f for f in await storage.feeds.all_feeds() if f.origin == "runtime"]
    assert (feed.configured, feed.paused, feed.categories) == (True, False, ("space",))
    (config_feed,) = [f for f in await storage.feeds.all_feeds() if f.origin == "config"]
    assert not config_feed.configured


async def test_runtime_feeds_are_claimed_like_config_feeds(storage: Storage) -> None:
    (feed_id,) = await storage.feeds.add_runtime_feeds([("https://runtime.example/feed", [])], NOW)
    claimed = await storage.feeds.claim_due_feeds(NOW, "poller-a", 60)
    assert [(f.id, f.origin) for f in claimed] == [(feed_id, "runtime")]
    assert await storage.feeds.next_due_time() == NOW


async def test_adding_a_listed_url_again_changes_nothing(storage: Storage) -> None:
    await storage.feeds.sync_feeds([FeedConfig(url="https://config.example/feed")], NOW)
    assert (
        await storage.feeds.add_runtime_feeds([("https://config.example/feed", ["x"])], NOW) == []
    )
    (feed,) = await storage.feeds.all_feeds()
    assert (feed.origin, feed.categories) == ("config", ())


async def test_a_paused_feed_is_not_polled_until_resumed_and_a_sync_keeps_it_paused(
    storage: Storage,
) -> None:
    await storage.feeds.sync_feeds([FeedConfig(url="https://config.example/feed")], NOW)
    (feed,) = await storage.feeds.all_feeds()
    assert await storage.feeds.pause_feed(feed.id)
    await storage.feeds.sync_feeds([FeedConfig(url="https://config.example/feed")], NOW)
    assert await polled_urls(storage) == []
    assert await storage.feeds.claim_due_feeds(FAR, "poller-a", 60) == []
    assert await storage.feeds.next_due_time() is None
    assert await storage.feeds.resume_feed(feed.id, NOW)
    assert await polled_urls(storage) == ["https://config.example/feed"]
    assert not await storage.feeds.pause_feed(feed.id + 1000)


async def test_removing_a_runtime_feed_keeps_its_row_and_adding_it_again_lists_it(
    storage: Storage,
) -> None:
    (feed_id,) = await storage.feeds.add_runtime_feeds([("https://runtime.example/feed", [])], NOW)
    assert await storage.feeds.remove_runtime_feed(feed_id)
    assert await polled_urls(storage) == []
    (feed,) = await storage.feeds.all_feeds()
    assert (feed.id, feed.configured) == (feed_id, False)
    again = await storage.feeds.add_runtime_feeds([("https://runtime.example/feed", ["a"])], NOW)
    assert again == [feed_id]
    assert await polled_urls(storage) == ["https://runtime.example/feed"]


async def test_only_runtime_feeds_can_be_removed_at_runtime(storage: Storage) -> None:
    await storage.feeds.sync_feeds([FeedConfig(url="https://config.example/feed")], NOW)
    (feed,) = await storage.feeds.all_feeds()
    assert not await storage.feeds.remove_runtime_feed(feed.id)
    assert await polled_urls(storage) == ["https://config.example/feed"]


async def test_the_config_file_listing_a_runtime_feed_makes_it_a_config_feed(
    storage: Storage,
) -> None:
    await storage.feeds.add_runtime_feeds([("https://both.example/feed", [])], NOW)
    await storage.feeds.sync_feeds([FeedConfig(url="https://both.example/feed")], NOW)
    (feed,) = await storage.feeds.all_feeds()
    assert feed.origin == "config"


async def test_feed_counts_are_each_feeds_articles_published_since_a_time(
    storage: Storage,
) -> None:
    from tests.test_storage import article, store

    await storage.feeds.sync_feeds(
        [FeedConfig(url="https://a.example/feed"), FeedConfig(url="https://b.example/feed")], NOW
    )
    a, b = await storage.feeds.due_feeds(FAR)
    old = NOW - timedelta(days=8)
    await store(storage, a, [article("a1"), article("a2"), article("a-old", published=old)])
    await store(storage, b, [article("b-old", url="https://b.example/1", published=old)])
    assert await storage.articles.feed_counts(NOW - timedelta(days=7)) == {a.id: 2}
    assert await storage.articles.feed_counts(old) == {a.id: 3, b.id: 1}
