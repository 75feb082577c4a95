"""Feeds: the configured list, each feed's health and schedule, and claims.

A poller *claims* the feeds it is about to fetch, in the same statement that
selects them (``UPDATE ... RETURNING``; on PostgreSQL the selection also
takes ``FOR UPDATE SKIP LOCKED``, so pollers on several machines never
wait for or take each other's rows). Recording the outcome releases the
claim; a claim whose lease ran out (its poller died) makes the feed due again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.clock import from_timestamp, to_timestamp
from bot.config import FeedConfig
from bot.models import FeedForUpdate, FeedHealth, UnchangedFetch
from bot.storage.db import Database, Dialect, Row, Tx

_FOR_UPDATE = {"sqlite": "", "postgresql": "FOR UPDATE SKIP LOCKED"}
_FEED_FOR_UPDATE = """id, url, fetch_url, title, name, categories, etag, last_modified,
    body_hash, error_count, ever_fetched, interval, next_check_at, origin"""
# A feed is polled while it is listed (in the config, or added at runtime),
# not disabled by 410 Gone and not paused by the operator.
_POLLED = "configured AND NOT disabled AND NOT paused"


def _feed_for_update(r: Row) -> FeedForUpdate:
    return FeedForUpdate(
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
        origin=r[13],
    )


async def record_success(
    tx: Tx,
    feed_id: int,
    *,
    now: datetime,
    next_check: datetime,
    feed_title: str,
    site_url: str | None,
    body_hash: str,
    etag: str | None,
    last_modified: str | None,
    fetch_url: str | None,
    held_entries: bool,
    release_claim: bool = True,
) -> None:
    """A parsed fetch: the feed's new state, in the transaction that stores
    its articles. A feed counts as fetched once a fetch held at least one
    entry: an empty first answer must not turn the next, full one into a
    flood of cards."""
    ts = to_timestamp(now)
    await tx.execute(
        """
        UPDATE feeds SET title = ?, site_url = ?, body_hash = ?, etag = ?,
            last_modified = ?, next_check_at = ?, last_checked_at = ?,
            last_success_at = ?, error_count = 0, last_error = NULL,
            ever_fetched = ever_fetched OR ?, fetch_url = COALESCE(?, fetch_url),
            claimed_by = CASE WHEN ? THEN NULL ELSE claimed_by END,
            claim_expires_at = CASE WHEN ? THEN 0 ELSE claim_expires_at END
        WHERE id = ?
        """,
        feed_title,
        site_url,
        body_hash,
        etag,
        last_modified,
        to_timestamp(next_check),
        ts,
        ts,
        held_entries,
        fetch_url,
        release_claim,
        release_claim,
        feed_id,
    )


async def remember_items(tx: Tx, dialect: Dialect, feed_id: int, items: Mapping[str, str]) -> None:
    """The items of the body just parsed (digest -> entry key, see
    ``bot.items``) replace the feed's remembered ones, in the transaction
    that stores its articles: the two never disagree. Empty: the next body
    is parsed whole."""
    # Most items are the ones already remembered: those rows stay as they are.
    upsert = """
        ON CONFLICT (feed_id, item_digest) DO UPDATE SET entry_key = excluded.entry_key
        WHERE feed_items.entry_key <> excluded.entry_key
        """
    if dialect.name == "postgresql":
        # One statement for the whole body, not one per item, and one for
        # both halves: the rows deleted and those written never overlap.
        await tx.execute(
            """
            WITH gone AS (
                DELETE FROM feed_items WHERE feed_id = ? AND NOT (item_digest = ANY(?::text[]))
            )
            INSERT INTO feed_items (feed_id, item_digest, entry_key)
            SELECT ?, * FROM unnest(?::text[], ?::text[])
            """
            + upsert,
            feed_id,
            list(items),
            feed_id,
            list(items),
            list(items.values()),
        )
        return
    await tx.execute(
        f"DELETE FROM feed_items WHERE feed_id = ? AND NOT ({dialect.in_texts('item_digest')})",
        feed_id,
        dialect.texts(items),
    )
    if items:
        await tx.executemany(
            "INSERT INTO feed_items (feed_id, item_digest, entry_key) VALUES (?, ?, ?)" + upsert,
            [(feed_id, digest, key) for digest, key in items.items()],
        )


class SqlFeeds:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the config feeds of the table match the configuration. Feeds
        dropped from the config keep their articles but are no longer polled.
        Feeds added at runtime are not the file's business and stay as they
        are, unless the file now lists one: then it becomes a config feed.
        A feed disabled by 410 Gone stays disabled, a paused one paused: only
        the operator re-enables it (``resume_feed``)."""
        ts = to_timestamp(now)
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE feeds SET configured = FALSE WHERE configured AND origin = 'config'"
            )
            await tx.executemany(
                """
                INSERT INTO feeds (url, fetch_url, name, categories, interval, next_check_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (url) DO UPDATE SET
                    configured = TRUE, origin = 'config', name = excluded.name,
                    categories = excluded.categories, interval = excluded.interval
                """,
                [(f.url, f.url, f.name, " ".join(f.categories), f.interval, ts) for f in feeds],
            )

    async def due_feeds(self, now: datetime, limit: int = 1_000_000) -> list[FeedForUpdate]:
        """Due feeds, without claiming them (for looking, not for fetching)."""
        rows = await self._db.fetch(
            f"""
            SELECT {_FEED_FOR_UPDATE} FROM feeds
            WHERE {_POLLED} AND next_check_at <= ?
            ORDER BY next_check_at, id LIMIT ?
            """,
            to_timestamp(now),
            limit,
        )
        return [_feed_for_update(r) for r in rows]

    async def claim_due_feeds(
        self, now: datetime, worker: str, lease_seconds: float, limit: int = 1_000_000
    ) -> list[FeedForUpdate]:
        """Claim due feeds that no live poller holds, soonest due first."""
        ts = to_timestamp(now)
        rows = await self._db.fetch(
            f"""
            UPDATE feeds SET claimed_by = ?, claim_expires_at = ?
            WHERE id IN (
                SELECT id FROM feeds
                WHERE {_POLLED} AND next_check_at <= ?
                  AND claim_expires_at <= ?
                ORDER BY next_check_at, id LIMIT ?
                {_FOR_UPDATE[self._db.backend]})
            RETURNING {_FEED_FOR_UPDATE}
            """,
            worker,
            ts + max(1, int(lease_seconds)),
            ts,
            ts,
            limit,
        )
        # RETURNING promises no order.
        return [_feed_for_update(r) for r in sorted(rows, key=lambda r: (r[12], r[0]))]

    async def claim_feed(
        self, feed_id: int, now: datetime, worker: str, lease_seconds: float
    ) -> FeedForUpdate | None:
        """Claim one listed feed to fetch it now, due or not (an operator's
        check); None if there is no such feed or a live poller holds it."""
        ts = to_timestamp(now)
        row = await self._db.fetchrow(
            f"""
            UPDATE feeds SET claimed_by = ?, claim_expires_at = ?
            WHERE id = ? AND configured AND claim_expires_at <= ?
            RETURNING {_FEED_FOR_UPDATE}
            """,
            worker,
            ts + max(1, int(lease_seconds)),
            feed_id,
            ts,
        )
        return _feed_for_update(row) if row is not None else None

    async def feed_for_update(self, feed_id: int) -> FeedForUpdate | None:
        """A polled feed as the pipeline sees it, without claiming it (a
        pushed body is stored beside any poll); None if it is not polled."""
        row = await self._db.fetchrow(
            f"SELECT {_FEED_FOR_UPDATE} FROM feeds WHERE id = ? AND {_POLLED}", feed_id
        )
        return _feed_for_update(row) if row is not None else None

    async def release_feeds(self, feed_ids: Sequence[int], worker: str) -> None:
        """Give back claimed feeds that were not fetched (a stopping poller):
        they stay due and the next round takes them."""
        if not feed_ids:
            return
        await self._db.execute(
            "UPDATE feeds SET claimed_by = NULL, claim_expires_at = 0 "
            f"WHERE claimed_by = ? AND {self._db.dialect.in_ids('id')}",
            worker,
            self._db.dialect.ids(feed_ids),
        )

    async def release_feeds_of_others(self, worker: str) -> int:
        """Free every feed claimed by a poller other than ``worker``."""
        return await self._db.execute(
            "UPDATE feeds SET claimed_by = NULL, claim_expires_at = 0 "
            "WHERE claimed_by IS NOT NULL AND claimed_by != ?",
            worker,
        )

    async def next_due_time(self) -> datetime | None:
        value = await self._db.fetchval(f"SELECT min(next_check_at) FROM feeds WHERE {_POLLED}")
        return from_timestamp(value) if value is not None else None

    async def known_items(self, feed_id: int) -> dict[str, str]:
        """The items of the feed's last parsed body: digest -> entry key."""
        rows = await self._db.fetch(
            "SELECT item_digest, entry_key FROM feed_items WHERE feed_id = ?", feed_id
        )
        return {r[0]: r[1] for r in rows}

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
        await self.record_unchanged_fetches(
            [UnchangedFetch(feed_id, now, next_check, etag, last_modified, fetch_url)]
        )

    async def record_unchanged_fetches(self, fetches: Sequence[UnchangedFetch]) -> None:
        """``record_unchanged`` for many feeds, in one transaction: what a
        round's unchanged feeds cost is then one commit per batch, not one
        per feed (see ``bot.unchanged_outcomes``). Each feed's claim is
        released with its outcome."""
        if not fetches:
            return
        await self._db.executemany(
            """
            UPDATE feeds SET etag = ?, last_modified = ?, next_check_at = ?,
                last_checked_at = ?, last_success_at = ?, error_count = 0, last_error = NULL,
                fetch_url = COALESCE(?, fetch_url), claimed_by = NULL, claim_expires_at = 0
            WHERE id = ?
            """,
            [
                (
                    f.etag,
                    f.last_modified,
                    to_timestamp(f.next_check),
                    to_timestamp(f.now),
                    to_timestamp(f.now),
                    f.fetch_url,
                    f.feed_id,
                )
                for f in fetches
            ],
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
        await self._db.execute(
            """
            UPDATE feeds SET error_count = error_count + 1, last_error = ?,
                next_check_at = ?, last_checked_at = ?, disabled = disabled OR ?,
                claimed_by = NULL, claim_expires_at = 0
            WHERE id = ?
            """,
            error[:1000],
            to_timestamp(next_check),
            to_timestamp(now),
            disable,
            feed_id,
        )

    async def feed_health(self) -> list[FeedHealth]:
        """Every configured feed's state, by id."""
        return await self._feed_rows("WHERE f.configured")

    async def disabled_feeds(self) -> list[FeedHealth]:
        """The configured feeds 410 Gone disabled, by id: what a start warns
        of (without counting every feed's articles)."""
        return await self._feed_rows("WHERE f.configured AND f.disabled")

    async def all_feeds(self) -> list[FeedHealth]:
        """Every feed the database knows, those dropped from the config too."""
        return await self._feed_rows("")

    async def _feed_rows(self, where: str) -> list[FeedHealth]:
        rows = await self._db.fetch(
            f"""
            SELECT f.id, f.url, f.fetch_url, COALESCE(f.name, f.title), f.error_count,
                   f.last_error, f.disabled, f.next_check_at, f.last_success_at,
                   (SELECT count(*) FROM articles AS a WHERE a.feed_id = f.id),
                   f.configured, f.last_checked_at, f.origin, f.paused, f.categories,
                   f.name, f.site_url
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
                origin=r[12],
                paused=bool(r[13]),
                categories=tuple(r[14].split()),
                name=r[15],
                site_url=r[16],
            )
            for r in rows
        ]

    async def resume_feed(self, feed_id: int, now: datetime) -> bool:
        """Re-enable a feed (disabled by 410 Gone, paused, or backing off
        after failures) and make it due now. False if there is no such feed."""
        changed = await self._db.execute(
            "UPDATE feeds SET disabled = FALSE, paused = FALSE, next_check_at = ? WHERE id = ?",
            to_timestamp(now),
            feed_id,
        )
        return changed > 0

    async def add_runtime_feeds(
        self, feeds: Sequence[tuple[str, Sequence[str]]], now: datetime
    ) -> list[int]:
        """Add feeds (URL, category ids) that live in the database only, due
        now, in one transaction; the ids of those that were added. A URL the
        table already lists (by its URL or where it moved to) is left as it
        is; one that was removed is listed again, with the new categories."""
        ts = to_timestamp(now)
        added: list[int] = []
        async with self._db.transaction() as tx:
            for url, categories in feeds:
                row = await tx.fetchrow(
                    "SELECT id, configured FROM feeds WHERE url = ? OR fetch_url = ? "
                    "ORDER BY id LIMIT 1",
                    url,
                    url,
                )
                if row is not None and row[1]:
                    continue
                if row is not None:
                    await tx.execute(
                        """
                        UPDATE feeds SET configured = TRUE, origin = 'runtime', paused = FALSE,
                            categories = ?, next_check_at = ?
                        WHERE id = ?
                        """,
                        " ".join(categories),
                        ts,
                        row[0],
                    )
                    added.append(row[0])
                    continue
                feed_id = await tx.fetchval(
                    """
                    INSERT INTO feeds (url, fetch_url, categories, next_check_at, origin)
                    VALUES (?, ?, ?, ?, 'runtime') RETURNING id
                    """,
                    url,
                    url,
                    " ".join(categories),
                    ts,
                )
                added.append(int(feed_id))
        return added

    async def remove_runtime_feed(self, feed_id: int) -> bool:
        """Stop listing a feed added at runtime; its articles are kept (cards
        already sent link to them, /latest and /search still find them).
        False if there is no such runtime feed."""
        changed = await self._db.execute(
            "UPDATE feeds SET configured = FALSE, claimed_by = NULL, claim_expires_at = 0 "
            "WHERE id = ? AND origin = 'runtime'",
            feed_id,
        )
        return changed > 0

    async def pause_feed(self, feed_id: int) -> bool:
        """Stop polling a feed until ``resume_feed``. False if there is no such feed."""
        changed = await self._db.execute("UPDATE feeds SET paused = TRUE WHERE id = ?", feed_id)
        return changed > 0
