"""The storage layer: every SQL statement of newsbot lives in this package.

One aiosqlite connection in autocommit mode; transactions are explicit
(``BEGIN IMMEDIATE`` ... ``COMMIT``) and serialised by an asyncio lock, because
the poller, the sender and the Telegram handlers share the connection and
their statements must never interleave inside someone else's transaction.
sqlite3 errors are wrapped into ``StorageError`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from bot.clock import from_timestamp, to_timestamp
from bot.config import FeedConfig
from bot.errors import StorageError
from bot.models import Article, FeedForUpdate, FeedHealth, NewArticle
from bot.storage.schema import MIGRATIONS
from bot.storage.search_query import build_match_query

log = logging.getLogger(__name__)

_IN_CHUNK = 500  # stays far below SQLite's host-parameter limit
_ARTICLE_COLUMNS = """
    a.id, a.feed_id, a.url, a.title, a.summary, a.author, a.published_at, a.image_url,
    COALESCE(f.name, NULLIF(f.title, ''), f.site_url, f.url) AS source, a.categories
"""


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    new_articles: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str
    title: str | None
    username: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    id: int
    chat_id: int
    chat_type: str
    attempts: int
    created_at: datetime  # when the card was queued; max_age counts from here
    article: Article


@dataclass(frozen=True, slots=True)
class SuspendedChat:
    id: int
    type: str
    title: str | None
    username: str | None
    reason: str
    pending: int  # cards waiting for the right to post to come back


def _article(row: sqlite3.Row | tuple[Any, ...]) -> Article:
    return Article(
        id=row[0],
        feed_id=row[1],
        url=row[2],
        title=row[3],
        summary=row[4],
        author=row[5],
        published=from_timestamp(row[6]),
        image_url=row[7],
        source=row[8],
        categories=tuple(row[9].split()) if row[9] else (),
    )


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def split_statements(script: str) -> list[str]:
    """The statements of a migration script, each complete (a trigger's body
    holds semicolons of its own). ``executescript`` cannot be used: it
    commits any open transaction before it starts."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise StorageError(f"storage: incomplete statement in a migration: {pending.strip()[:80]}")
    return statements


async def _uncancellable(statement: Awaitable[Any]) -> Any:
    """Await ``statement`` to its end even if the awaiting task is cancelled
    meanwhile; the cancellation is raised once the statement is done."""
    future = asyncio.ensure_future(statement)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait([future])
        raise


class Storage:
    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self._db = connection
        self.path = path
        self._lock = asyncio.Lock()

    # -- lifecycle -------------------------------------------------------

    @classmethod
    async def open(cls, path: str | Path) -> Storage:
        path = str(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Find a path SQLite cannot open before aiosqlite does: when its
                # connect fails, its worker thread outlives the call and dies
                # with "Event loop is closed" once the CLI's loop is gone.
                sqlite3.connect(path).close()
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"storage: cannot open {path}: {error}") from None
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as error:
            raise StorageError(f"storage: cannot open {path}: {error}") from None
        storage = cls(connection, path)
        try:
            await storage._configure()
            await storage._migrate()
        except BaseException:
            await connection.close()
            raise
        return storage

    async def _configure(self) -> None:
        try:
            # WAL lets the CLI read while the bot writes; NORMAL sync is safe
            # with WAL (a crash can lose the last commit, never corrupt).
            await self._db.execute("PRAGMA journal_mode = WAL")
            await self._db.execute("PRAGMA synchronous = NORMAL")
            await self._db.execute("PRAGMA foreign_keys = ON")
            await self._db.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as error:
            raise StorageError(f"storage: {self.path} is not usable: {error}") from None

    async def _migrate(self) -> None:
        """Bring the schema to ``len(migrations)`` in one write transaction.

        The version is read inside ``BEGIN IMMEDIATE``, so two processes
        opening a new database never both see version 0 and race into
        "table already exists": the second waits for the first, then finds
        nothing left to do. Foreign keys are off while migrating (a
        migration that rebuilds a table by CREATE-copy-DROP-RENAME would
        otherwise cascade-delete every row that references it, as SQLite's
        documentation warns), and ``foreign_key_check`` must come back
        empty before the commit. ``PRAGMA foreign_keys`` is a no-op inside a
        transaction, hence its place outside.
        """
        migrations = MIGRATIONS
        target = len(migrations)
        try:
            await self._db.execute("PRAGMA foreign_keys = OFF")
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                async with self._db.execute("PRAGMA user_version") as cursor:
                    row = await cursor.fetchone()
                version = int(row[0]) if row else 0
                if version > target:
                    raise StorageError(
                        f"storage: {self.path} has schema version {version}, newer than this "
                        f"newsbot ({target}); upgrade newsbot"
                    )
                for index in range(version, target):
                    for statement in split_statements(migrations[index]):
                        await self._db.execute(statement)
                async with self._db.execute("PRAGMA foreign_key_check") as cursor:
                    broken = list(await cursor.fetchall())
                if broken:
                    raise StorageError(
                        f"storage: migration would break {len(broken)} references "
                        f"(first: {tuple(broken[0])}); nothing was changed"
                    )
                if version < target:
                    await self._db.execute(f"PRAGMA user_version = {target}")
                await _uncancellable(self._db.execute("COMMIT"))
            except BaseException:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await _uncancellable(self._db.execute("ROLLBACK"))
                raise
            if version < target:
                log.info("storage: migrated %s to schema version %d", self.path, target)
            await self._db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as error:
            raise StorageError(f"storage: migration failed: {error}") from None

    async def close(self) -> None:
        async with self._lock:
            try:
                await self._db.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass  # optimisation is best effort; closing is what matters
            await self._db.close()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error.

        A cancelled task (a stopping sender, a shutdown) must never release
        the lock with a transaction left open on the shared connection: the
        next user would run inside it, and a later ROLLBACK would undo their
        work too. aiosqlite runs a statement to its end in its own thread
        whatever happens to the awaiting task, so BEGIN, COMMIT and ROLLBACK
        are awaited to completion before a cancellation goes on.
        """
        async with self._lock:
            try:
                await _uncancellable(self._db.execute("BEGIN IMMEDIATE"))
                yield self._db
            except BaseException as error:
                if self._db.in_transaction:
                    try:
                        await _uncancellable(self._db.execute("ROLLBACK"))
                    except sqlite3.Error:
                        pass  # the original error is the one worth reporting
                if isinstance(error, sqlite3.Error):
                    raise StorageError(f"storage: {error}") from None
                raise
            else:
                try:
                    await _uncancellable(self._db.execute("COMMIT"))
                except sqlite3.Error as error:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            await _uncancellable(self._db.execute("ROLLBACK"))
                    raise StorageError(f"storage: commit failed: {error}") from None

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            try:
                async with self._db.execute(sql, params) as cursor:
                    return list(await cursor.fetchall())
            except sqlite3.Error as error:
                raise StorageError(f"storage: {error}") from None

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # -- feeds -----------------------------------------------------------

    async def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the feeds table match the configuration. Feeds dropped from the
        config keep their articles but are no longer polled. A feed disabled
        by 410 Gone stays disabled: only the operator re-enables it
        (``resume_feed``), since the server said it is gone for good."""
        ts = to_timestamp(now)
        async with self._transaction() as db:
            await db.execute("UPDATE feeds SET configured = 0")
            await db.executemany(
                """
                INSERT INTO feeds (url, fetch_url, name, categories, interval, next_check_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (url) DO UPDATE SET
                    configured = 1, name = excluded.name, categories = excluded.categories,
                    interval = excluded.interval
                """,
                [(f.url, f.url, f.name, " ".join(f.categories), f.interval, ts) for f in feeds],
            )

    async def due_feeds(self, now: datetime, limit: int | None = None) -> list[FeedForUpdate]:
        rows = await self._fetchall(
            """
            SELECT id, url, fetch_url, title, name, categories, etag, last_modified, body_hash,
                   error_count, ever_fetched, interval
            FROM feeds
            WHERE configured AND NOT disabled AND next_check_at <= ?
            ORDER BY next_check_at, id
            LIMIT ?
            """,
            (to_timestamp(now), -1 if limit is None else limit),
        )
        return [
            FeedForUpdate(
                id=r[0],
                url=r[1],
                fetch_url=r[2],
                title=r[3],
                name=r[4],
                categories=tuple(r[5].split()),
                etag=r[6],
                last_modified=r[7],
                body_hash=r[8],
                error_count=r[9],
                ever_fetched=bool(r[10]),
                interval=r[11],
            )
            for r in rows
        ]

    async def next_due_time(self) -> datetime | None:
        row = await self._fetchone(
            "SELECT min(next_check_at) FROM feeds WHERE configured AND NOT disabled"
        )
        return from_timestamp(row[0]) if row and row[0] is not None else None

    async def record_unchanged(
        self,
        feed_id: int,
        *,
        now: datetime,
        next_check: datetime,
        etag: str | None,
        last_modified: str | None,
        fetch_url: str | None,
    ) -> None:
        """A 304, or a body identical to the last one: healthy, nothing new."""
        async with self._transaction() as db:
            await db.execute(
                """
                UPDATE feeds SET etag = ?, last_modified = ?, next_check_at = ?,
                    last_checked_at = ?, last_success_at = ?, error_count = 0, last_error = NULL,
                    fetch_url = COALESCE(?, fetch_url)
                WHERE id = ?
                """,
                (
                    etag,
                    last_modified,
                    to_timestamp(next_check),
                    to_timestamp(now),
                    to_timestamp(now),
                    fetch_url,
                    feed_id,
                ),
            )

    async def record_failure(
        self,
        feed_id: int,
        *,
        now: datetime,
        error: str,
        next_check: datetime,
        disable: bool = False,
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                """
                UPDATE feeds SET error_count = error_count + 1, last_error = ?,
                    next_check_at = ?, last_checked_at = ?, disabled = disabled OR ?
                WHERE id = ?
                """,
                (error[:1000], to_timestamp(next_check), to_timestamp(now), disable, feed_id),
            )

    async def store_articles(
        self,
        feed: FeedForUpdate,
        articles: Sequence[NewArticle],
        *,
        now: datetime,
        next_check: datetime,
        feed_title: str,
        site_url: str | None,
        body_hash: str,
        etag: str | None,
        last_modified: str | None,
        fetch_url: str | None,
        deliver_limit: int = 1_000_000,
    ) -> StoreOutcome:
        """Store a successful parse in one transaction: the feed's new state, the
        articles not seen before, their search index entries (by trigger) and,
        unless this is the feed's first fetch, their outbox rows (for at most
        ``deliver_limit`` of the newest, so a feed that suddenly lists hundreds
        of "new" items cannot flood every subscriber).

        ``articles`` come in the feed's own order (first = newest). An entry
        counts as seen when the feed already has its key, or when an article
        with the same URL exists. When that article came from another feed,
        the entry is the same story syndicated there: the article gains this
        feed's categories, and the chats of the categories it gained get it
        (still once per chat). A feed counts as fetched once a fetch held at
        least one entry: an empty first answer must not turn the next, full
        one into a flood of cards.
        """
        ts = to_timestamp(now)
        async with self._transaction() as db:
            await db.execute(
                """
                UPDATE feeds SET title = ?, site_url = ?, body_hash = ?, etag = ?,
                    last_modified = ?, next_check_at = ?, last_checked_at = ?,
                    last_success_at = ?, error_count = 0, last_error = NULL,
                    ever_fetched = ever_fetched OR ?, fetch_url = COALESCE(?, fetch_url)
                WHERE id = ?
                """,
                (
                    feed_title,
                    site_url,
                    body_hash,
                    etag,
                    last_modified,
                    to_timestamp(next_check),
                    ts,
                    ts,
                    bool(articles),
                    fetch_url,
                    feed.id,
                ),
            )
            if not articles:
                return StoreOutcome(0, 0)
            fresh, same_story = await self._unseen(db, feed, articles, site_url)
            inserted = await self._insert_articles(db, feed, fresh, ts)
            delivered = 0
            if feed.ever_fetched and inserted:
                delivered = await self._enqueue_new(db, inserted, deliver_limit, ts)
            if same_story:
                delivered += await self._merge_same_stories(db, feed, same_story, deliver_limit, ts)
            return StoreOutcome(len(inserted), delivered)

    async def _insert_articles(
        self, db: aiosqlite.Connection, feed: FeedForUpdate, fresh: Sequence[NewArticle], ts: int
    ) -> list[int]:
        """Insert ``fresh`` (feed order) and return the new ids. Inserted last
        entry first, so that among entries of equal time (undated ones all
        get the fetch time) a later id means higher in the feed, i.e. newer:
        "newest first" sorts by time, then id."""
        if not fresh:
            return []
        async with db.execute("SELECT COALESCE(max(id), 0) FROM articles") as cursor:
            row = await cursor.fetchone()
        before = int(row[0]) if row else 0
        await db.executemany(
            """
            INSERT OR IGNORE INTO articles (feed_id, entry_key, url, title, summary, author,
                image_url, categories, published_at, first_seen_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                (
                    feed.id,
                    a.key,
                    a.url,
                    a.title,
                    a.summary,
                    a.author,
                    a.image_url,
                    " ".join(a.categories),
                    to_timestamp(a.published),
                    ts,
                )
                for a in reversed(fresh)
            ],
        )
        await db.execute(
            """
            INSERT OR IGNORE INTO article_categories (category_id, published_at, article_id)
            SELECT value, a.published_at, a.id
            FROM articles AS a, json_each('["' || replace(a.categories, ' ', '","') || '"]')
            WHERE a.id > ? AND a.categories != ''
            """,
            (before,),
        )
        # This transaction is the only writer: the new rows are those above ``before``.
        async with db.execute("SELECT id FROM articles WHERE id > ?", (before,)) as cursor:
            return [int(r[0]) for r in await cursor.fetchall()]

    async def _enqueue_new(
        self, db: aiosqlite.Connection, article_ids: Sequence[int], limit: int, ts: int
    ) -> int:
        """Outbox rows for the newest ``limit`` of ``article_ids``, for every
        active chat subscribed to one of their categories."""
        cursor = await db.execute(
            """
            INSERT OR IGNORE INTO deliveries (article_id, chat_id, next_attempt_at, created_at)
            SELECT DISTINCT ac.article_id, s.chat_id, ?, ?
            FROM article_categories AS ac
            JOIN subscriptions AS s ON s.category_id = ac.category_id
            JOIN chats AS c ON c.id = s.chat_id AND c.active
            WHERE ac.article_id IN (
                SELECT id FROM articles WHERE id IN (SELECT value FROM json_each(?))
                ORDER BY published_at DESC, id DESC LIMIT ?)
            -- Oldest story first: a chat reads a batch in the order it happened.
            ORDER BY ac.published_at, ac.article_id
            """,
            (ts, ts, json.dumps(list(article_ids)), limit),
        )
        return cursor.rowcount

    async def _merge_same_stories(
        self,
        db: aiosqlite.Connection,
        feed: FeedForUpdate,
        same_story: Sequence[tuple[NewArticle, int]],
        limit: int,
        ts: int,
    ) -> int:
        """Entries of this feed that are stories stored from another feed:
        remember the entry, add this feed's categories to the story, and queue
        it for the chats of the categories it gained."""
        delivered = 0
        for entry, article_id in same_story[:limit]:
            await db.execute(
                "INSERT OR IGNORE INTO article_aliases (feed_id, entry_key, article_id) "
                "VALUES (?, ?, ?)",
                (feed.id, entry.key, article_id),
            )
            gained = []
            for category_id in entry.categories:
                cursor = await db.execute(
                    "INSERT OR IGNORE INTO article_categories (category_id, published_at, "
                    "article_id) SELECT ?, published_at, id FROM articles WHERE id = ?",
                    (category_id, article_id),
                )
                if cursor.rowcount:
                    gained.append(category_id)
            if not gained:
                continue
            await db.execute(
                "UPDATE articles SET categories = trim(categories || ' ' || ?) WHERE id = ?",
                (" ".join(gained), article_id),
            )
            if not feed.ever_fetched:
                continue  # a feed's first fetch sends nothing, whatever it carries
            marks = ",".join("?" * len(gained))
            cursor = await db.execute(
                f"""
                INSERT OR IGNORE INTO deliveries (article_id, chat_id, next_attempt_at, created_at)
                SELECT DISTINCT ?, s.chat_id, ?, ?
                FROM subscriptions AS s JOIN chats AS c ON c.id = s.chat_id AND c.active
                WHERE s.category_id IN ({marks})
                """,
                (article_id, ts, ts, *gained),
            )
            delivered += cursor.rowcount
        return delivered

    async def _unseen(
        self,
        db: aiosqlite.Connection,
        feed: FeedForUpdate,
        articles: Sequence[NewArticle],
        site_url: str | None,
    ) -> tuple[list[NewArticle], list[tuple[NewArticle, int]]]:
        """The entries never seen before, and those that are a story stored
        from another feed (with that article's id)."""
        known_keys: set[str] = set()
        for chunk in _chunks([a.key for a in articles]):
            marks = ",".join("?" * len(chunk))
            async with db.execute(
                f"""
                SELECT entry_key FROM articles WHERE feed_id = ? AND entry_key IN ({marks})
                UNION ALL
                SELECT entry_key FROM article_aliases WHERE feed_id = ? AND entry_key IN ({marks})
                """,
                (feed.id, *chunk, feed.id, *chunk),
            ) as cursor:
                known_keys.update(r[0] for r in await cursor.fetchall())
        candidates = [a for a in articles if a.key not in known_keys]
        # URL de-duplication only for URLs that name one story: an entry
        # without a link falls back to the site's URL, which many share.
        generic = {u for u in (site_url, feed.url, feed.fetch_url) if u}
        urls = [a.url for a in candidates if a.url not in generic]
        known_urls: dict[str, tuple[int, int]] = {}  # url -> (article id, its feed)
        for chunk in _chunks(urls):
            marks = ",".join("?" * len(chunk))
            async with db.execute(
                f"SELECT url, min(id), feed_id FROM articles WHERE url IN ({marks}) GROUP BY url",
                tuple(chunk),
            ) as cursor:
                known_urls.update((r[0], (r[1], r[2])) for r in await cursor.fetchall())
        fresh = []
        same_story = []
        batch_urls: set[str] = set()
        for article in candidates:
            if article.url not in generic:
                if article.url in batch_urls:
                    continue
                batch_urls.add(article.url)
                known = known_urls.get(article.url)
                if known is not None:
                    # The same feed under a new GUID is not news; another
                    # feed carrying the story may add categories to it.
                    if known[1] != feed.id:
                        same_story.append((article, known[0]))
                    continue
            fresh.append(article)
        return fresh, same_story

    async def feed_health(self) -> list[FeedHealth]:
        """Every configured feed's state, by id."""
        return await self._feed_rows("WHERE f.configured")

    async def all_feeds(self) -> list[FeedHealth]:
        """Every feed the database knows, those dropped from the config too."""
        return await self._feed_rows("")

    async def _feed_rows(self, where: str) -> list[FeedHealth]:
        rows = await self._fetchall(
            f"""
            SELECT f.id, f.url, f.fetch_url, COALESCE(f.name, f.title), f.error_count,
                   f.last_error, f.disabled, f.next_check_at, f.last_success_at,
                   (SELECT count(*) FROM articles AS a WHERE a.feed_id = f.id),
                   f.configured, f.last_checked_at
            FROM feeds AS f {where} ORDER BY f.id
            """
        )
        return [
            FeedHealth(
                id=r[0],
                url=r[1],
                fetch_url=r[2],
                title=r[3],
                error_count=r[4],
                last_error=r[5],
                disabled=bool(r[6]),
                next_check_at=from_timestamp(r[7]) if r[7] else None,
                last_success_at=from_timestamp(r[8]) if r[8] else None,
                articles=r[9],
                configured=bool(r[10]),
                last_checked_at=from_timestamp(r[11]) if r[11] else None,
            )
            for r in rows
        ]

    async def resume_feed(self, feed_id: int, now: datetime) -> bool:
        """Re-enable a feed (disabled by 410 Gone, or backing off after
        failures) and make it due now. False if there is no such feed."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE feeds SET disabled = 0, next_check_at = ? WHERE id = ?",
                (to_timestamp(now), feed_id),
            )
            return cursor.rowcount > 0

    # -- reading articles ------------------------------------------------

    async def latest_articles(self, category_id: str | None, limit: int) -> list[Article]:
        if category_id is None:
            rows = await self._fetchall(
                f"""
                SELECT {_ARTICLE_COLUMNS} FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
                ORDER BY a.published_at DESC, a.id DESC LIMIT ?
                """,
                (limit,),
            )
        else:
            rows = await self._fetchall(
                f"""
                SELECT {_ARTICLE_COLUMNS}
                FROM article_categories AS ac
                JOIN articles AS a ON a.id = ac.article_id
                JOIN feeds AS f ON f.id = a.feed_id
                WHERE ac.category_id = ?
                ORDER BY ac.published_at DESC, ac.article_id DESC LIMIT ?
                """,
                (category_id, limit),
            )
        return [_article(r) for r in rows]

    async def search_articles(self, text: str, limit: int, offset: int = 0) -> list[Article]:
        """Best matches first. Any text is accepted; text without a word gives
        no results.

        A selective query (at most ``selective`` matches) is ranked by bm25
        (title weighted 10:1), newest first on ties. For a broader one bm25
        would cost time in proportion to its words' posting lists (two common
        words in a million articles: over 100 ms), so the ``candidates``
        newest matches (most recently stored: FTS5 walks its index from the
        newest row and stops there) are ordered by how many of the query's
        words their title contains, then newest first: for a query that
        common, recent headlines about it are the ones wanted. Words are
        FTS5's own tokens (Unicode-aware, diacritics folded, whole words:
        "ai" does not count for "said"), found with a title-only query per
        word over the candidates' range of ids.
        """
        selective, candidates = 100, 1000
        query = build_match_query(text)
        if query is None:
            return []
        try:
            newest = await self._fetchall(
                "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? "
                "ORDER BY rowid DESC LIMIT ?",
                (query, candidates),
            )
            if len(newest) <= selective:
                rows = await self._fetchall(
                    f"""
                    SELECT {_ARTICLE_COLUMNS}
                    FROM articles_fts
                    JOIN articles AS a ON a.id = articles_fts.rowid
                    JOIN feeds AS f ON f.id = a.feed_id
                    WHERE articles_fts MATCH ?
                    ORDER BY bm25(articles_fts, 10.0, 1.0), a.published_at DESC, a.id DESC
                    LIMIT ? OFFSET ?
                    """,
                    (query, limit, offset),
                )
            else:
                rows = await self._rank_broad_matches(query, [r[0] for r in newest], limit, offset)
        except StorageError as error:
            # The query builder makes this unreachable for any input we know
            # of; should FTS5 still object, the user sees "no results".
            log.warning("storage: search %r failed: %s", query, error)
            return []
        return [_article(r) for r in rows]

    async def _rank_broad_matches(
        self, query: str, candidates: Sequence[int], limit: int, offset: int
    ) -> list[Any]:
        in_title: dict[int, int] = dict.fromkeys(candidates, 0)
        lowest = min(candidates)
        for term in query.split(" "):
            # Each term is a quoted token (build_match_query), safe after "title :".
            for (rowid,) in await self._fetchall(
                "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? AND rowid >= ?",
                (f"title : {term}", lowest),
            ):
                if rowid in in_title:
                    in_title[rowid] += 1
        published = await self._fetchall(
            "SELECT id, published_at FROM articles WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(candidates)),),
        )
        ranked = sorted(published, key=lambda r: (-in_title[r[0]], -r[1], -r[0]))
        page = [r[0] for r in ranked[offset : offset + limit]]
        if not page:
            return []
        rows = await self._fetchall(
            f"""
            SELECT {_ARTICLE_COLUMNS}
            FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
            WHERE a.id IN (SELECT value FROM json_each(?))
            """,
            (json.dumps(page),),
        )
        order = {article_id: position for position, article_id in enumerate(page)}
        return sorted(rows, key=lambda r: order[r[0]])

    async def remember_search(self, query: str, now: datetime) -> int:
        """A short key for ``query``, for a paging button's 64 bytes."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO search_queries (query, created_at) VALUES (?, ?)",
                (query, to_timestamp(now)),
            )
            async with db.execute(
                "SELECT id FROM search_queries WHERE query = ?", (query,)
            ) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def recall_search(self, key: int) -> str | None:
        row = await self._fetchone("SELECT query FROM search_queries WHERE id = ?", (key,))
        return str(row[0]) if row else None

    async def category_counts(self, since: datetime) -> dict[str, int]:
        rows = await self._fetchall(
            """
            SELECT category_id, count(*) FROM article_categories
            WHERE published_at >= ? GROUP BY category_id
            """,
            (to_timestamp(since),),
        )
        return {r[0]: r[1] for r in rows}

    async def article_count(self) -> int:
        row = await self._fetchone("SELECT count(*) FROM articles")
        return int(row[0]) if row else 0

    # -- chats and subscriptions -----------------------------------------

    async def upsert_chat(
        self,
        chat_id: int,
        chat_type: str,
        title: str | None,
        username: str | None,
        now: datetime,
        *,
        reactivate: bool = False,
    ) -> None:
        ts = to_timestamp(now)
        async with self._transaction() as db:
            await db.execute(
                """
                INSERT INTO chats (id, type, title, username, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET type = excluded.type, title = excluded.title,
                    username = excluded.username, updated_at = excluded.updated_at,
                    active = CASE WHEN ? THEN 1 ELSE active END,
                    inactive_reason = CASE WHEN ? THEN NULL ELSE inactive_reason END
                """,
                (chat_id, chat_type, title, username, ts, ts, reactivate, reactivate),
            )

    async def get_chat(self, chat_id: int) -> Chat | None:
        row = await self._fetchone(
            "SELECT id, type, title, username, active FROM chats WHERE id = ?", (chat_id,)
        )
        return Chat(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    async def subscribe(
        self, chat_id: int, category_ids: Iterable[str], now: datetime
    ) -> list[str]:
        """Add subscriptions; returns the ones that were new."""
        added = []
        async with self._transaction() as db:
            for category_id in category_ids:
                cursor = await db.execute(
                    "INSERT OR IGNORE INTO subscriptions (chat_id, category_id, created_at) "
                    "VALUES (?, ?, ?)",
                    (chat_id, category_id, to_timestamp(now)),
                )
                if cursor.rowcount:
                    added.append(category_id)
        return added

    async def unsubscribe(self, chat_id: int, category_ids: Iterable[str] | None) -> list[str]:
        """Remove subscriptions (all when ``category_ids`` is None); returns the
        removed ones. Pending cards of categories the chat no longer follows
        are dropped unless another subscribed category still matches them."""
        async with self._transaction() as db:
            async with db.execute(
                "SELECT category_id FROM subscriptions WHERE chat_id = ?", (chat_id,)
            ) as cursor:
                current = {r[0] for r in await cursor.fetchall()}
            targets = current if category_ids is None else current & set(category_ids)
            for category_id in targets:
                await db.execute(
                    "DELETE FROM subscriptions WHERE chat_id = ? AND category_id = ?",
                    (chat_id, category_id),
                )
            if targets:
                await db.execute(
                    """
                    UPDATE deliveries SET status = 'dropped', error = 'unsubscribed'
                    WHERE chat_id = ? AND status = 'pending' AND NOT EXISTS (
                        SELECT 1 FROM article_categories AS ac
                        JOIN subscriptions AS s
                          ON s.category_id = ac.category_id AND s.chat_id = deliveries.chat_id
                        WHERE ac.article_id = deliveries.article_id)
                    """,
                    (chat_id,),
                )
        return sorted(targets)

    async def subscriptions(self, chat_id: int) -> list[str]:
        rows = await self._fetchall(
            "SELECT category_id FROM subscriptions WHERE chat_id = ? ORDER BY category_id",
            (chat_id,),
        )
        return [r[0] for r in rows]

    async def deactivate_chat(self, chat_id: int, reason: str, now: datetime) -> int:
        """Pause a chat (blocked, kicked, gone) and drop its pending cards.
        Subscriptions are kept so re-adding the bot restores them. Returns the
        number of dropped cards."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE chats SET active = 0, inactive_reason = ?, updated_at = ? WHERE id = ?",
                (reason[:500], to_timestamp(now), chat_id),
            )
            cursor = await db.execute(
                "UPDATE deliveries SET status = 'dropped', error = ? "
                "WHERE chat_id = ? AND status = 'pending'",
                (reason[:500], chat_id),
            )
            return cursor.rowcount

    async def migrate_chat(self, old_id: int, new_id: int, now: datetime) -> None:
        """A group became a supergroup: keep subscriptions and pending cards
        under the new id (ON UPDATE CASCADE moves the rows)."""
        async with self._transaction() as db:
            async with db.execute("SELECT 1 FROM chats WHERE id = ?", (new_id,)) as cursor:
                exists = await cursor.fetchone() is not None
            if exists:
                # The bot already met the supergroup: merge into it.
                await db.execute(
                    "INSERT OR IGNORE INTO subscriptions (chat_id, category_id, created_at) "
                    "SELECT ?, category_id, created_at FROM subscriptions WHERE chat_id = ?",
                    (new_id, old_id),
                )
                await db.execute(
                    "UPDATE OR IGNORE deliveries SET chat_id = ? WHERE chat_id = ?",
                    (new_id, old_id),
                )
                await db.execute("DELETE FROM chats WHERE id = ?", (old_id,))
            else:
                await db.execute(
                    "UPDATE chats SET id = ?, type = 'supergroup', updated_at = ? WHERE id = ?",
                    (new_id, to_timestamp(now), old_id),
                )

    async def suspend_chat(self, chat_id: int, reason: str, now: datetime) -> None:
        """The bot may no longer post in this chat (not an admin any more, a
        closed topic): hold its cards, neither sent nor failed, until
        ``resume_chat``."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE chats SET suspended_reason = ?, updated_at = ? WHERE id = ?",
                (reason[:500] or "no right to post", to_timestamp(now), chat_id),
            )

    async def resume_chat(self, chat_id: int, now: datetime) -> bool:
        """The right to post is back; returns whether the chat was suspended."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE chats SET suspended_reason = NULL, updated_at = ? "
                "WHERE id = ? AND suspended_reason IS NOT NULL",
                (to_timestamp(now), chat_id),
            )
            return cursor.rowcount > 0

    async def pause_chat(self, chat_id: int, until: datetime) -> None:
        """Telegram asked this chat's sends to wait (a 429 with retry_after)."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE chats SET paused_until = max(paused_until, ?) WHERE id = ?",
                (to_timestamp(until), chat_id),
            )

    async def suspended_chats(self) -> list[SuspendedChat]:
        rows = await self._fetchall(
            """
            SELECT c.id, c.type, c.title, c.username, c.suspended_reason,
                   (SELECT count(*) FROM deliveries AS d
                    WHERE d.chat_id = c.id AND d.status = 'pending')
            FROM chats AS c WHERE c.suspended_reason IS NOT NULL AND c.active ORDER BY c.id
            """
        )
        return [SuspendedChat(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # -- the outbox ------------------------------------------------------

    async def pending_deliveries(
        self, now: datetime, limit: int, exclude_chats: Iterable[int] = ()
    ) -> list[PendingDelivery]:
        """Due outbox rows, oldest first, at most one per chat (per-chat order
        is kept by sending a chat's next card only after its previous one).
        Chats that are suspended (no right to post) or paused (Telegram asked
        them to wait) are left out; their cards stay pending."""
        excluded = tuple(exclude_chats)
        marks = ",".join("?" * len(excluded))
        exclusion = f"AND d.chat_id NOT IN ({marks})" if excluded else ""
        ts = to_timestamp(now)
        rows = await self._fetchall(
            f"""
            SELECT d.id, d.chat_id, c.type, d.attempts, d.created_at, {_ARTICLE_COLUMNS}
            FROM deliveries AS d
            JOIN chats AS c ON c.id = d.chat_id
            JOIN articles AS a ON a.id = d.article_id
            JOIN feeds AS f ON f.id = a.feed_id
            WHERE d.id IN (
                SELECT min(id) FROM deliveries
                WHERE status = 'pending' GROUP BY chat_id
            ) AND d.next_attempt_at <= ? AND c.suspended_reason IS NULL
              AND c.paused_until <= ? {exclusion}
            ORDER BY d.id
            LIMIT ?
            """,
            (ts, ts, *excluded, limit),
        )
        return [
            PendingDelivery(r[0], r[1], r[2], r[3], from_timestamp(r[4]), _article(r[5:]))
            for r in rows
        ]

    async def has_pending_deliveries(self) -> bool:
        """Is any card waiting that could go out, now or after a retry wait?
        Cards of suspended chats wait for the right to post, not for time."""
        row = await self._fetchone(
            """
            SELECT EXISTS (
                SELECT 1 FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
                WHERE d.status = 'pending' AND c.suspended_reason IS NULL)
            """
        )
        return bool(row and row[0])

    async def mark_sent(self, delivery_id: int, message_id: int, now: datetime) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
                "attempts = attempts + 1, error = NULL WHERE id = ?",
                (message_id, to_timestamp(now), delivery_id),
            )

    async def mark_retry(
        self, delivery_id: int, next_attempt: datetime, error: str, *, count_attempt: bool = True
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, error = ?, "
                "attempts = attempts + ? WHERE id = ?",
                (to_timestamp(next_attempt), error[:500], 1 if count_attempt else 0, delivery_id),
            )

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET status = 'failed', error = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (error[:500], delivery_id),
            )

    async def drop_stale_deliveries(self, older_than: datetime) -> int:
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE deliveries SET status = 'dropped', error = 'too old' "
                "WHERE status = 'pending' AND created_at < ?",
                (to_timestamp(older_than),),
            )
            return cursor.rowcount

    async def mark_dropped(self, delivery_id: int, reason: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET status = 'dropped', error = ? WHERE id = ?",
                (reason[:500], delivery_id),
            )

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._fetchall("SELECT status, count(*) FROM deliveries GROUP BY status")
        return {r[0]: r[1] for r in rows}

    async def next_delivery_time(self) -> datetime | None:
        row = await self._fetchone(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
        )
        return from_timestamp(row[0]) if row and row[0] is not None else None

    # -- small shared values -----------------------------------------------

    async def get_state(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM state WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_state_if_absent(self, key: str, value: str, now: datetime) -> str:
        """Store ``value`` under ``key`` unless one is there; returns the value
        that is stored (the first writer's, when two race)."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO state (key, value, updated_at) VALUES (?, ?, ?)",
                (key, value, to_timestamp(now)),
            )
            async with db.execute("SELECT value FROM state WHERE key = ?", (key,)) as cursor:
                row = await cursor.fetchone()
        assert row is not None
        return str(row[0])
