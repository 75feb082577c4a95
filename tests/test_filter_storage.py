"""Keyword filters in storage, on SQLite and PostgreSQL: the chat's terms, and
routing that never queues a card the chat's filters refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.filters import MAX_TERMS, ChatFilter, Term, parse_term
from bot.models import NewArticle
from bot.storage import Storage
from tests.support import open_test_storage
from tests.test_storage import LATER, NOW, current, one_feed, outbox, store, subscribed_chat


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def term(raw: str) -> Term:
    parsed = parse_term(raw)
    assert isinstance(parsed, Term)
    return parsed


def story(
    key: str, title: str, summary: str = "", tags: tuple[str, ...] = (), *categories: str
) -> NewArticle:
    return NewArticle(
        key=key,
        url=f"https://news.example/{key}",
        title=title,
        summary=summary,
        author=None,
        published=NOW,
        image_url=None,
        categories=categories or ("tech",),
        tags=tags,
    )


async def test_filters_are_added_listed_and_cleared_per_category(storage: Storage) -> None:
    await subscribed_chat(storage, 1, "tech")
    added = await storage.chats.add_filters(1, None, [term("+mars"), term("-rumor*")], NOW)
    assert [t.signed for t in added.added] == ["+mars", "-rumor*"]
    await storage.chats.add_filters(1, "space", [term('+"space station"')], NOW)

    assert await storage.chats.chat_filters(1) == [
        ChatFilter(None, term("+mars")),
        ChatFilter(None, term("-rumor*")),
        ChatFilter("space", term('+"space station"')),
    ]
    assert await storage.chats.chat_filters(2) == []

    assert await storage.chats.clear_filters(1, "space") == 1
    assert len(await storage.chats.chat_filters(1)) == 2
    assert await storage.chats.clear_filters(1, None) == 2
    assert await storage.chats.chat_filters(1) == []


async def test_the_same_term_again_is_kept_once_and_the_other_sign_replaces_it(
    storage: Storage,
) -> None:
    await subscribed_chat(storage, 1, "tech")
    await storage.chats.add_filters(1, None, [term("+Café")], NOW)

    again = await storage.chats.add_filters(1, None, [term("+cafe")], NOW)
    assert again.added == [] and [t.signed for t in again.already] == ["+cafe"]
    flipped = await storage.chats.add_filters(1, None, [term("-CAFE")], NOW)
    assert [t.signed for t in flipped.added] == ["-CAFE"]
    # The same words for one category are a separate term.
    await storage.chats.add_filters(1, "space", [term("+cafe")], NOW)

    assert await storage.chats.chat_filters(1) == [
        ChatFilter(None, term("-CAFE")),
        ChatFilter("space", term("+cafe")),
    ]


async def test_a_chat_has_at_most_the_maximum_of_terms(storage: Storage) -> None:
    await subscribed_chat(storage, 1, "tech")
    first = [term(f"+word{n}") for n in range(MAX_TERMS - 2)]
    await storage.chats.add_filters(1, None, first, NOW)

    outcome = await storage.chats.add_filters(
        1, "space", [term("+a"), term("+b"), term("+c"), term("-word0")], NOW
    )
    assert [t.signed for t in outcome.added] == ["+a", "+b"]
    assert [t.signed for t in outcome.over_limit] == ["+c", "-word0"]
    assert len(await storage.chats.chat_filters(1)) == MAX_TERMS
    # Turning the sign of a term it has needs no room.
    turned = await storage.chats.add_filters(1, None, [term("-word0")], NOW)
    assert [t.signed for t in turned.added] == ["-word0"]


async def test_a_filtered_article_never_enters_the_chats_outbox(storage: Storage) -> None:
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")  # no filters
    await subscribed_chat(storage, 2, "tech")
    await subscribed_chat(storage, 3, "tech")
    await storage.chats.add_filters(2, None, [term("+robot*")], NOW)
    await storage.chats.add_filters(3, "tech", [term('-"crypto coin"')], NOW)
    await store(storage, feed, [story("seen", "Old news")])
    (feed,) = await current(storage)

    await store(
        storage,
        feed,
        [
            story("a", "Robotics startup raises money"),
            story("b", "New crypto coin launched"),
            story("c", "Weather report", "Sunny", ("Robots",)),
        ],
        now=LATER,
    )

    assert sorted(await outbox(storage)) == [
        (1, "New crypto coin launched", "pending"),
        (1, "Robotics startup raises money", "pending"),
        (1, "Weather report", "pending"),
        (2, "Robotics startup raises money", "pending"),
        (2, "Weather report", "pending"),  # by its tag
        (3, "Robotics startup raises money", "pending"),
        (3, "Weather report", "pending"),
    ]


async def test_the_entrys_tags_are_stored_with_the_article(storage: Storage) -> None:
    feed = await one_feed(storage)
    await store(storage, feed, [story("a", "Headline", "", ("Space exploration", "NASA"))])

    (stored,) = await storage.articles.latest_articles(None, 5)
    assert stored.tags == ("Space exploration", "NASA")


async def test_filters_follow_a_group_that_became_a_supergroup(storage: Storage) -> None:
    await subscribed_chat(storage, -1, "tech", chat_type="group")
    await storage.chats.add_filters(-1, None, [term("+mars")], NOW)

    await storage.chats.migrate_chat(-1, -1001, NOW)

    assert await storage.chats.chat_filters(-1001) == [ChatFilter(None, term("+mars"))]
    assert await storage.chats.chat_filters(-1) == []


async def test_filters_merge_into_a_supergroup_the_bot_already_knew(storage: Storage) -> None:
    await subscribed_chat(storage, -1, "tech", chat_type="group")
    await subscribed_chat(storage, -1001, "tech", chat_type="supergroup")
    await storage.chats.add_filters(-1, None, [term("+mars")], NOW)

    await storage.chats.migrate_chat(-1, -1001, NOW)

    assert await storage.chats.chat_filters(-1001) == [ChatFilter(None, term("+mars"))]
