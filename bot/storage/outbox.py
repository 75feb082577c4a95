"""The outbox: one row per card and chat, claimed by a sender with a lease.

A sender *claims* due rows in the statement that selects them, with a
lease (``bot.storage.leases``, shared with the edits of sent cards), at
most one per chat (the chat's oldest pending card, and only while no other
card of the chat is claimed). Marking a row sent, retried, failed or
dropped releases it; a lease that runs out (its sender died) hands the row
to the next claim. Delivery stays at-least-once: a card whose sender died
after Telegram accepted it is sent again, at most one per chat.

``UNIQUE (chat_id, article_id)`` makes "never the same article twice in
one chat" a property of the schema; so each article is in a chat's digests
once.

Held cards (``bot/digest.py``: a chat in digest mode, in quiet hours, at its
burst cap) stay 'pending' with ``held_for`` set and are never claimed. A
digest gathers a chat's held cards under one ``digest_id`` (a ``digests``
row): they are claimable again, and the claim of the oldest hands the
sender the whole digest, sent as one message; its cards become sent
together (``mark_digest_sent``) or fail together. So a digest rides the same
claim, lease, pacing and one-at-a-time-per-chat path as a card.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.clock import from_timestamp, to_timestamp
from bot.digest import HeldCard
from bot.models import Article
from bot.storage import leases
from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row

# A card, and when its claim stands for a digest, the digest's other
# pending cards: a digest fails or is dropped as the one message it is.
_WITH_ITS_DIGEST = (
    "(id = ? OR (status = 'pending' AND digest_id IN ("
    "SELECT mine.digest_id FROM deliveries AS mine WHERE mine.id = ?)))"
)


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    id: int
    chat_id: int
    chat_type: str
    attempts: int
    created_at: datetime  # when the card was queued; max_age counts from here
    article: Article
    thread_id: int | None = None  # the forum topic it goes to; None: General
    digest_id: int | None = None  # set: this card's claim stands for its whole digest


@dataclass(frozen=True, slots=True)
class DigestToSend:
    """A claimed digest: its kind, when it fell due, and the cards it
    gathered, oldest first."""

    id: int
    kind: str  # bot.digest.KIND_*
    articles: list[Article]
    # The digest time it is for; for a quiet or "more" digest, when it was
    # gathered. Not when it is sent: that may be after a restart, a retry
    # or a night the bot was down.
    due_at: datetime


@dataclass(frozen=True, slots=True)
class HeldSummary:
    """A chat's held cards at a glance: whether any waits for a digest time,
    and when the first hold of the others ends."""

    chat_id: int
    for_digest: bool
    first_until: datetime | None


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
        # A chat's head (its oldest pending card) is the only card of it
        # that may be claimed; walking pending cards in id order and keeping
        # those with no older pending card of their chat stops after
        # ``limit`` heads, with an index probe each, instead of grouping the
        # whole outbox by chat on every claim.
        ts = to_timestamp(now)
        claimed = await leases.claim(
            self._db,
            leases.SEND,
            ready="status = 'pending' AND held_for IS NULL",
            ready_args=(),
            candidates="""
                d.status = 'pending' AND d.held_for IS NULL AND d.next_attempt_at <= ?
                AND NOT EXISTS (
                    SELECT 1 FROM deliveries AS older
                    WHERE older.chat_id = d.chat_id AND older.status = 'pending'
                      AND older.held_for IS NULL AND older.id < d.id)
                AND c.suspended_reason IS NULL AND c.paused_until <= ?
            """,
            candidate_args=(ts, ts),
            order="d.id",
            ts=ts,
            limit=limit,
            worker=worker,
            lease_seconds=lease_seconds,
            exclude_chats=exclude_chats,
        )
        if not claimed:
            return []
        dialect = self._db.dialect
        rows = await self._db.fetch(
            f"""
            SELECT d.id, d.chat_id, c.type, d.attempts, d.created_at, d.thread_id,
                   d.digest_id, {ARTICLE_COLUMNS}
            FROM deliveries AS d
            JOIN chats AS c ON c.id = d.chat_id
            JOIN articles AS a ON a.id = d.article_id
            JOIN feeds AS f ON f.id = a.feed_id
            WHERE {dialect.in_ids("d.id")} ORDER BY d.id
            """,
            dialect.ids(claimed),
        )
        return [
            PendingDelivery(
                r[0],
                r[1],
                r[2],
                r[3],
                from_timestamp(r[4]),
                article_from_row(r[7:]),
                r[5],
                r[6],
            )
            for r in rows
        ]

    async def has_pending_deliveries(self) -> bool:
        """Is any card waiting that could go out, now or after a retry wait?
        Cards of suspended chats wait for the right to post, held cards for
        their digest, not for time."""
        return bool(
            await self._db.fetchval(
                """
                SELECT EXISTS (
                    SELECT 1 FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
                    WHERE d.status = 'pending' AND d.held_for IS NULL
                      AND c.suspended_reason IS NULL)
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
            f"claimed_by = NULL, claim_expires_at = 0 WHERE {_WITH_ITS_DIGEST}",
            error[:500],
            delivery_id,
            delivery_id,
        )

    async def mark_dropped(self, delivery_id: int, reason: str) -> None:
        await self._db.execute(
            "UPDATE deliveries SET status = 'dropped', error = ?, claimed_by = NULL, "
            f"claim_expires_at = 0 WHERE {_WITH_ITS_DIGEST}",
            reason[:500],
            delivery_id,
            delivery_id,
        )

    async def release_deliveries(self, delivery_ids: Sequence[int], worker: str) -> None:
        """Give back claimed cards that were not sent (a stopping sender)."""
        await leases.release(self._db, leases.SEND, delivery_ids, worker)

    async def take_over_claims(self, worker: str) -> int:
        """Free every card claimed by another sender. Only the active sender
        claims, so when this one becomes it, any other claim belongs to a
        sender that died: its cards go out now instead of when their leases
        run out (at most its in-flight cards are sent twice)."""
        return await leases.take_over(self._db, leases.SEND, worker, waiting="status = 'pending'")

    async def drop_stale_deliveries(self, older_than: datetime) -> int:
        return await self._db.execute(
            "UPDATE deliveries SET status = 'dropped', error = 'too old' "
            "WHERE status = 'pending' AND created_at < ?",
            to_timestamp(older_than),
        )

    async def prune_finished(self, older_than: datetime, batch: int = 1000) -> int:
        """Delete sent, failed and dropped rows queued before ``older_than``,
        ``batch`` at a time (short transactions: the sender keeps going),
        and digests made before then that no card refers to any more (but
        each chat's latest digest time, which says what was done)."""
        pruned = await self._db.execute(
            """
            DELETE FROM deliveries WHERE id IN (
                SELECT id FROM deliveries WHERE status != 'pending' AND created_at < ?
                ORDER BY created_at LIMIT ?)
            """,
            to_timestamp(older_than),
            batch,
        )
        await self._db.execute(
            """
            DELETE FROM digests WHERE id IN (
                SELECT g.id FROM digests AS g WHERE g.created_at < ?
                  AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.digest_id = g.id)
                  AND (g.slot_at IS NULL OR EXISTS (
                      SELECT 1 FROM digests AS newer
                      WHERE newer.chat_id = g.chat_id AND newer.slot_at > g.slot_at))
                ORDER BY g.created_at LIMIT ?)
            """,
            to_timestamp(older_than),
            batch,
        )
        return pruned

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self._db.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}

    async def pending_count(self) -> int:
        """Cards waiting (held ones too); counted on the pending rows' own index."""
        return int(
            await self._db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'") or 0
        )

    async def next_delivery_time(self) -> datetime | None:
        value = await self._db.fetchval(
            "SELECT min(next_attempt_at) FROM deliveries "
            "WHERE status = 'pending' AND held_for IS NULL"
        )
        return from_timestamp(value) if value is not None else None

    # -- delivery shaped by each chat (bot/digest.py) ------------------------

    async def hold_cards(
        self, chat_id: int, held_for: str, until: datetime | None, worker: str
    ) -> int:
        """Hold every waiting card of a chat (the one this sender claimed
        among them) for ``held_for`` until ``until`` (None: the chat's next
        digest time); cards another sender has claimed are left to it."""
        return await self._db.execute(
            "UPDATE deliveries SET held_for = ?, held_until = ?, claimed_by = NULL, "
            "claim_expires_at = 0 WHERE chat_id = ? AND status = 'pending' "
            "AND held_for IS NULL AND digest_id IS NULL "
            "AND (claimed_by IS NULL OR claimed_by = ?)",
            held_for,
            to_timestamp(until) if until is not None else None,
            chat_id,
            worker,
        )

    async def recent_card_times(
        self, chat_ids: Iterable[int], since: datetime
    ) -> dict[int, list[datetime]]:
        """When each chat's instant cards (not digests) sent after ``since`` went out."""
        ids = list(chat_ids)
        if not ids:
            return {}
        rows = await self._db.fetch(
            "SELECT chat_id, sent_at FROM deliveries WHERE status = 'sent' AND sent_at > ? "
            f"AND digest_id IS NULL AND {self._db.dialect.in_ids('chat_id')}",
            to_timestamp(since),
            self._db.dialect.ids(ids),
        )
        times: dict[int, list[datetime]] = {}
        for row in rows:
            times.setdefault(row[0], []).append(from_timestamp(row[1]))
        return times

    async def held_summaries(self) -> list[HeldSummary]:
        """Every chat with held cards, read on the held rows' own index."""
        rows = await self._db.fetch(
            """
            SELECT chat_id, max(CASE WHEN held_until IS NULL THEN 1 ELSE 0 END), min(held_until)
            FROM deliveries WHERE status = 'pending' AND held_for IS NOT NULL
            GROUP BY chat_id
            """
        )
        return [
            HeldSummary(r[0], bool(r[1]), from_timestamp(r[2]) if r[2] is not None else None)
            for r in rows
        ]

    async def held_cards(self, chat_id: int) -> list[HeldCard]:
        rows = await self._db.fetch(
            "SELECT id, held_for, held_until, thread_id FROM deliveries "
            "WHERE chat_id = ? AND status = 'pending' AND held_for IS NOT NULL ORDER BY id",
            chat_id,
        )
        return [
            HeldCard(r[0], r[1], from_timestamp(r[2]) if r[2] is not None else None, r[3])
            for r in rows
        ]

    async def last_digest_times(self, chat_ids: Iterable[int]) -> dict[int, datetime]:
        """Each chat's latest digest time handled (sent or found empty)."""
        ids = list(chat_ids)
        if not ids:
            return {}
        rows = await self._db.fetch(
            "SELECT chat_id, max(slot_at) FROM digests WHERE slot_at IS NOT NULL "
            f"AND {self._db.dialect.in_ids('chat_id')} GROUP BY chat_id",
            self._db.dialect.ids(ids),
        )
        return {r[0]: from_timestamp(r[1]) for r in rows if r[1] is not None}

    async def mark_digest_time(self, chat_id: int, slot: datetime, now: datetime) -> None:
        """Digest time ``slot`` of a chat is done (it found nothing held, or
        the chat just chose its times: earlier ones today are not due)."""
        await self._db.execute(
            "INSERT INTO digests (chat_id, kind, slot_at, created_at) VALUES (?, 'digest', ?, ?)",
            chat_id,
            to_timestamp(slot),
            to_timestamp(now),
        )

    async def gather_digest(
        self,
        chat_id: int,
        kind: str,
        card_ids: Sequence[int],
        thread_id: int | None,
        slot: datetime | None,
        now: datetime,
    ) -> int:
        """Make one digest of a chat's held cards ``card_ids`` (those still
        held), to topic ``thread_id``; returns how many it gathered. The
        digest is claimable from now on, ahead of cards queued after it."""
        async with self._db.transaction() as tx:
            digest_id = await tx.fetchval(
                "INSERT INTO digests (chat_id, kind, slot_at, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                chat_id,
                kind,
                to_timestamp(slot) if slot is not None else None,
                to_timestamp(now),
            )
            return await tx.execute(
                "UPDATE deliveries SET digest_id = ?, held_for = NULL, held_until = NULL, "
                "thread_id = ?, next_attempt_at = ?, claimed_by = NULL, claim_expires_at = 0 "
                "WHERE chat_id = ? AND status = 'pending' AND held_for IS NOT NULL "
                f"AND {self._db.dialect.in_ids('id')}",
                digest_id,
                thread_id,
                to_timestamp(now),
                chat_id,
                self._db.dialect.ids(card_ids),
            )

    async def release_held(self, chat_id: int, card_ids: Sequence[int]) -> int:
        """Held cards go out as the cards they are again."""
        return await self._db.execute(
            "UPDATE deliveries SET held_for = NULL, held_until = NULL "
            "WHERE chat_id = ? AND status = 'pending' AND held_for IS NOT NULL "
            f"AND {self._db.dialect.in_ids('id')}",
            chat_id,
            self._db.dialect.ids(card_ids),
        )

    async def digest_to_send(self, digest_id: int) -> DigestToSend:
        """The cards of a digest still to send, oldest first (a card whose
        category the chat left meanwhile was dropped and is not among them)."""
        made = await self._db.fetchrow(
            "SELECT kind, COALESCE(slot_at, created_at) FROM digests WHERE id = ?", digest_id
        )
        rows = await self._db.fetch(
            f"""
            SELECT {ARTICLE_COLUMNS}
            FROM deliveries AS d
            JOIN articles AS a ON a.id = d.article_id
            JOIN feeds AS f ON f.id = a.feed_id
            WHERE d.digest_id = ? AND d.status = 'pending' ORDER BY d.id
            """,
            digest_id,
        )
        articles = [article_from_row(r) for r in rows]
        if made is None:
            # A digest row gone with a merged chat leaves its cards a plain
            # digest; it was gathered after its newest card was queued, the
            # closest known to when it fell due.
            queued = await self._db.fetchval(
                "SELECT max(created_at) FROM deliveries WHERE digest_id = ? AND status = 'pending'",
                digest_id,
            )
            return DigestToSend(digest_id, "digest", articles, from_timestamp(queued or 0))
        return DigestToSend(digest_id, made[0], articles, from_timestamp(made[1]))

    async def mark_digest_sent(self, digest_id: int, message_id: int, now: datetime) -> int:
        """Every card of a sent digest is sent, in one statement."""
        return await self._db.execute(
            "UPDATE deliveries SET status = 'sent', message_id = ?, sent_at = ?, "
            "attempts = attempts + 1, error = NULL, claimed_by = NULL, claim_expires_at = 0 "
            "WHERE digest_id = ? AND status = 'pending'",
            message_id,
            to_timestamp(now),
            digest_id,
        )
