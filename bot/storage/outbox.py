"""The outbox: one row per card and chat, claimed by a sender with a lease.

A sender *claims* due rows in the statement that selects them, at most one
per chat (the chat's oldest pending card, and only while no other card of
the chat is claimed): ``UPDATE ... RETURNING`` on SQLite, plus ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL so that senders on several machines never wait
for or take each other's rows. Marking a row sent, retried, failed or
dropped releases it; a lease that runs out (its sender died) hands the row
to the next claim. Delivery stays at-least-once: a card whose sender died
after Telegram accepted it is sent again, at most one per chat.

``UNIQUE (chat_id, article_id)`` makes "never the same article twice in
one chat" a property of the schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.clock import from_timestamp, to_timestamp
from bot.models import Article
from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row

_FOR_UPDATE = {"sqlite": "", "postgresql": "FOR UPDATE OF d SKIP LOCKED"}


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    id: int
    chat_id: int
    chat_type: str
    attempts: int
    created_at: datetime  # when the card was queued; max_age counts from here
    article: Article
    thread_id: int | None = None  # the forum topic it goes to; None: General


async def enqueue(
    tx: Tx, dialect: Dialect, cards: Sequence[tuple[int, int, int | None]], ts: int
) -> int:
    """Queue (article id, chat id, topic) cards in this order; returns how
    many were new (a chat that already has an article's card does not get it
    again)."""
    if not cards:
        return 0
    if dialect.name == "sqlite":
        return await tx.execute(
            """
            INSERT OR IGNORE INTO deliveries
                (article_id, chat_id, thread_id, next_attempt_at, created_at)
            SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                   json_extract(value, '$[2]'), ?, ?
            FROM json_each(?) ORDER BY key
            """,
            ts,
            ts,
            json.dumps([list(card) for card in cards]),
        )
    return await tx.execute(
        """
        INSERT INTO deliveries (article_id, chat_id, thread_id, next_attempt_at, created_at)
        SELECT t.article_id, t.chat_id, t.thread_id, ?, ?
        FROM unnest(?::bigint[], ?::bigint[], ?::bigint[])
            WITH ORDINALITY AS t(article_id, chat_id, thread_id, n)
        ORDER BY t.n
        ON CONFLICT DO NOTHING
        """,
        ts,
        ts,
        [c[0] for c in cards],
        [c[1] for c in cards],
        [c[2] for c in cards],
    )


class SqlOutbox:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_deliveries(
        self,
        now: datetime,
        limit: int,
        *,
        worker: str,
        lease_seconds: float,
        exclude_chats: Iterable[int] = (),
    ) -> list[PendingDelivery]:
        """Claim due cards, oldest first, at most one per chat. Chats that are
        suspended (no right to post) or paused (Telegram asked them to wait)
        are left out; their cards stay pending."""
        dialect = self._db.dialect
        excluded = list(exclude_chats)
        exclusion = f"AND NOT ({dialect.in_ids('d.chat_id')})" if excluded else ""
        ts = to_timestamp(now)
        # Every condition a claim depends on is a condition on the row
        # itself, repeated in the outer UPDATE: on PostgreSQL a row another
        # sender changed meanwhile (claimed, or marked sent) is checked again
        # in its newest version before it is locked or updated, and only the
        # row's own conditions take part in that check.
        #
        # A chat's head (its oldest pending card) is the only card of it
        # that may be claimed; walking pending cards in id order and keeping
        # those with no older pending card of their chat stops after
        # ``limit`` heads, with an index probe each, instead of grouping the
        # whole outbox by chat on every claim.
        claimed = await self._db.fetch(
            f"""
            UPDATE deliveries SET claimed_by = ?, claim_expires_at = ?
            WHERE status = 'pending' AND claim_expires_at <= ? AND id IN (
                SELECT d.id FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
                WHERE d.status = 'pending' AND d.next_attempt_at <= ?
                  AND d.claim_expires_at <= ?
                  AND NOT EXISTS (
                      SELECT 1 FROM deliveries AS older
                      WHERE older.chat_id = d.chat_id AND older.status = 'pending'
                        AND older.id < d.id)
                  AND c.suspended_reason IS NULL AND c.paused_until <= ? {exclusion}
                ORDER BY d.id LIMIT ?
                {_FOR_UPDATE[self._db.backend]})
            RETURNING id
            """,
            worker,
            ts + max(1, int(lease_seconds)),
            ts,
            ts,
            ts,
            ts,
            *([dialect.ids(excluded)] if excluded else []),
            limit,
        )
        if not claimed:
            return []
        rows = await self._db.fetch(
            f"""
            SELECT d.id, d.chat_id, c.type, d.attempts, d.created_at, d.thread_id,
                   {ARTICLE_COLUMNS}
            FROM deliveries AS d
            JOIN chats AS c ON c.id = d.chat_id
            JOIN articles AS a ON a.id = d.article_id
            JOIN feeds AS f ON f.id = a.feed_id
            WHERE {dialect.in_ids("d.id")} ORDER BY d.id
            """,
            dialect.ids(r[0] for r in claimed),
        )
        return [
            PendingDelivery(
                r[0], r[1], r[2], r[3], from_timestamp(r[4]), article_from_row(r[6:]), r[5]
            )
            for r in rows
        ]

    async def has_pending_deliveries(self) -> bool:
        """Is any card waiting that could go out, now or after a retry wait?
        Cards of suspended chats wait for the right to post, not for time."""
        return bool(
            await self._db.fetchval(
                """
                SELECT EXISTS (
                    SELECT 1 FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
                    WHERE d.status = 'pending' AND c.suspended_reason IS NULL)
                """
            )
        )

    async def mark_sent(self, delivery_id: int, message_id: int, now: datetime) -> None:
        await self._db.execute(
            "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
            "attempts = attempts + 1, error = NULL, claimed_by = NULL, claim_expires_at = 0 "
            "WHERE id = ?",
            message_id,
            to_timestamp(now),
            delivery_id,
        )

    async def mark_retry(
        self, delivery_id: int, next_attempt: datetime, error: str, *, count_attempt: bool = True
    ) -> None:
        await self._db.execute(
            "UPDATE deliveries SET next_attempt_at = ?, error = ?, attempts = attempts + ?, "
            "claimed_by = NULL, claim_expires_at = 0 WHERE id = ?",
            to_timestamp(next_attempt),
            error[:500],
            1 if count_attempt else 0,
            delivery_id,
        )

    async def mark_failed(self, delivery_id: int, error: str) -> None:
        await self._db.execute(
            "UPDATE deliveries SET status = 'failed', error = ?, attempts = attempts + 1, "
            "claimed_by = NULL, claim_expires_at = 0 WHERE id = ?",
            error[:500],
            delivery_id,
        )

    async def mark_dropped(self, delivery_id: int, reason: str) -> None:
        await self._db.execute(
            "UPDATE deliveries SET status = 'dropped', error = ?, claimed_by = NULL, "
            "claim_expires_at = 0 WHERE id = ?",
            reason[:500],
            delivery_id,
        )

    async def release_deliveries(self, delivery_ids: Sequence[int], worker: str) -> None:
        """Give back claimed cards that were not sent (a stopping sender)."""
        if delivery_ids:
            await self._db.execute(
                "UPDATE deliveries SET claimed_by = NULL, claim_expires_at = 0 "
                f"WHERE claimed_by = ? AND {self._db.dialect.in_ids('id')}",
                worker,
                self._db.dialect.ids(delivery_ids),
            )

    async def take_over_claims(self, worker: str) -> int:
        """Free every card claimed by another sender. Only the active sender
        claims, so when this one becomes it, any other claim belongs to a
        sender that died: its cards go out now instead of when their leases
        run out (at most its in-flight cards are sent twice)."""
        return await self._db.execute(
            "UPDATE deliveries SET claimed_by = NULL, claim_expires_at = 0 "
            "WHERE status = 'pending' AND claimed_by IS NOT NULL AND claimed_by != ?",
            worker,
        )

    async def drop_stale_deliveries(self, older_than: datetime) -> int:
        return await self._db.execute(
            "UPDATE deliveries SET status = 'dropped', error = 'too old' "
            "WHERE status = 'pending' AND created_at < ?",
            to_timestamp(older_than),
        )

    async def prune_finished(self, older_than: datetime, batch: int = 1000) -> int:
        """Delete sent, failed and dropped rows queued before ``older_than``,
        ``batch`` at a time (short transactions: the sender keeps going)."""
        return await self._db.execute(
            """
            DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE status != 'pending' AND created_at < ?
                ORDER BY created_at LIMIT ?)
            """,
            to_timestamp(older_than),
            batch,
        )

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}

    async def pending_count(self) -> int:
        """Cards waiting; counted on the pending rows' own index."""
        return int(
            await self._db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'") or 0
        )

    async def next_delivery_time(self) -> datetime | None:
        value = await self._db.fetchval(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
        )
        return from_timestamp(value) if value is not None else None
