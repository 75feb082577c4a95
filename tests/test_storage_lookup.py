"""Storage lookups behind inline mode and shared links, on both backends:
search within one category, paged latest headlines, one article by id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from bot.config import FeedConfig
from bot.storage import Storage
from tests.support import open_test_storage
from tests.test_storage import NOW, add_feeds, article, one_feed, store


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def postgres_before(postgres_url: str, marker: str) -> asyncpg.Connection:
    """A connection to a PostgreSQL database at the schema version before the
    first migration that contains ``marker``, with one feed (id 1) in it."""
    from bot.storage.schema_postgres import MIGRATIONS

    before = next(n for n, m in enumerate(MIGRATIONS) if marker in m)
    connection = await asyncpg.connect(postgres_url)
    for script in MIGRATIONS[:before]:
        await connection.execute(script)
    await connection.execute(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        f"INSERT INTO schema_version VALUES ({before});"
        "INSERT INTO feeds (url, fetch_url) "
        "VALUES ('https://one.example/feed', 'https://one.example/feed');"
    )
    return connection


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


async def test_a_category_search_follows_the_categories_a_story_gains_in_another_feed(
    storage: Storage,
) -> None:
    first, second = await add_feeds(
        storage,
        FeedConfig(url="https://one.example/feed"),
        FeedConfig(url="https://two.example/feed"),
    )
    shared = "https://wire.example/comet"
    await store(
        storage,
        first,
        [
            article("c1", "Comet seen over Lisbon", url=shared, categories=["world"]),
            article("c2", "Comet tails explained", categories=["space"]),
            article("c3", "Comet cafe opens", categories=["world"]),
        ],
    )
    assert {
        a.title for a in await storage.search.search_articles("comet", 10, category_id="space")
    } == {"Comet tails explained"}
    # The same story found in a feed of another category now belongs to both.
    await store(
        storage, second, [article("x9", "Comet seen over Lisbon", url=shared, categories=["space"])]
    )
    in_space = await storage.search.search_articles("comet", 10, category_id="space")
    assert {a.title for a in in_space} == {"Comet seen over Lisbon", "Comet tails explained"}
    in_world = await storage.search.search_articles("comet", 10, category_id="world")
    assert {a.title for a in in_world} == {"Comet seen over Lisbon", "Comet cafe opens"}
    # Broad too (over the selective threshold): only the category's matches.
    await store(
        storage,
        first,
        [
            article(f"w{n}", f"Comet watch {n}", categories=["world"], published=NOW - timedelta(n))
            for n in range(130)
        ],
    )
    titles = [
        a.title for a in await storage.search.search_articles("comet", 100, category_id="space")
    ]
    assert sorted(titles) == ["Comet seen over Lisbon", "Comet tails explained"]
    broad = await storage.search.search_articles("comet", 200, category_id="world")
    assert len(broad) == 132
    assert "Comet tails explained" not in {a.title for a in broad}


async def test_a_category_name_searched_as_a_word_finds_only_articles_that_say_it(
    storage: Storage,
) -> None:
    feed = await one_feed(storage, categories=())
    await store(
        storage,
        feed,
        [
            article("a", "Rocket lands", categories=["space"]),
            article("b", "The space race", categories=["tech"]),
        ],
    )
    assert [a.title for a in await storage.search.search_articles("space", 10)] == [
        "The space race"
    ]
    assert [a.title for a in await storage.search.search_articles("category", 10)] == []
    assert await storage.search.search_articles("space", 10, category_id="space") == []


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


async def test_articles_stored_before_categories_were_searchable_are_found_in_them(
    postgres_url: str,
) -> None:
    # A database from before the search vector held categories: migrating
    # fills the vectors of the articles already stored.
    connection = await postgres_before(postgres_url, "article_categories_vector(categories)")
    try:
        for key, title, category in [
            ("a", "Comet over Lisbon", "space"),
            ("b", "Comet cafe", "world"),
        ]:
            article_id = await connection.fetchval(
                "INSERT INTO articles (feed_id, entry_key, url, title, summary, categories, "
                "published_at, first_seen_at) VALUES (1, $1, $2, $3, '', $4, 0, 0) RETURNING id",
                key,
                f"https://one.example/{key}",
                title,
                category,
            )
            await connection.execute(
                "INSERT INTO article_categories VALUES ($1, 0, $2)", category, article_id
            )
    finally:
        await connection.close()
    storage = await open_test_storage(postgres_url)
    try:
        found = await storage.search.search_articles("comet", 10, category_id="space")
        assert [a.title for a in found] == ["Comet over Lisbon"]
    finally:
        await storage.close()


async def test_articles_stored_before_the_prefix_indexes_are_found_by_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.storage.schema_sqlite as schema

    before = next(n for n, m in enumerate(schema.MIGRATIONS) if "prefix=" in m)
    path = tmp_path / "newsbot.db"
    with monkeypatch.context() as old_schema:
        old_schema.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:before])
        first = await open_test_storage(path)
        try:
            feed = await one_feed(first)
            await store(first, feed, [article("a", "Starship launches"), article("b", "Comet")])
        finally:
            await first.close()

    storage = await open_test_storage(path)
    try:
        (definition,) = await storage.db.fetch(
            "SELECT sql FROM sqlite_master WHERE name = 'articles_fts'"
        )
        assert "prefix='3 4 5 6'" in definition[0]
        assert [a.title for a in await storage.search.search_articles("laun", 10)] == [
            "Starship launches"
        ]
        # The rebuilt index still follows the articles: new, corrected.
        (feed,) = await storage.feeds.due_feeds(NOW + timedelta(days=3650))
        await store(storage, feed, [article("b", "Comet launcher"), article("c", "Launchpad")])
        found = {a.title for a in await storage.search.search_articles("laun", 10)}
        assert found == {"Starship launches", "Comet launcher", "Launchpad"}
        assert await storage.search.search_articles("comet", 10) != []
        await storage.db.execute(
            "INSERT INTO articles_fts(articles_fts, rank) VALUES ('integrity-check', 1)"
        )
    finally:
        await storage.close()


async def test_a_corrected_title_is_found_by_a_prefix_of_its_new_words(storage: Storage) -> None:
    # A correction is an update: its new words become prefix expansions too.
    feed = await one_feed(storage, categories=())
    await store(storage, feed, [article("a", "Comet seen over Lisbon")])
    await store(storage, feed, [article("a", "Asteroid seen over Porto")], now=NOW + timedelta(1))
    assert [a.title for a in await storage.search.search_articles("aster", 10)] == [
        "Asteroid seen over Porto"
    ]
    assert [a.title for a in await storage.search.search_articles("seen port", 10)] == [
        "Asteroid seen over Porto"
    ]


async def test_a_category_is_no_word_that_a_prefix_stands_for(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    await store(storage, feed, [article("a", "Rocket news", categories=["space", "world"])])
    assert await storage.search.search_articles("categ", 10) == []
    assert await storage.search.search_articles("rocket categ", 10) == []
    assert await storage.search.search_articles("category", 10) == []
    assert len(await storage.search.search_articles("rocket", 10, category_id="space")) == 1


async def test_articles_stored_before_lexemes_were_kept_per_statement_stay_searchable(
    postgres_url: str,
) -> None:
    # A database whose lexemes the row trigger wrote: after migrating, its
    # articles are still found (whole words, prefixes, within a category),
    # and so are those stored and corrected since.
    connection = await postgres_before(postgres_url, "articles_search_lexemes()")
    try:
        article_id = await connection.fetchval(
            "INSERT INTO articles (feed_id, entry_key, url, title, summary, categories, "
            "published_at, first_seen_at) VALUES (1, 'old', 'https://one.example/old', "
            "'Comet over Lisbon', 'Astronomers watched', 'space', 0, 0) RETURNING id"
        )
        await connection.execute(
            "INSERT INTO article_categories VALUES ('space', 0, $1)", article_id
        )
    finally:
        await connection.close()
    storage = await open_test_storage(postgres_url)
    try:
        assert [a.title for a in await storage.search.search_articles("astronom", 10)] == [
            "Comet over Lisbon"
        ]
        in_space = await storage.search.search_articles("lisb", 10, category_id="space")
        assert [a.title for a in in_space] == ["Comet over Lisbon"]
        feed = await one_feed(storage, categories=())
        await store(storage, feed, [article("new", "Meteor shower tonight", categories=["space"])])
        await store(
            storage,
            feed,
            [article("new", "Meteorite found in Faro", categories=["space"])],
            now=NOW + timedelta(1),
        )
        found = await storage.search.search_articles("faro", 10, category_id="space")
        assert [a.title for a in found] == ["Meteorite found in Faro"]
        assert {a.title for a in await storage.search.search_articles("meteor", 10)} == {
            "Meteorite found in Faro"
        }
        assert await storage.search.search_articles("categ", 10) == []
    finally:
        await storage.close()
