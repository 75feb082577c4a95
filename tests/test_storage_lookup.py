"""Storage lookups behind inline mode and shared links, on both backends:
search within one category, paged latest headlines, one article by id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.storage import Storage
from tests.support import open_test_storage
from tests.test_storage import NOW, article, one_feed, store


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_search_within_a_category_finds_only_its_articles(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    await store(
        storage,
        feed,
        [
            article("s1", "Rocket lands on Mars", categories=["space"]),
            article("t1", "Rocket engine for cars", categories=["tech"]),
            article("s2", "Mars rover rocket", categories=["space"], published=NOW - timedelta(1)),
        ],
    )
    found = await storage.search.search_articles("rocket", 10, category_id="space")
    assert {a.title for a in found} == {"Rocket lands on Mars", "Mars rover rocket"}
    assert await storage.search.search_articles("rocket", 10, category_id="sport") == []
    everywhere = await storage.search.search_articles("rocket", 10)
    assert len(everywhere) == 3


async def test_a_word_common_elsewhere_is_searched_within_the_category(storage: Storage) -> None:
    # Over the "broad" threshold overall, and within the category too: both
    # ranking paths keep to the category, and paging does not leak past it.
    feed = await one_feed(storage, categories=())
    rows = [
        article(f"t{n}", f"Rocket gadget {n}", categories=["tech"], published=NOW - timedelta(n))
        for n in range(150)
    ] + [
        article(f"s{n}", f"Rocket probe {n}", categories=["space"], published=NOW - timedelta(n))
        for n in range(120)
    ]
    await store(storage, feed, rows)
    first = await storage.search.search_articles("rocket", 100, category_id="space")
    rest = await storage.search.search_articles("rocket", 100, 100, category_id="space")
    titles = [a.title for a in first + rest]
    assert len(titles) == 120 == len(set(titles))
    assert all(t.startswith("Rocket probe") for t in titles)


async def test_latest_headlines_page_with_an_offset(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    await store(
        storage,
        feed,
        [
            article(f"a{n}", f"Story {n}", categories=["space"], published=NOW - timedelta(hours=n))
            for n in range(5)
        ],
    )
    page = await storage.articles.latest_articles(None, 2, 2)
    assert [a.title for a in page] == ["Story 2", "Story 3"]
    in_space = await storage.articles.latest_articles("space", 2, 4)
    assert [a.title for a in in_space] == ["Story 4"]


async def test_one_article_is_read_back_by_its_id(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    await store(storage, feed, [article("x", "Shared story", categories=["space"])])
    (stored,) = await storage.articles.latest_articles(None, 1)
    found = await storage.articles.article(stored.id)
    assert found == stored
    assert await storage.articles.article(stored.id + 1000) is None
