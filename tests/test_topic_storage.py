"""Forum topics in storage, on SQLite and PostgreSQL: where a category's
cards go, the topic a card is queued for, and falling back to General."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.storage import Storage
from bot.storage.chats import SubscribedTopic, Topic
from tests.support import open_test_storage
from tests.test_storage import LATER, NOW, article, current, one_feed, store

FORUM = -1_000_000_004_001


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def forum(storage: Storage) -> None:
    await storage.chats.upsert_chat(FORUM, "supergroup", "Forum", None, NOW)


async def test_a_subscription_goes_to_its_topic_and_moves_with_the_next_one(
    storage: Storage,
) -> None:
    await forum(storage)
    assert await storage.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(5, "Gadgets")) == [
        "tech"
    ]
    assert await storage.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(5, "Gadgets")) == []
    # Without a topic (a button, the CLI) the subscription stays where it is.
    assert await storage.chats.subscribe(FORUM, ["tech", "space"], NOW) == ["space"]
    assert await storage.chats.subscription_topics(FORUM) == [
        SubscribedTopic("space", Topic(None)),
        SubscribedTopic("tech", Topic(5, "Gadgets")),
    ]

    assert await storage.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(None)) == ["tech"]
    assert await storage.chats.subscription_topics(FORUM) == [
        SubscribedTopic("space", Topic(None)),
        SubscribedTopic("tech", Topic(None)),
    ]


async def test_a_card_is_queued_for_its_categorys_topic(storage: Storage) -> None:
    feed = await one_feed(storage, ("tech", "space"))
    await forum(storage)
    await storage.chats.subscribe(FORUM, ["space"], NOW, topic=Topic(9, "Space"))
    await storage.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(5, "Gadgets"))
    await store(storage, feed, [article("seen")])
    (feed,) = await current(storage)

    await store(storage, feed, [article("a", "Both", categories=["tech", "space"])], now=LATER)

    (card,) = await storage.outbox.claim_deliveries(LATER, 10, worker="w", lease_seconds=60)
    assert card.thread_id == 5  # the first of the article's categories: tech


async def test_a_gone_topic_falls_back_to_general_with_its_waiting_cards(
    storage: Storage,
) -> None:
    feed = await one_feed(storage)
    await forum(storage)
    await storage.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(5, "Gadgets"))
    await store(storage, feed, [article("seen")])
    (feed,) = await current(storage)
    await store(storage, feed, [article("a", "Fresh", categories=["tech"])], now=LATER)
    (claimed,) = await storage.outbox.claim_deliveries(LATER, 10, worker="w", lease_seconds=60)
    assert claimed.thread_id == 5

    assert await storage.chats.topic_gone(FORUM, 5) == ["tech"]
    assert await storage.chats.topic_gone(FORUM, 5) == []  # said once

    assert await storage.chats.subscription_topics(FORUM) == [SubscribedTopic("tech", Topic(None))]
    # The claimed card is free again, now for General.
    (again,) = await storage.outbox.claim_deliveries(LATER, 10, worker="w2", lease_seconds=60)
    assert again.id == claimed.id and again.thread_id is None
