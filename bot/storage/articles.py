"""Articles: storing a parsed feed, and reading headlines back.

``store_articles`` is the write side of a polling round, in ONE transaction:
the feed's new state, what ``bot.decide`` made of its entries (new articles,
corrections of stored ones, stories another feed carried first), their
categories, and the outbox rows ``bot.route`` chose for them (with the
subscribed chats' keyword filters and forum topics, so a filtered article
never enters a chat's outbox and a card knows its topic). The search index
follows in the same transaction (SQLite triggers into FTS5, a PostgreSQL
trigger into the ``tsvector`` column). On PostgreSQL, pollers on
several machines store one feed at a time under an advisory lock, so two of
them never both take a story carried by two feeds for new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.clock import to_timestamp
from bot.decide import FeedDecision, StoredEntry, decide
from bot.filters import ArticleText, ChatFilter
from bot.models import Article, FeedForUpdate, NewArticle
from bot.route import ChatRouting, Subscription, route
from bot.storage import edits, feeds, outbox
from bot.storage.chats import filter_from_row, settings_of_chats
from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row, tags_from_column, tags_to_column

# pg_advisory_xact_lock key for storing a parsed feed.
INGEST_LOCK = 7_201_002


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    new_articles: int
    deliveries: int
    corrected: int = 0


@dataclass(frozen=True, slots=True)
class _Target:
    """An article to route: new, or a stored story that gained categories."""

    article_id: int
    categories: tuple[str, ...]
    published: int


_ARTICLE_INSERT_COLUMNS = (
    "feed_id, entry_key, url, title, summary, author, image_url, categories, "
    "published_at, first_seen_at, tags"
)


async def insert_categories(tx: Tx, dialect: Dialect, rows: Sequence[tuple[str, int, int]]) -> None:
    """(category, published, article id) rows, those already there left as
    they are; on PostgreSQL as one statement (see ``_insert_articles``)."""
    if not rows:
        return
    if dialect.name == "postgresql":
        await tx.execute(
            """
            INSERT INTO article_categories (category_id, published_at, article_id)
            SELECT * FROM unnest(?::text[], ?::bigint[], ?::bigint[])
            ON CONFLICT DO NOTHING
            """,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )
        return
    await tx.executemany(
        "INSERT INTO article_categories (category_id, published_at, article_id) "
        "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        rows,
    )


class SqlArticles:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        items: Mapping[str, str] | None = None,
        edit_window: float = 48 * 3600.0,
        pushed: bool = False,
    ) -> StoreOutcome:
        """Store a successful parse. ``articles`` come in the feed's own
        order (first = newest). Unless this is the feed's first fetch, the
        newest ``deliver_limit`` of the new stories become cards, so a feed
        that suddenly lists hundreds of "new" items cannot flood anyone.
        ``items`` are the parsed body's items (digest -> entry key, see
        ``bot.items``) to remember in place of the last body's; ``articles``
        may then be only the entries of its new and changed items.
        Corrections of stories already sent ask for their cards to be
        edited, up to ``edit_window`` seconds after each was sent.

        ``pushed``: a body a WebSub hub pushed, not a fetch: the feed's
        remembered items (a push is not its whole body) and any poller's
        claim on it (a fetch may be under way) stay as they are."""
        ts = to_timestamp(now)
        async with self._db.transaction() as tx:
            # The feed's own row first, then (on PostgreSQL) the lock for
            # what feeds share: every store locks in this order, so a push
            # and a fetch of one feed cannot deadlock, and the lock is held
            # only for the statements that need it.
            await feeds.record_success(
                tx,
                feed.id,
                now=now,
                next_check=next_check,
                feed_title=feed_title,
                site_url=site_url,
                body_hash=body_hash,
                etag=etag,
                last_modified=last_modified,
                fetch_url=fetch_url,
                held_entries=bool(articles),
                release_claim=not pushed,
            )
            if not pushed:
                await feeds.remember_items(tx, self._db.dialect, feed.id, items or {})
            if not articles:
                return StoreOutcome(0, 0)
            if self._db.backend == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(?)", INGEST_LOCK)
            # URLs that name no single story: entries without a link fall back to them.
            generic = frozenset(u for u in (site_url, feed.url, feed.fetch_url) if u)
            known_keys, known_urls, published = await self._known(tx, feed.id, articles, generic)
            decision = decide(feed.id, articles, known_keys, known_urls, generic)
            targets = await self._insert_new(tx, feed, decision.new, ts)
            await self._correct(tx, decision, ts, edit_window)
            targets += await self._merge_same_stories(tx, feed, decision, published)
            delivered = 0
            if feed.ever_fetched and targets:
                delivered = await self._route(tx, targets, deliver_limit, ts)
            return StoreOutcome(len(decision.new), delivered, len(decision.changed))

    async def _known(
        self, tx: Tx, feed_id: int, articles: Sequence[NewArticle], generic: frozenset[str]
    ) -> tuple[dict[str, StoredEntry], dict[str, StoredEntry], dict[int, int]]:
        """What is stored of ``articles``, in one statement: this feed's
        entries by key (its own articles, and stories of other feeds it
        carries: aliases); for the entries it does not know, the stories
        stored by URL (the first stored, when several share one); and the
        publication times of the latter."""
        dialect = self._db.dialect
        keys = dialect.texts([a.key for a in articles])
        rows = await tx.fetch(
            f"""
            SELECT 0 AS part, a.entry_key, a.id, a.feed_id, a.title, a.summary, a.categories,
                a.published_at
            FROM articles AS a WHERE a.feed_id = ? AND {dialect.in_texts("a.entry_key")}
            UNION ALL
            SELECT 1, al.entry_key, a.id, a.feed_id, a.title, a.summary, a.categories,
                a.published_at
            FROM article_aliases AS al JOIN articles AS a ON a.id = al.article_id
            WHERE al.feed_id = ? AND {dialect.in_texts("al.entry_key")}
            UNION ALL
            SELECT 2, a.url, a.id, a.feed_id, a.title, a.summary, a.categories, a.published_at
            FROM articles AS a WHERE {dialect.in_texts("a.url")}
            ORDER BY part, id DESC
            """,
            feed_id,
            keys,
            feed_id,
            keys,
            dialect.texts({a.url for a in articles if a.url not in generic}),
        )
        known_keys = {
            r[1]: StoredEntry(r[2], r[3], r[4], r[5], tuple(r[6].split())) for r in rows if r[0] < 2
        }
        # Only the URLs of entries this feed does not know count.
        urls = {a.url for a in articles if a.key not in known_keys and a.url not in generic}
        by_url = [r for r in rows if r[0] == 2 and r[1] in urls]
        # Newest id first, so the oldest article of a URL is the one kept.
        known_urls = {
            r[1]: StoredEntry(r[2], r[3], r[4], r[5], tuple(r[6].split())) for r in by_url
        }
        return known_keys, known_urls, {r[2]: r[7] for r in by_url}

    async def _insert_new(
        self, tx: Tx, feed: FeedForUpdate, fresh: Sequence[NewArticle], ts: int
    ) -> list[_Target]:
        """Insert new articles, last entry first: among entries of equal time
        (undated ones all get the fetch time) a later id then means higher
        in the feed, i.e. newer, and "newest first" sorts by time, then id."""
        if not fresh:
            return []
        rows = [
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
                tags_to_column(a.tags),
            )
            for a in reversed(fresh)
        ]
        # Each entry's categories, for the articles stored now.
        categories = [(a.key, c, to_timestamp(a.published)) for a in fresh for c in a.categories]
        ids = await self._insert_articles(tx, rows, categories, feed.id)
        return [
            _Target(ids[a.key], a.categories, to_timestamp(a.published))
            for a in fresh
            if a.key in ids
        ]

    async def _insert_articles(
        self,
        tx: Tx,
        rows: Sequence[tuple[Any, ...]],
        categories: Sequence[tuple[str, str, int]],
        feed_id: int,
    ) -> dict[str, int]:
        """Insert ``rows`` (in ``_ARTICLE_INSERT_COLUMNS`` order) in this order,
        and the (entry key, category, published) ``categories`` of those
        inserted; returns the ids of the entry keys stored now. On PostgreSQL
        this is one statement: row by row, each statement would be parsed,
        planned and run on its own, and the search vector's lexemes are
        written once for the statement instead of once per article. Stores
        are serialised (``INGEST_LOCK``), so each trip to the server saved
        here shortens the whole round."""
        if self._db.backend == "postgresql":
            columns = list(zip(*rows, strict=True))
            returned = await tx.fetch(
                f"""
                WITH added AS (
                    INSERT INTO articles ({_ARTICLE_INSERT_COLUMNS})
                    SELECT ?, t.entry_key, t.url, t.title, t.summary, t.author, t.image_url,
                        t.categories, t.published_at, ?, t.tags
                    FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
                            ?::text[], ?::text[], ?::bigint[], ?::text[])
                        WITH ORDINALITY AS t(entry_key, url, title, summary, author,
                            image_url, categories, published_at, tags, n)
                    ORDER BY t.n
                    ON CONFLICT (feed_id, entry_key) DO NOTHING
                    RETURNING entry_key, id
                ), categorized AS (
                    INSERT INTO article_categories (category_id, published_at, article_id)
                    SELECT c.category_id, c.published_at, added.id
                    FROM unnest(?::text[], ?::text[], ?::bigint[])
                        AS c(entry_key, category_id, published_at)
                    JOIN added ON added.entry_key = c.entry_key
                    ON CONFLICT DO NOTHING
                )
                SELECT entry_key, id FROM added
                """,
                feed_id,
                rows[0][9],
                *(list(column) for column in columns[1:9]),
                list(columns[10]),
                [c[0] for c in categories],
                [c[1] for c in categories],
                [c[2] for c in categories],
            )
            return {r[0]: int(r[1]) for r in returned}
        await tx.executemany(
            f"""
            INSERT INTO articles ({_ARTICLE_INSERT_COLUMNS})
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (feed_id, entry_key) DO NOTHING
            """,
            rows,
        )
        dialect = self._db.dialect
        selected = await tx.fetch(
            f"SELECT entry_key, id FROM articles WHERE feed_id = ? AND {dialect.in_texts('entry_key')}",
            feed_id,
            dialect.texts([r[1] for r in rows]),
        )
        ids = {r[0]: int(r[1]) for r in selected}
        await insert_categories(
            tx,
            dialect,
            [(c, published, ids[key]) for key, c, published in categories if key in ids],
        )
        return ids

    async def _correct(self, tx: Tx, decision: FeedDecision, ts: int, edit_window: float) -> None:
        """The publisher corrected a title or summary: keep the new text (the
        search index follows by trigger) and when it changed, and have the
        cards already sent follow it."""
        if decision.changed:
            await tx.executemany(
                "UPDATE articles SET title = ?, summary = ?, changed_at = ? WHERE id = ?",
                [(c.title, c.summary, ts, c.article_id) for c in decision.changed],
            )
            await edits.schedule_edits(
                tx, self._db.dialect, [c.article_id for c in decision.changed], ts, edit_window
            )

    async def _merge_same_stories(
        self, tx: Tx, feed: FeedForUpdate, decision: FeedDecision, published: Mapping[int, int]
    ) -> list[_Target]:
        """Entries of this feed that are stories stored from another feed:
        remember the entry, and add the categories the story gains."""
        targets = []
        for same in decision.same_story:
            await tx.execute(
                "INSERT INTO article_aliases (feed_id, entry_key, article_id) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                feed.id,
                same.entry.key,
                same.article_id,
            )
            if not same.gained:
                continue
            when = published[same.article_id]
            await insert_categories(
                tx, self._db.dialect, [(c, when, same.article_id) for c in same.gained]
            )
            await tx.execute(
                "UPDATE articles SET categories = trim(categories || ' ' || ?) WHERE id = ?",
                " ".join(same.gained),
                same.article_id,
            )
            targets.append(_Target(same.article_id, same.gained, when))
        return targets

    async def _route(self, tx: Tx, targets: Sequence[_Target], limit: int, ts: int) -> int:
        """Queue the newest ``limit`` targets for the chats ``route`` picks,
        oldest story first: a chat reads a batch in the order it happened."""
        newest = sorted(targets, key=lambda t: (t.published, t.article_id), reverse=True)[:limit]
        categories = sorted({c for t in newest for c in t.categories})
        dialect = self._db.dialect
        rows = await tx.fetch(
            f"""
            SELECT s.chat_id, s.category_id, c.active, s.thread_id
            FROM subscriptions AS s JOIN chats AS c ON c.id = s.chat_id
            WHERE {dialect.in_texts("s.category_id")}
            """,
            dialect.texts(categories),
        )
        subscriptions = [Subscription(r[0], r[1], r[3]) for r in rows]
        filters = await self._filters(tx, {r[0] for r in rows})
        settings = await settings_of_chats(tx, dialect, {r[0] for r in rows})
        chats = {
            r[0]: ChatRouting(r[0], bool(r[2]), filters.get(r[0], ()), settings.get(r[0]))
            for r in rows
        }
        texts = await self._texts(tx, [t.article_id for t in newest]) if filters else {}
        cards = [
            (target.article_id, delivery.chat_id, delivery.thread_id)
            for target in reversed(newest)
            for delivery in route(
                target.categories, subscriptions, chats, texts.get(target.article_id)
            )
        ]
        return await outbox.enqueue(tx, dialect, cards, ts)

    async def _filters(self, tx: Tx, chat_ids: set[int]) -> dict[int, tuple[ChatFilter, ...]]:
        """The keyword filters of the chats an article may go to."""
        if not chat_ids:
            return {}
        dialect = self._db.dialect
        rows = await tx.fetch(
            f"""
            SELECT chat_id, category_id, term, include FROM chat_filters
            WHERE {dialect.in_ids("chat_id")} ORDER BY id
            """,
            dialect.ids(sorted(chat_ids)),
        )
        found: dict[int, list[ChatFilter]] = {}
        for row in rows:
            chat_filter = filter_from_row(row[1:])
            if chat_filter is not None:
                found.setdefault(int(row[0]), []).append(chat_filter)
        return {chat_id: tuple(f) for chat_id, f in found.items()}

    async def _texts(self, tx: Tx, article_ids: Sequence[int]) -> dict[int, ArticleText]:
        """What filters read of each article, as stored (a story another feed
        carried first keeps that feed's text and tags)."""
        dialect = self._db.dialect
        rows = await tx.fetch(
            f"SELECT id, title, summary, tags FROM articles WHERE {dialect.in_ids('id')}",
            dialect.ids(article_ids),
        )
        return {int(r[0]): ArticleText(r[1], r[2], tags_from_column(r[3])) for r in rows}

    async def latest_articles(
        self, category_id: str | None, limit: int, offset: int = 0
    ) -> list[Article]:
        if category_id is None:
            rows = await self._db.fetch(
                f"""
                SELECT {ARTICLE_COLUMNS} FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
                ORDER BY a.published_at DESC, a.id DESC LIMIT ? OFFSET ?
                """,
                limit,
                offset,
            )
        else:
            rows = await self._db.fetch(
                f"""
                SELECT {ARTICLE_COLUMNS}
                FROM article_categories AS ac
                JOIN articles AS a ON a.id = ac.article_id
                JOIN feeds AS f ON f.id = a.feed_id
                WHERE ac.category_id = ?
                ORDER BY ac.published_at DESC, ac.article_id DESC LIMIT ? OFFSET ?
                """,
                category_id,
                limit,
                offset,
            )
        return [article_from_row(r) for r in rows]

    async def article(self, article_id: int) -> Article | None:
        """One stored article by id (a shared link names it), or None once
        pruned or never stored."""
        row = await self._db.fetchrow(
            f"""
            SELECT {ARTICLE_COLUMNS} FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
            WHERE a.id = ?
            """,
            article_id,
        )
        return None if row is None else article_from_row(row)

    async def category_counts(self, since: datetime) -> dict[str, int]:
        rows = await self._db.fetch(
            """
            SELECT category_id, count(*) FROM article_categories
            WHERE published_at >= ? GROUP BY category_id
            """,
            to_timestamp(since),
        )
        return {r[0]: int(r[1]) for r in rows}

    async def feed_counts(self, since: datetime) -> dict[int, int]:
        """Articles published since ``since``, per feed id (feeds with none are absent)."""
        rows = await self._db.fetch(
            "SELECT feed_id, count(*) FROM articles WHERE published_at >= ? GROUP BY feed_id",
            to_timestamp(since),
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def prune_articles(self, published_before: datetime, batch: int) -> int:
        """Delete up to ``batch`` articles published before the cutoff (their
        categories, aliases, finished cards and search entries go with them),
        except those a card still waits for."""
        return await self._db.execute(
            """
            DELETE FROM articles WHERE id IN (
                SELECT a.id FROM articles AS a
                WHERE a.published_at < ? AND NOT EXISTS (
                    SELECT 1 FROM deliveries AS d
                    WHERE d.article_id = a.id AND d.status = 'pending')
                ORDER BY a.published_at LIMIT ?)
            """,
            to_timestamp(published_before),
            batch,
        )

    async def article_count(self) -> int:
        return int(await self._db.fetchval("SELECT count(*) FROM articles") or 0)
