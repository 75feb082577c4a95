"""Storage: schema and pragmas, full-text search, the outbox and
de-duplication, on a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bot.storage.articles as articles_module
from bot.config import FeedConfig
from bot.errors import StorageError
from bot.models import FeedForUpdate, NewArticle
from bot.storage import Storage, StoreOutcome
from bot.storage.schema_sqlite import SCHEMA_VERSION
from bot.storage.search_query import build_match_query
from tests.support import open_test_storage

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


@pytest.fixture
async def sqlite_storage(tmp_path: Path) -> AsyncIterator[Storage]:
    opened = await open_test_storage(tmp_path / "newsbot.db")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    """Storage on each backend in turn: tests taking it run on SQLite and on
    PostgreSQL."""
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


def article(
    key: str,
    title: str = "A headline",
    *,
    url: str | None = None,
    summary: str = "",
    published: datetime = NOW,
    categories: Sequence[str] = (),
) -> NewArticle:
    return NewArticle(
        key=key,
        url=url or f"https://news.example/{key}",
        title=title,
        summary=summary,
        author=None,
        published=published,
        image_url=None,
        categories=tuple(categories),
    )


async def add_feeds(storage: Storage, *feeds: FeedConfig) -> list[FeedForUpdate]:
    await storage.feeds.sync_feeds(feeds, NOW)
    return await current(storage)


async def current(storage: Storage) -> list[FeedForUpdate]:
    """Every enabled feed, as the poller would see it now."""
    return await storage.feeds.due_feeds(NOW + timedelta(days=3650))


async def store(
    storage: Storage,
    feed: FeedForUpdate,
    articles: Sequence[NewArticle],
    *,
    now: datetime = NOW,
    deliver_limit: int = 1_000_000,
) -> StoreOutcome:
    return await storage.articles.store_articles(
        feed,
        articles,
        now=now,
        next_check=now + timedelta(minutes=10),
        feed_title="Example News",
        site_url="https://news.example/",
        body_hash=f"hash-{now.timestamp()}-{len(articles)}",
        etag=None,
        last_modified=None,
        fetch_url=None,
        deliver_limit=deliver_limit,
    )


async def one_feed(storage: Storage, categories: Sequence[str] = ("tech",)) -> FeedForUpdate:
    (feed,) = await add_feeds(
        storage, FeedConfig(url="https://news.example/feed", categories=list(categories))
    )
    return feed


def sql(path: Path, query: str) -> list[tuple[object, ...]]:
    """Read the database file through a second connection (WAL allows it)."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(query).fetchall()
    finally:
        connection.close()


async def outbox(storage: Storage) -> list[tuple[object, ...]]:
    """(chat id, article title, status) of every outbox row."""
    rows = await storage.db.fetch(
        "SELECT d.chat_id, a.title, d.status FROM deliveries AS d "
        "JOIN articles AS a ON a.id = d.article_id ORDER BY d.chat_id, d.id",
    )
    return [tuple(r) for r in rows]


# -- schema ---------------------------------------------------------------


async def test_migrations_set_the_user_version_and_wal(
    sqlite_storage: Storage, tmp_path: Path
) -> None:
    path = Path(sqlite_storage.where)
    assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert sql(path, "PRAGMA journal_mode") == [("wal",)]


async def test_foreign_keys_are_enforced(storage: Storage) -> None:
    await storage.chats.upsert_chat(1, "private", None, None, NOW)
    with pytest.raises(StorageError, match=r"(?i)foreign key"):
        await storage.db.execute(
            "INSERT INTO deliveries (article_id, chat_id, next_attempt_at, created_at) "
            "VALUES (999, 1, 0, 0)"
        )


async def test_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "newsbot.db"
    first = await open_test_storage(path)
    try:
        feed = await one_feed(first)
        await store(first, feed, [article("a", "Kept across restarts")])
    finally:
        await first.close()
    for _ in range(2):
        again = await open_test_storage(path)
        try:
            assert [a.title for a in await again.articles.latest_articles(None, 10)] == [
                "Kept across restarts"
            ]
            assert [a.title for a in await again.search.search_articles("restarts", 10)] == [
                "Kept across restarts"
            ]
        finally:
            await again.close()
    assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newsbot.db"
    sql(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer than this"):
        await open_test_storage(path)


async def test_a_file_that_is_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "newsbot.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError):
        await open_test_storage(path)


@pytest.mark.parametrize("where", ["a-directory", "below-a-file"])
def test_an_unopenable_path_is_a_storage_error_without_stray_thread_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "file").write_text("x")
    path = tmp_path if where == "a-directory" else tmp_path / "file" / "sub" / "newsbot.db"
    thread_errors: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    before = set(threading.enumerate())
    with pytest.raises(StorageError, match="storage: cannot open"):
        asyncio.run(open_test_storage(path))  # the loop is closed right after, as in the CLI
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=10)
    assert thread_errors == []


async def test_feeds_dropped_from_the_config_stop_polling_but_keep_articles(
    storage: Storage,
) -> None:
    one, _two = await add_feeds(
        storage,
        FeedConfig(url="https://one.example/feed"),
        FeedConfig(url="https://two.example/feed", name="Two"),
    )
    await store(storage, one, [article("a", "Still here")])
    await storage.feeds.sync_feeds(
        [FeedConfig(url="https://two.example/feed", name="Renamed")], LATER
    )
    (remaining,) = await current(storage)
    assert (remaining.url, remaining.name) == ("https://two.example/feed", "Renamed")
    assert [a.title for a in await storage.articles.latest_articles(None, 10)] == ["Still here"]
    # Back in the config, the feed keeps its history: nothing is new again.
    await storage.feeds.sync_feeds([FeedConfig(url="https://one.example/feed")], LATER)
    (again,) = await current(storage)
    assert again.id == one.id and again.ever_fetched
    assert (await store(storage, again, [article("a")], now=LATER)).new_articles == 0


async def test_due_feeds_are_those_whose_check_time_has_come(storage: Storage) -> None:
    feed = await one_feed(storage)
    assert [f.id for f in await storage.feeds.due_feeds(NOW)] == [feed.id]
    await store(storage, feed, [])  # next check in ten minutes
    assert await storage.feeds.due_feeds(NOW + timedelta(minutes=9)) == []
    assert [f.id for f in await storage.feeds.due_feeds(NOW + timedelta(minutes=10))] == [feed.id]
    assert await storage.feeds.next_due_time() == NOW + timedelta(minutes=10)


# -- articles and de-duplication --------------------------------------------


async def test_articles_are_stored_once_per_key(storage: Storage) -> None:
    feed = await one_feed(storage)
    assert await store(storage, feed, [article("a"), article("b")]) == StoreOutcome(2, 0)
    (feed,) = await current(storage)
    outcome = await store(storage, feed, [article("a"), article("b")], now=LATER)
    assert outcome == StoreOutcome(0, 0)
    assert await storage.articles.article_count() == 2


async def test_duplicate_urls_across_feeds_are_not_stored_again(storage: Storage) -> None:
    first, second = await add_feeds(
        storage,
        FeedConfig(url="https://one.example/feed"),
        FeedConfig(url="https://two.example/feed"),
    )
    shared = "https://wire.example/story-1"
    assert (await store(storage, first, [article("one-1", url=shared)])).new_articles == 1
    outcome = await store(
        storage, second, [article("two-9", url=shared), article("two-10", url=shared + "b")]
    )
    assert outcome.new_articles == 1
    assert sorted(a.url for a in await storage.articles.latest_articles(None, 10)) == [
        shared,
        shared + "b",
    ]


async def test_two_pollers_storing_one_story_at_once_store_it_once(database_url: str) -> None:
    # Two processes (two pools on PostgreSQL), two feeds carrying the same
    # stories, stored at the same moment: each story is one article, and
    # the feed that came second carries it, however the stores interleave.
    pollers = [await open_test_storage(database_url) for _ in range(2)]
    try:
        feeds = await add_feeds(
            pollers[0],
            FeedConfig(url="https://one.example/feed"),
            FeedConfig(url="https://two.example/feed"),
        )
        for round_ in range(5):
            shared = [f"https://wire.example/{round_}-{n}" for n in range(3)]
            outcomes = await asyncio.gather(
                *(
                    store(
                        poller,
                        feed,
                        [article(f"{feed.id}-{round_}-{n}", url=u) for n, u in enumerate(shared)],
                        now=NOW + timedelta(minutes=round_),
                    )
                    for poller, feed in zip(pollers, feeds, strict=True)
                )
            )
            assert sorted(o.new_articles for o in outcomes) == [0, 3]
        stored = await pollers[1].articles.latest_articles(None, 100)
        assert len(stored) == 15 == len({a.url for a in stored})
    finally:
        for poller in pollers:
            await poller.close()


async def test_entries_that_fall_back_to_the_site_url_are_not_merged(storage: Storage) -> None:
    feed = await one_feed(storage)
    site = "https://news.example/"  # what parse uses for an entry without a link
    outcome = await store(
        storage, feed, [article("hash:1", "One", url=site), article("hash:2", "Two", url=site)]
    )
    assert outcome.new_articles == 2


async def test_latest_is_newest_first_and_filters_by_category(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    await store(
        storage,
        feed,
        [
            article("old", "Old", published=NOW - timedelta(days=2), categories=["tech"]),
            article("new", "New", published=NOW, categories=["space"]),
            article("mid", "Mid", published=NOW - timedelta(days=1), categories=["tech", "space"]),
        ],
    )
    assert [a.title for a in await storage.articles.latest_articles(None, 10)] == [
        "New",
        "Mid",
        "Old",
    ]
    assert [a.title for a in await storage.articles.latest_articles("tech", 10)] == ["Mid", "Old"]
    assert [a.title for a in await storage.articles.latest_articles("space", 1)] == ["New"]
    assert await storage.articles.latest_articles("nothing", 10) == []
    (newest,) = await storage.articles.latest_articles(None, 1)
    assert newest.source == "Example News"
    assert newest.published == NOW and newest.published.tzinfo is not None


# -- search ---------------------------------------------------------------


async def test_search_ranks_title_matches_first(storage: Storage) -> None:
    feed = await one_feed(storage)
    await store(
        storage,
        feed,
        [
            article("s", "Weekly digest", summary="A rocket launched today", published=NOW),
            article(
                "t", "Rocket launched", summary="Weekly digest", published=NOW - timedelta(days=3)
            ),
        ],
    )
    assert [a.title for a in await storage.search.search_articles("rocket", 10)] == [
        "Rocket launched",
        "Weekly digest",
    ]


async def test_search_ties_go_newest_first(storage: Storage) -> None:
    feed = await one_feed(storage)
    await store(
        storage,
        feed,
        [
            article("b", "Rocket news bravo", published=NOW - timedelta(days=1)),
            article("a", "Rocket news alpha", published=NOW - timedelta(days=2)),
            article("c", "Rocket news charlie", published=NOW),
        ],
    )
    titles = [a.title for a in await storage.search.search_articles("rocket news", 10)]
    assert titles == ["Rocket news charlie", "Rocket news bravo", "Rocket news alpha"]
    page = await storage.search.search_articles("rocket", 1, offset=1)
    assert [a.title for a in page] == ["Rocket news bravo"]


async def test_search_prefix_matches_the_last_word(storage: Storage) -> None:
    feed = await one_feed(storage)
    await store(storage, feed, [article("a", "SpaceX launches Starship")])
    assert len(await storage.search.search_articles("spacex laun", 10)) == 1
    assert await storage.search.search_articles("spacex xyz", 10) == []


async def test_a_prefix_finds_every_word_it_begins_however_many(storage: Storage) -> None:
    # PostgreSQL expands a prefix into the indexed words it begins; more
    # than it expands are left to the index's own prefix match.
    feed = await one_feed(storage)
    words = [f"zeta{n}x" for n in range(80)]
    await store(storage, feed, [article(w, f"About {w} today") for w in words])
    await store(storage, feed, [article("few", "Rocketry weekly", summary="rocketeers meet")])
    found = await storage.search.search_articles("zeta", 100)
    assert sorted(a.title for a in found) == sorted(f"About {w} today" for w in words)
    assert [a.title for a in await storage.search.search_articles("weekly rocket", 5)] == [
        "Rocketry weekly"
    ]
    assert await storage.search.search_articles("weekly rocketz", 5) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("cafe", ["Café culture in Paris"]),
        ("CAFÉ", ["Café culture in Paris"]),
        ("Cafe\u0301", ["Café culture in Paris"]),  # a combining accent
        ("naive", ["Naïve Bayes explained"]),
    ],
)
async def test_search_folds_diacritics(storage: Storage, query: str, expected: list[str]) -> None:
    feed = await one_feed(storage)
    await store(
        storage,
        feed,
        [article("a", "Café culture in Paris"), article("b", "Naïve Bayes explained")],
    )
    assert [a.title for a in await storage.search.search_articles(query, 10)] == expected


HOSTILE = [
    '"',
    '""',
    "-",
    "-rocket",
    "7-3",
    "C++",
    "AND",
    "OR",
    "NOT",
    "rocket AND",
    "NEAR(rocket launch)",
    "title:",
    "title:rocket",
    "summary:x",
    "(",
    ")",
    "*",
    "^",
    "rocket*",
    "^rocket",
    "🚀",
    "🚀 rocket",
    "don't",
    "x" * 1000,
    "rocket " * 200,
    "'; DROP TABLE articles; --",
    "\x00",
    "\\",
    "%",
    "_",
    "",
    "   ",
    "{title}: rocket",
    "a:b:c",
    "İstanbul",
]


@pytest.mark.parametrize("query", HOSTILE)
async def test_hostile_search_text_never_raises(
    storage: Storage, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    feed = await one_feed(storage)
    await store(
        storage,
        feed,
        [
            article("a", "Rocket launch: 7-3 for C++ fans, don't panic"),
            article("b", "Istanbul and AND OR NOT words"),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="bot.storage"):
        results = await storage.search.search_articles(query, 10)
    assert all(r.title for r in results)
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    assert await storage.articles.article_count() == 2


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("7-3", "Rocket launch: 7-3 for C++ fans, don't panic"),
        ("C++", "Rocket launch: 7-3 for C++ fans, don't panic"),
        ("don't", "Rocket launch: 7-3 for C++ fans, don't panic"),
        ("AND OR NOT", "Boolean AND OR NOT words"),
        ("title:", "Reading title: the subtitle"),
    ],
)
async def test_ordinary_text_with_operators_finds_what_it_says(
    storage: Storage, query: str, title: str
) -> None:
    feed = await one_feed(storage)
    await store(
        storage,
        feed,
        [
            article("a", "Rocket launch: 7-3 for C++ fans, don't panic"),
            article("b", "Boolean AND OR NOT words"),
            article("c", "Reading title: the subtitle"),
        ],
    )
    assert title in [a.title for a in await storage.search.search_articles(query, 10)]


def test_any_text_gives_a_valid_match_expression_or_none(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "fts.db")
    connection.execute(
        "CREATE VIRTUAL TABLE t USING fts5(title, summary, "
        "tokenize='unicode61 remove_diacritics 2')"
    )
    connection.execute("INSERT INTO t VALUES ('Rocket launch', 'Café 7-3 C++')")

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    def check(text: str) -> None:
        query = build_match_query(text)
        if query is not None:
            connection.execute("SELECT rowid FROM t WHERE t MATCH ?", (query,)).fetchall()

    try:
        check()
    finally:
        connection.close()


def test_search_never_raises_on_arbitrary_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Hypothesis drives a synchronous function; one event loop serves it all.
    with asyncio.Runner() as runner:
        storage = runner.run(open_test_storage(tmp_path / "newsbot.db"))
        try:
            feed = runner.run(one_feed(storage))
            runner.run(
                store(storage, feed, [article("a", "Rocket launch at dawn", summary="Café")])
            )

            @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(st.text(max_size=300), st.integers(min_value=0, max_value=50))
            def check(text: str, offset: int) -> None:
                results = runner.run(storage.search.search_articles(text, 10, offset))
                assert len(results) <= 1

            with caplog.at_level(logging.WARNING, logger="bot.storage"):
                check()
        finally:
            runner.run(storage.close())
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


async def test_search_index_is_written_in_the_same_transaction(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed = await one_feed(storage)
    await store(storage, feed, [article("a", "Indexed at once")])
    assert [a.title for a in await storage.search.search_articles("indexed", 10)] == [
        "Indexed at once"
    ]
    # A failure half-way through store_articles (here: in the outbox step)
    # rolls back the articles and their index entries together.
    (feed,) = await current(storage)
    await subscribed_chat(storage, 1, "tech")

    async def broken_enqueue(*args: object) -> int:
        raise StorageError("storage: disk full")

    monkeypatch.setattr(articles_module.outbox, "enqueue", broken_enqueue)
    with pytest.raises(StorageError):
        await store(storage, feed, [article("b", "Never indexed", categories=["tech"])], now=LATER)
    assert await storage.search.search_articles("never", 10) == []
    assert await storage.articles.article_count() == 1
    if storage.backend == "sqlite":
        path = Path(storage.where)
        assert sql(path, "SELECT count(*) FROM articles_fts") == [(1,)]
        sql(path, "INSERT INTO articles_fts(articles_fts, rank) VALUES ('integrity-check', 1)")


# -- the outbox -------------------------------------------------------------


async def subscribed_chat(
    storage: Storage, chat_id: int, *categories: str, chat_type: str = "private"
) -> None:
    await storage.chats.upsert_chat(chat_id, chat_type, None, None, NOW)
    await storage.chats.subscribe(chat_id, categories, NOW)


async def test_first_fetch_creates_no_deliveries(storage: Storage) -> None:
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    outcome = await store(storage, feed, [article("a", categories=["tech"])])
    assert outcome == StoreOutcome(1, 0)
    assert await storage.outbox.delivery_counts() == {}
    # Only new articles are delivered: the first fetch's backlog never is.
    (feed,) = await current(storage)
    await store(storage, feed, [article("a", categories=["tech"])], now=LATER)
    assert await storage.outbox.delivery_counts() == {}


async def test_later_new_articles_go_to_each_subscribed_active_chat(
    storage: Storage, tmp_path: Path
) -> None:
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    await subscribed_chat(storage, 2, "tech", "space")  # two matching categories
    await subscribed_chat(storage, 3, "sport")  # not matching
    await subscribed_chat(storage, 4, "tech")
    await storage.chats.deactivate_chat(4, "blocked", NOW)  # inactive
    await store(storage, feed, [article("a", categories=["tech"])])
    (feed,) = await current(storage)

    outcome = await store(
        storage,
        feed,
        [article("a"), article("b", "Fresh", categories=["tech", "space"])],
        now=LATER,
    )
    assert outcome == StoreOutcome(1, 2)
    assert await outbox(storage) == [(1, "Fresh", "pending"), (2, "Fresh", "pending")]


async def test_deliveries_are_capped_to_the_newest_per_round(
    storage: Storage, tmp_path: Path
) -> None:
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    await store(storage, feed, [article("seen")])
    (feed,) = await current(storage)
    flood = [
        article(f"n{i}", f"Item {i}", published=NOW - timedelta(minutes=i), categories=["tech"])
        for i in range(30)
    ]
    outcome = await store(storage, feed, flood, now=LATER, deliver_limit=5)
    assert outcome == StoreOutcome(30, 5)
    titles = [row[1] for row in await outbox(storage)]
    # The five newest, queued oldest first so a chat reads them in order.
    assert titles == [f"Item {i}" for i in reversed(range(5))]


# -- migrations and transactions ---------------------------------------------

# A migration of the kind SQLite's ALTER TABLE cannot express: rebuild the
# chats table (which subscriptions and deliveries reference, ON DELETE CASCADE).
_REBUILD_CHATS = """
CREATE TABLE chats_rebuilt (
    id INTEGER PRIMARY KEY, type TEXT NOT NULL, title TEXT, username TEXT,
    active INTEGER NOT NULL DEFAULT 1, inactive_reason TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    suspended_reason TEXT, paused_until INTEGER NOT NULL DEFAULT 0
);
INSERT INTO chats_rebuilt SELECT * FROM chats;
DROP TABLE chats;
ALTER TABLE chats_rebuilt RENAME TO chats;
CREATE INDEX chats_username ON chats(username COLLATE NOCASE);
"""


async def test_a_table_rebuild_migration_keeps_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "newsbot.db"
    first = await open_test_storage(path)
    try:
        feed = await one_feed(first, ["space"])
        await store(first, feed, [article("seed", "Seed")])
        for chat_id in (1, 2, 3):
            await first.chats.upsert_chat(chat_id, "private", None, None, NOW)
            await first.chats.subscribe(chat_id, ["space"], NOW)
        (feed,) = await current(first)
        await store(first, feed, [article("news", "News", categories=["space"])])
    finally:
        await first.close()
    before = (
        sql(path, "SELECT count(*) FROM subscriptions"),
        sql(path, "SELECT count(*) FROM deliveries"),
    )
    assert before == ([(3,)], [(3,)])

    import bot.storage.schema_sqlite as schema

    migrations = [*schema.MIGRATIONS, _REBUILD_CHATS]
    monkeypatch.setattr(schema, "MIGRATIONS", migrations)
    again = await open_test_storage(path)
    await again.close()
    assert sql(path, "PRAGMA user_version") == [(len(migrations),)]
    after = (
        sql(path, "SELECT count(*) FROM subscriptions"),
        sql(path, "SELECT count(*) FROM deliveries"),
    )
    assert after == before


async def test_a_migration_that_breaks_references_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "newsbot.db"
    first = await open_test_storage(path)
    try:
        await first.chats.upsert_chat(1, "private", None, None, NOW)
        await first.chats.subscribe(1, ["space"], NOW)
    finally:
        await first.close()
    import bot.storage.schema_sqlite as schema

    released = len(schema.MIGRATIONS)
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, "DELETE FROM chats;"])
    with pytest.raises(StorageError, match="break 1 references"):
        await open_test_storage(path)
    assert sql(path, "PRAGMA user_version") == [(released,)]
    assert sql(path, "SELECT count(*) FROM chats") == [(1,)]


async def test_two_processes_opening_a_new_database_do_not_race(tmp_path: Path) -> None:
    """Another process migrates the new database while this one waits for
    the write lock: this one must find the schema done, not create it again."""
    path = tmp_path / "newsbot.db"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("BEGIN IMMEDIATE")
        opening = asyncio.create_task(open_test_storage(path))
        await asyncio.sleep(0.3)  # let it get as far as the lock
        from bot.storage.schema_sqlite import MIGRATIONS, split_statements

        for script in MIGRATIONS:
            for statement in split_statements(script):
                other.execute(statement)
        other.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        other.execute("COMMIT")
        opened = await opening
        await opened.close()
    finally:
        other.close()
    assert sql(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


async def test_a_cancelled_write_never_leaves_a_transaction_open(
    sqlite_storage: Storage,
) -> None:
    """A sender stopped while its write waits for the database lock (another
    process holds it): the shared connection must come back with no
    transaction open, and the next write must work and stick."""
    storage = sqlite_storage
    path = Path(storage.where)
    await storage.chats.upsert_chat(1, "private", None, None, NOW)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        waiting = asyncio.create_task(storage.chats.upsert_chat(2, "private", None, None, NOW))
        await asyncio.sleep(0.2)  # it is now waiting in BEGIN IMMEDIATE
        waiting.cancel()
        await asyncio.sleep(0.2)
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting
    finally:
        other.close()
    assert not storage.db.connection.in_transaction
    await storage.chats.upsert_chat(3, "private", None, None, NOW)
    assert sql(path, "SELECT id FROM chats ORDER BY id") == [(1,), (3,)]


# -- broad searches (more matches than bm25 is asked to rank) -----------------


async def _store_broad(storage: Storage, word: str, special: Sequence[tuple[str, int]]) -> None:
    """120 stories that mention ``word`` only in their summary, plus
    ``special`` (title, hours ago) ones that mention it there too."""
    feed = await one_feed(storage)
    stories = [
        article(
            f"plain-{n}",
            f"Plain story {n}",
            summary=f"about {word}",
            published=NOW - timedelta(hours=2),
        )
        for n in range(120)
    ]
    stories += [
        article(
            f"special-{n}", title, summary=f"about {word}", published=NOW - timedelta(hours=hours)
        )
        for n, (title, hours) in enumerate(special)
    ]
    await store(storage, feed, stories)


async def test_broad_search_ranks_whole_title_words_not_substrings(storage: Storage) -> None:
    await _store_broad(storage, "ai", [("He said so", 1), ("AI beats humans at chess", 30)])
    found = [a.title for a in await storage.search.search_articles("ai", 5)]
    assert found[0] == "AI beats humans at chess"
    assert found[1] == "He said so"  # no title word: newest first, like the rest


async def test_broad_search_ranks_titles_in_any_script(storage: Storage) -> None:
    await _store_broad(storage, "выборы", [("Выборы в Москве", 30)])
    found = [a.title for a in await storage.search.search_articles("выборы", 3)]
    assert found[0] == "Выборы в Москве"


async def test_broad_search_counts_every_title_word_of_a_query_with_a_prefix(
    storage: Storage,
) -> None:
    feed = await one_feed(storage)
    stories = [
        article(f"plain-{n}", f"Plain story {n}", summary="spacex launches again")
        for n in range(120)
    ]
    stories += [
        article(
            "both", "SpaceX launches Starship", summary="spacex", published=NOW - timedelta(days=3)
        ),
        article("one", "Launch window opens", summary="spacex", published=NOW - timedelta(days=2)),
        article("other", "SpaceX hires", summary="launching", published=NOW - timedelta(days=1)),
    ]
    await store(storage, feed, stories)
    found = [a.title for a in await storage.search.search_articles("spacex laun", 4)]
    assert found[0] == "SpaceX launches Starship"  # both words in the title
    assert found[1:3] == ["SpaceX hires", "Launch window opens"]  # one each, newest first
    assert found[3].startswith("Plain story")


async def test_broad_search_in_a_category_ranks_only_its_own_articles(storage: Storage) -> None:
    feed = await one_feed(storage, categories=())
    space = [
        article(f"s-{n}", f"Orbit note {n}", summary="comet seen", categories=["space"])
        for n in range(110)
    ]
    space.append(
        article(
            "s-title",
            "Comet over Lisbon",
            summary="comet",
            categories=["space"],
            published=NOW - timedelta(days=5),
        )
    )
    # Newer stories elsewhere, with the word in their titles, must not count.
    world = [
        article(f"w-{n}", f"Comet cafe {n}", summary="comet", categories=["world"])
        for n in range(50)
    ]
    await store(storage, feed, space + world)
    found = await storage.search.search_articles("comet", 3, category_id="space")
    assert found[0].title == "Comet over Lisbon"
    assert [a.title[: len("Orbit note")] for a in found[1:]] == ["Orbit note"] * 2


async def test_broad_search_pages_through_the_ranking(storage: Storage) -> None:
    await _store_broad(storage, "vote", [("Vote counted", 30), ("Vote delayed", 40)])
    first = [a.title for a in await storage.search.search_articles("vote", 2)]
    second = [a.title for a in await storage.search.search_articles("vote", 2, offset=2)]
    assert first == ["Vote counted", "Vote delayed"]
    assert len(second) == 2 and not set(first) & set(second)


async def test_a_search_query_is_kept_whole_behind_a_short_key(storage: Storage) -> None:
    query = "выборы в городской совет депутатов москвы " * 4
    key = await storage.state.remember_search(query, NOW)
    assert await storage.state.remember_search(query, LATER) == key  # one key per query
    assert await storage.state.recall_search(key) == query
    assert await storage.state.recall_search(key + 1) is None


# -- what counts as news ----------------------------------------------------


async def test_a_story_in_two_feeds_gains_both_feeds_categories_and_reaches_both_audiences(
    storage: Storage, tmp_path: Path
) -> None:
    space, industry = await add_feeds(
        storage,
        FeedConfig(url="https://space.example/feed", categories=["space"]),
        FeedConfig(url="https://industry.example/feed", categories=["industry"]),
    )
    await subscribed_chat(storage, 1, "space")
    await subscribed_chat(storage, 2, "industry")
    await subscribed_chat(storage, 3, "space")
    await storage.chats.subscribe(3, ["industry"], NOW)
    await store(storage, space, [article("s-0")])
    await store(storage, industry, [article("i-0")])
    space, industry = await current(storage)

    shared = "https://wire.example/launch-contract"
    story = "Launch contract signed"
    await store(
        storage, space, [article("s-1", story, url=shared, categories=["space"])], now=LATER
    )
    outcome = await store(
        storage, industry, [article("i-7", story, url=shared, categories=["industry"])], now=LATER
    )
    assert outcome == StoreOutcome(0, 1)  # no second article; one more chat
    assert await outbox(storage) == [
        (1, story, "pending"),
        (2, story, "pending"),
        (3, story, "pending"),  # once, though both its categories carry it
    ]
    (stored,) = [
        a for a in await storage.articles.latest_articles("industry", 10) if a.url == shared
    ]
    assert stored.categories == ("space", "industry")
    # The next poll of the industry feed knows the entry: nothing happens.
    again = await store(
        storage,
        industry,
        [article("i-7", story, url=shared, categories=["industry"])],
        now=LATER + timedelta(hours=1),
    )
    assert again == StoreOutcome(0, 0)


async def test_undated_entries_keep_the_feeds_order(storage: Storage, tmp_path: Path) -> None:
    """Undated entries all get the fetch time; the feed lists its newest
    first, and that order must survive for /latest and for which entries
    become cards under max_new_per_feed."""
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    await store(storage, feed, [article("seen")])
    (feed,) = await current(storage)
    in_feed_order = [
        article(f"u{i}", f"Undated {i}", published=LATER, categories=["tech"]) for i in range(30)
    ]
    await store(storage, feed, in_feed_order, now=LATER, deliver_limit=5)
    latest = [a.title for a in await storage.articles.latest_articles(None, 30)]
    assert latest == [f"Undated {i}" for i in range(30)]
    titles = [row[1] for row in await outbox(storage)]
    assert titles == [f"Undated {i}" for i in (4, 3, 2, 1, 0)]  # the top five, oldest first


async def test_an_empty_first_fetch_does_not_count_as_the_first_fetch(
    storage: Storage,
) -> None:
    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    await store(storage, feed, [])  # the server answered an empty feed at first
    (feed,) = await current(storage)
    full = [article(f"n{i}", categories=["tech"]) for i in range(30)]
    assert await store(storage, feed, full, now=LATER) == StoreOutcome(30, 0)
    (feed,) = await current(storage)
    news = [article("fresh", "Fresh", categories=["tech"]), *full]
    assert await store(storage, feed, news, now=LATER) == StoreOutcome(1, 1)


# -- feeds the operator manages --------------------------------------------------


async def test_a_feed_disabled_by_410_stays_disabled_across_syncs_until_resumed(
    storage: Storage,
) -> None:
    (feed,) = await add_feeds(storage, FeedConfig(url="https://gone.example/feed"))
    await storage.feeds.record_failure(
        feed.id, now=NOW, error="fetch: HTTP 410 Gone", next_check=LATER, disable=True
    )
    for when in (NOW, LATER, LATER + timedelta(days=30)):  # restarts, `feeds sync`
        await storage.feeds.sync_feeds([FeedConfig(url="https://gone.example/feed")], when)
        assert await storage.feeds.due_feeds(when + timedelta(days=3650)) == []
    (health,) = await storage.feeds.feed_health()
    assert health.disabled and health.error_count == 1

    later = LATER + timedelta(days=31)
    assert await storage.feeds.resume_feed(feed.id, later)
    (due,) = await storage.feeds.due_feeds(later)
    assert due.id == feed.id
    assert not (await storage.feeds.feed_health())[0].disabled
    assert not await storage.feeds.resume_feed(feed.id + 100, later)


async def test_all_feeds_lists_feeds_dropped_from_the_config_too(storage: Storage) -> None:
    await add_feeds(
        storage, FeedConfig(url="https://one.example/feed"), FeedConfig(url="https://two.example/f")
    )
    await storage.feeds.sync_feeds([FeedConfig(url="https://two.example/f")], LATER)
    listed = {f.url: f.configured for f in await storage.feeds.all_feeds()}
    assert listed == {"https://one.example/feed": False, "https://two.example/f": True}
    assert [f.url for f in await storage.feeds.feed_health()] == ["https://two.example/f"]


# -- retention -----------------------------------------------------------------


async def test_retention_prunes_finished_cards_and_old_articles_but_not_what_waits(
    storage: Storage,
) -> None:
    from bot.config import StorageConfig
    from bot.retention import prune

    feed = await one_feed(storage)
    await subscribed_chat(storage, 1, "tech")
    await store(storage, feed, [article("seen", "Seen before")])
    (feed,) = await current(storage)
    stories = [article(f"s{i}", f"Story {i}", categories=["tech"]) for i in range(3)]
    await store(storage, feed, stories, now=LATER)
    claimed = await storage.outbox.claim_deliveries(LATER, 10, worker="test", lease_seconds=60)
    (first,) = claimed  # one per chat at a time
    await storage.outbox.mark_sent(first.id, 1, LATER)
    month_later = LATER + timedelta(days=40)

    kept = await prune(storage, StorageConfig(), month_later)
    assert (kept.deliveries, kept.articles) == (1, 0)  # articles are kept by default
    assert await storage.outbox.delivery_counts() == {"pending": 2}

    pruned = await prune(storage, StorageConfig(keep_articles="7d"), month_later)
    # The two stories still waiting for their card stay; the rest go.
    assert pruned.articles == 2
    waiting = sorted({"Story 0", "Story 1", "Story 2"} - {first.article.title})
    assert sorted(a.title for a in await storage.articles.latest_articles(None, 10)) == waiting
    assert await storage.search.search_articles("seen", 10) == []


# -- claims by several senders at once ---------------------------------------------


async def test_concurrent_claimers_never_claim_a_card_twice(
    storage: Storage, database_url: str
) -> None:
    """Four senders with connections of their own claim and mark cards as
    fast as they can: no card is handed out twice, not even one another
    sender has just marked sent, and every card is claimed once."""
    feed = await one_feed(storage)
    await store(storage, feed, [article("seen")])
    chats = list(range(1, 301))
    for chat_id in chats:
        await subscribed_chat(storage, chat_id, "tech")
    (feed,) = await current(storage)
    fresh = [article(f"n{i}", f"Story {i}", categories=["tech"]) for i in range(3)]
    await store(storage, feed, fresh, now=LATER)
    assert (await storage.outbox.delivery_counts()) == {"pending": 900}

    claimed: list[int] = []

    async def claimer(worker: str) -> None:
        own = await open_test_storage(database_url)
        try:
            while True:
                batch = await own.outbox.claim_deliveries(
                    LATER, 25, worker=worker, lease_seconds=600
                )
                if not batch:
                    if not await own.outbox.has_pending_deliveries():
                        return
                    await asyncio.sleep(0.01)
                    continue
                for card in batch:
                    claimed.append(card.id)
                    await own.outbox.mark_sent(card.id, 1, LATER)
        finally:
            await own.close()

    async with asyncio.timeout(120):  # a hang guard
        await asyncio.gather(*(claimer(f"sender-{n}") for n in range(4)))
    assert len(claimed) == len(set(claimed)) == 900
    assert (await storage.outbox.delivery_counts()) == {"sent": 900}


async def test_a_database_at_the_newest_version_opens_while_another_process_writes(
    tmp_path: Path,
) -> None:
    """Opening an up-to-date database migrates nothing, so it must not wait
    for the write lock a running bot holds (a CLI command beside it)."""
    path = tmp_path / "newsbot.db"
    first = await open_test_storage(path)
    await first.close()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE feeds SET title = 'held' WHERE id = 0")
        opened = await open_test_storage(path)
        try:
            assert await opened.schema_version() == SCHEMA_VERSION
        finally:
            await opened.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_disabled_feeds_are_the_configured_ones_gone_410(storage: Storage) -> None:
    gone, failing, dropped, _well = await add_feeds(
        storage,
        *(
            FeedConfig(url=f"https://{name}.example/feed")
            for name in ("gone", "failing", "dropped", "well")
        ),
    )
    for feed, disable in ((gone, True), (failing, False), (dropped, True)):
        await storage.feeds.record_failure(
            feed.id, now=NOW, error="fetch: HTTP 410 Gone", next_check=LATER, disable=disable
        )
    # Dropped from the configuration: not polled, not warned of.
    await storage.feeds.sync_feeds(
        [FeedConfig(url=f"https://{name}.example/feed") for name in ("gone", "failing", "well")],
        NOW,
    )
    assert [f.url for f in await storage.feeds.disabled_feeds()] == ["https://gone.example/feed"]
