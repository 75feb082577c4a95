"""Edits of sent cards: a queue kept on the deliveries they belong to.

A correction of a stored article (``articles.store_articles``) asks, in the
transaction that records it, for an edit of each card of that article that
was sent and has a message id (``schedule_edits``; ``bot.edits`` says when).
The sender claims due edits like cards, through the same mechanism
(``bot.storage.leases``) with the edit's own lease (``edit_claimed_by``,
``edit_claim_expires_at``): two senders never edit the same card, and a
sender that died hands its edits on when the lease runs out.

``edit_generation`` counts the corrections asked of a card: an edit that
finishes clears the queue only if no newer correction came meanwhile, so a
correction that arrives while its card is being edited is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import from_timestamp, to_timestamp
from bot.edits import CARD_KINDS, CardKind, edit_due
from bot.models import Article
from bot.storage import leases
from bot.storage.db import Database, Dialect, Tx
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row


@dataclass(frozen=True, slots=True)
class CardEdit:
    """A sent card to edit so that it shows its article as stored now."""

    id: int  # the delivery's
    chat_id: int
    chat_type: str
    message_id: int
    kind: CardKind
    sent_at: datetime
    generation: int  # the corrections it shows (see mark_edited)
    attempts: int
    article: Article


async def schedule_edits(
    tx: Tx, dialect: Dialect, article_ids: Sequence[int], ts: int, edit_window: float
) -> int:
    """Ask for edits of the sent cards of ``article_ids``, corrected at
    ``ts``; returns how many cards will be edited."""
    if not article_ids or edit_window <= 0:
        return 0
    window = timedelta(seconds=edit_window)
    oldest = ts - int(edit_window)
    rows = await tx.fetch(
        f"""
        SELECT id, sent_at, edit_due_at, edited_at FROM deliveries
        WHERE status = 'sent' AND message_id IS NOT NULL AND edit_refused IS NULL
          AND sent_at >= ? AND {dialect.in_ids("article_id")}
        """,
        oldest,
        dialect.ids(article_ids),
    )
    changed_at = from_timestamp(ts)
    updates = []
    for row in rows:
        due = edit_due(
            changed_at=changed_at,
            sent_at=from_timestamp(row[1]),
            edit_window=window,
            waiting_due=None if row[2] is None else from_timestamp(row[2]),
            last_edited_at=None if row[3] is None else from_timestamp(row[3]),
        )
        if due is not None:
            updates.append((to_timestamp(due), row[0]))
    if updates:
        await tx.executemany(
            "UPDATE deliveries SET edit_due_at = ?, edit_generation = edit_generation + 1 "
            "WHERE id = ?",
            updates,
        )
    return len(updates)


class SqlCardEdits:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_edits(
        self,
        now: datetime,
        limit: int,
        *,
        worker: str,
        lease_seconds: float,
        exclude_chats: Iterable[int] = (),
    ) -> list[CardEdit]:
        """Claim due edits, the longest due first. Chats that are inactive,
        suspended (no right to post) or paused (Telegram asked them to wait)
        are left out; their edits stay due."""
        ts = to_timestamp(now)
        claimed = await leases.claim(
            self._db,
            leases.EDIT,
            ready="edit_due_at <= ?",
            ready_args=(ts,),
            candidates="""
                d.edit_due_at <= ?
                AND c.active AND c.suspended_reason IS NULL AND c.paused_until <= ?
            """,
            candidate_args=(ts, ts),
            order="d.edit_due_at, d.id",
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
            SELECT d.id, d.chat_id, c.type, d.message_id, d.card_kind, d.sent_at,
                   d.edit_generation, d.edit_attempts, {ARTICLE_COLUMNS}
            FROM deliveries AS d
            JOIN chats AS c ON c.id = d.chat_id
            JOIN articles AS a ON a.id = d.article_id
            JOIN feeds AS f ON f.id = a.feed_id
            WHERE {dialect.in_ids("d.id")} ORDER BY d.edit_due_at, d.id
            """,
            dialect.ids(claimed),
        )
        return [
            CardEdit(
                id=r[0],
                chat_id=r[1],
                chat_type=r[2],
                message_id=r[3],
                kind=r[4] if r[4] in CARD_KINDS else "text",
                sent_at=from_timestamp(r[5]),
                generation=r[6],
                attempts=r[7],
                article=article_from_row(r[8:]),
            )
            for r in rows
        ]

    async def record_card_kind(self, delivery_id: int, kind: CardKind) -> None:
        """The sent card is a message of this kind (a photo's caption is
        edited by another method than a text); cards are "text" unless told."""
        await self._db.execute(
            "UPDATE deliveries SET card_kind = ? WHERE id = ?", kind, delivery_id
        )

    async def mark_edited(self, edit: CardEdit, now: datetime, next_due: datetime | None) -> None:
        """The card shows the article as claimed. A correction that came
        since (``edit_generation`` moved on) is edited at ``next_due``."""
        await self._db.execute(
            """
            UPDATE deliveries SET edited_at = ?, edit_attempts = 0, edit_claimed_by = NULL,
                edit_claim_expires_at = 0,
                edit_due_at = CASE WHEN edit_generation = ? THEN NULL
                                   ELSE CAST(? AS BIGINT) END
            WHERE id = ?
            """,
            to_timestamp(now),
            edit.generation,
            None if next_due is None else to_timestamp(next_due),
            edit.id,
        )

    async def retry_edit(self, edit_id: int, due: datetime, *, count_attempt: bool) -> None:
        await self._db.execute(
            "UPDATE deliveries SET edit_due_at = ?, edit_attempts = edit_attempts + ?, "
            "edit_claimed_by = NULL, edit_claim_expires_at = 0 WHERE id = ?",
            to_timestamp(due),
            1 if count_attempt else 0,
            edit_id,
        )

    async def drop_edit(self, edit_id: int, refused: str | None = None) -> None:
        """Give up this edit; with ``refused`` (Telegram's reason) every later
        one of the card too: its message was deleted or cannot be edited."""
        await self._db.execute(
            "UPDATE deliveries SET edit_due_at = NULL, "
            "edit_attempts = 0, edit_claimed_by = NULL, edit_claim_expires_at = 0, "
            "edit_refused = COALESCE(?, edit_refused) WHERE id = ?",
            None if refused is None else refused[:500],
            edit_id,
        )

    async def release_edits(self, edit_ids: Sequence[int], worker: str) -> None:
        """Give back claimed edits that were not made (a stopping sender)."""
        await leases.release(self._db, leases.EDIT, edit_ids, worker)

    async def take_over_edit_claims(self, worker: str) -> int:
        """Free every edit claimed by another sender (see
        ``outbox.take_over_claims``): an edit made twice is harmless, the
        second one is "not modified"."""
        return await leases.take_over(
            self._db, leases.EDIT, worker, waiting="edit_due_at IS NOT NULL"
        )

    async def next_edit_time(self) -> datetime | None:
        """When the next edit can be claimed: its due time, or later while
        its chat is paused or another sender holds it. Edits of inactive or
        suspended chats wait for the chat, not for time, and are left out."""
        dialect = self._db.dialect
        ready = dialect.greatest(
            dialect.greatest("d.edit_due_at", "d.edit_claim_expires_at"), "c.paused_until"
        )
        value = await self._db.fetchval(
            f"""
            SELECT min({ready}) FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
            WHERE d.edit_due_at IS NOT NULL AND c.active AND c.suspended_reason IS NULL
            """
        )
        return from_timestamp(value) if value is not None else None

    async def waiting_edits(self) -> int:
        """Cards with an edit due now or later."""
        return int(
            await self._db.fetchval("SELECT count(*) FROM deliveries WHERE edit_due_at IS NOT NULL")
            or 0
        )
