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
from bot.models import FeedForUpdate, FeedHealth
from bot.storage.db import Database, Dialect, Row, Tx

_FOR_UPDATE = {"sqlite": "", "postgresql": "FOR UPDATE SKIP LOCKED"}
_FEED_FOR_UPDATE = """id, url, fetch_url, title, name, categories, etag, last_modified,
    body_hash, error_count, ever_fetched, interval, next_check_at"""


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
            claimed_by = NULL, claim_expires_at = 0
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
        feed_id,
    )


async def remember_items(tx: Tx, dialect: Dialect, feed_id: int, items: Mapping[str, str]) -> None:
    """The items of the body just parsed (digest -> entry key, see
    ``bot.items``) replace the feed's remembered ones, in the transaction
    that stores its articles: the two never disagree. Empty: the next body
    is parsed whole."""
    await tx.execute(
        f"DELETE FROM feed_items WHERE feed_id = ? AND NOT ({dialect.in_texts('item_digest')})",
        feed_id,
        dialect.texts(items),
    )
    if items:
        # Most items are the ones already remembered: those rows stay as they are.
        await tx.executemany(
            """
            INSERT INTO feed_items (feed_id, item_digest, entry_key) VALUES (?, ?, ?)
            ON CONFLICT (feed_id, item_digest) DO UPDATE SET entry_key = excluded.entry_key
            WHERE feed_items.entry_key <> excluded.entry_key
            """,
            [(feed_id, digest, key) for digest, key in items.items()],
        )


class SqlFeeds:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the feeds table match the configuration. Feeds dropped from the
        config keep their articles but are no longer polled. A feed disabled
        by 410 Gone stays disabled: only the operator re-enables it
        (``resume_feed``), since the server said it is gone for good."""
        ts = to_timestamp(now)
        async with self._db.transaction() as tx:
            await tx.execute("UPDATE feeds SET configured = FALSE WHERE configured")
            await tx.executemany(
                """
                INSERT INTO feeds (url, fetch_url, name, categories, interval, next_check_at)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (url) DO UPDATE SET
                    configured = TRUE, name = excluded.name, categories = excluded.categories,
                    interval = excluded.interval
                """,
                [(f.url, f.url, f.name, " ".join(f.categories), f.interval, ts) for f in feeds],
            )

    async def due_feeds(self, now: datetime, limit: int = 1_000_000) -> list[FeedForUpdate]:
        """Due feeds, without claiming them (for looking, not for fetching)."""
        rows = await self._db.fetch(
            f"""
            SELECT {_FEED_FOR_UPDATE} FROM feeds
            WHERE configured AND NOT disabled AND next_check_at <= ?
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
                WHERE configured AND NOT disabled AND next_check_at <= ?
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
        value = await self._db.fetchval(
            "SELECT min(next_check_at) FROM feeds WHERE configured AND NOT disabled"
        )
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
        ts = to_timestamp(now)
        await self._db.execute(
            """
            UPDATE feeds SET etag = ?, last_modified = ?, next_check_at = ?,
                last_checked_at = ?, last_success_at = ?, error_count = 0, last_error = NULL,
                fetch_url = COALESCE(?, fetch_url), claimed_by = NULL, claim_expires_at = 0
            WHERE id = ?
            """,
            etag,
            last_modified,
            to_timestamp(next_check),
            ts,
            ts,
            fetch_url,
            feed_id,
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

    async def all_feeds(self) -> list[FeedHealth]:
        """Every feed the database knows, those dropped from the config too."""
        return await self._feed_rows("")

    async def _feed_rows(self, where: str) -> list[FeedHealth]:
        rows = await self._db.fetch(
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
        changed = await self._db.execute(
            "UPDATE feeds SET disabled = FALSE, next_check_at = ? WHERE id = ?",
            to_timestamp(now),
            feed_id,
        )
        return changed > 0
