"""Forum topics in storage, on SQLite and PostgreSQL: where a category's
cards go, the topic a card is queued for, and falling back to General."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.filters import Term, parse_term
from bot.storage import Storage
from bot.storage.chats import SubscribedTopic, Topic
from bot.storage.copy import copy_database
from bot.storage.db import PostgresDatabase, SqliteDatabase
from tests.support import open_test_storage
from tests.test_storage import LATER, NOW, article, current, one_feed, store

FORUM = -1_000_000_004_001


def filter_term(raw: str) -> Term:
    parsed = parse_term(raw)
    assert isinstance(parsed, Term)
    return parsed


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


async def test_db_copy_carries_filters_tags_and_topics_to_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    source = await open_test_storage(tmp_path / "newsbot.db")
    target = await open_test_storage(postgres_url)
    try:
        feed = await one_feed(source)
        await source.chats.upsert_chat(FORUM, "supergroup", "Forum", None, NOW)
        await source.chats.subscribe(FORUM, ["tech"], NOW, topic=Topic(5, "Gadgets"))
        await source.chats.add_filters(FORUM, "tech", [filter_term("-rumor*")], NOW)
        tagged = article("a", categories=["tech"]).model_copy(update={"tags": ("NASA",)})
        await store(source, feed, [tagged])
        assert isinstance(source.db, SqliteDatabase)
        assert isinstance(target.db, PostgresDatabase)

        await copy_database(source.db, target.db)

        assert await target.chats.subscription_topics(FORUM) == [
            SubscribedTopic("tech", Topic(5, "Gadgets"))
        ]
        assert await target.chats.chat_filters(FORUM) == await source.chats.chat_filters(FORUM)
        (copied,) = await target.articles.latest_articles(None, 5)
        assert copied.tags == ("NASA",)
    finally:
        await source.close()
        await target.close()
