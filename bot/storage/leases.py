"""Claims with a lease on the outbox's rows, the one mechanism behind the
claim of a card (``outbox.claim_deliveries``) and of an edit of a sent card
(``edits.claim_edits``).

A row a sender may take is claimed in the statement that selects it: the
inner SELECT picks the due rows of chats that can take a message, the outer
UPDATE names the sender and the lease's end, ``UPDATE ... RETURNING`` on
SQLite, plus ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so that senders on
several machines never wait for or take each other's rows. The outer UPDATE
repeats the row's own conditions: on PostgreSQL a row another sender changed
meanwhile (claimed, or finished) is checked again in its newest version
before it is locked or updated, and only the row's own conditions take part
in that check. The statement that finishes a row (sent, retried, failed,
edited) clears its lease in the same write; a lease that runs out (its
sender died) hands the row to the next claim.

A card and its edit are claimed independently, so each has its own pair of
columns: the card's send and the edit of the sent card never hold each
other up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.storage.db import Database

_FOR_UPDATE = {"sqlite": "", "postgresql": "FOR UPDATE OF d SKIP LOCKED"}


@dataclass(frozen=True, slots=True)
class Lease:
    """The columns of a ``deliveries`` row that say who claimed it for one
    kind of work, and until when (unix seconds; 0: nobody)."""

    holder: str
    expires: str

    @property
    def free(self) -> str:
        """The SET fragment that gives the row back: finished, or retried later."""
        return f"{self.holder} = NULL, {self.expires} = 0"


SEND = Lease("claimed_by", "claim_expires_at")
EDIT = Lease("edit_claimed_by", "edit_claim_expires_at")


async def claim(
    db: Database,
    lease: Lease,
    *,
    ready: str,
    ready_args: Sequence[object],
    candidates: str,
    candidate_args: Sequence[object],
    order: str,
    ts: int,
    limit: int,
    worker: str,
    lease_seconds: float,
    exclude_chats: Iterable[int] = (),
) -> list[int]:
    """Claim up to ``limit`` rows for ``worker`` until ``ts`` plus the lease;
    returns their ids. ``ready``: the row's own conditions, on the bare
    ``deliveries`` table (checked again on a row another sender changed);
    ``candidates``: every condition of a claimable row, on ``d`` (the row)
    and ``c`` (its chat); ``order``: which are claimed first. A row whose
    lease has not run out is never claimed; rows of ``exclude_chats``
    neither (their chats are busy in this sender)."""
    dialect = db.dialect
    excluded = list(exclude_chats)
    exclusion = f"AND NOT ({dialect.in_ids('d.chat_id')})" if excluded else ""
    claimed = await db.fetch(
        f"""
        UPDATE deliveries SET {lease.holder} = ?, {lease.expires} = ?
        WHERE {ready} AND {lease.expires} <= ? AND id IN (
            SELECT d.id FROM deliveries AS d JOIN chats AS c ON c.id = d.chat_id
            WHERE d.{lease.expires} <= ? AND {candidates} {exclusion}
            ORDER BY {order} LIMIT ?
            {_FOR_UPDATE[db.backend]})
        RETURNING id
        """,
        worker,
        ts + max(1, int(lease_seconds)),
        *ready_args,
        ts,
        ts,
        *candidate_args,
        *([dialect.ids(excluded)] if excluded else []),
        limit,
    )
    return [r[0] for r in claimed]


async def release(db: Database, lease: Lease, ids: Sequence[int], worker: str) -> None:
    """Give back rows ``worker`` claimed and did not finish (a stopping
    sender): claimable again at once, not when the lease runs out."""
    if ids:
        await db.execute(
            f"UPDATE deliveries SET {lease.free} "
            f"WHERE {lease.holder} = ? AND {db.dialect.in_ids('id')}",
            worker,
            db.dialect.ids(ids),
        )


async def take_over(db: Database, lease: Lease, worker: str, *, waiting: str) -> int:
    """Free every lease of rows still ``waiting`` that another sender holds:
    only the active sender claims, so when ``worker`` becomes it, any other
    claim belongs to a sender that died."""
    return await db.execute(
        f"UPDATE deliveries SET {lease.free} "
        f"WHERE {waiting} AND {lease.holder} IS NOT NULL AND {lease.holder} != ?",
        worker,
    )
