"""WebSub subscriptions: one row per feed that names a hub.

The rows are shared by every process: whichever process a hub calls back
(several pollers behind one reverse proxy) finds the request it must
confirm and the secret it must check pushes against, and the renewal job
claims a row before it sends anything, so two processes never both send it.

The feed id carries no foreign key on purpose: a feed removed from the
configuration must still be unsubscribed at its hub, so its subscription
outlives it until that is done.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from bot.clock import from_timestamp, to_timestamp
from bot.storage.db import Database, Row
from bot.websub import FeedHub, HubSubscription, Mode

_COLUMNS = """id, feed_id, hub_url, topic_url, secret, trusted, wanted, active,
    pending_mode, lease_seconds, expires_at, next_attempt_at, attempts, last_error"""
_FOR_UPDATE = {"sqlite": "", "postgresql": "FOR UPDATE SKIP LOCKED"}
# A feed whose subscription is wanted: listed, not disabled, not paused.
_POLLED = "SELECT id FROM feeds WHERE configured AND NOT disabled AND NOT paused"


def _subscription(r: Row) -> HubSubscription:
    return HubSubscription(
        id=r[0],
        feed_id=r[1],
        hub_url=r[2],
        topic_url=r[3],
        secret=r[4],
        trusted=bool(r[5]),
        wanted=bool(r[6]),
        active=bool(r[7]),
        pending_mode=cast("Mode | None", r[8]),
        lease_seconds=r[9],
        expires_at=from_timestamp(r[10]) if r[10] is not None else None,
        next_attempt_at=from_timestamp(r[11]),
        attempts=r[12],
        last_error=r[13],
    )


class SqlWebSub:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def note_hub(
        self,
        feed_id: int,
        hub_url: str,
        topic_url: str,
        *,
        secret: str,
        trusted: bool,
        now: datetime,
    ) -> bool:
        """A parsed feed names this hub and topic. A new one, or a different
        one than before, is (re)subscribed at once with ``secret`` (a new
        secret per subscription: pushes signed for the old hub are refused);
        the same one is left as it is, and wanted again if it was not.
        True if the subscription is due now."""
        ts = to_timestamp(now)
        async with self._db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT hub_url, topic_url, wanted FROM websub_subscriptions WHERE feed_id = ?",
                feed_id,
            )
            if row is None:
                await tx.execute(
                    """
                    INSERT INTO websub_subscriptions
                        (feed_id, hub_url, topic_url, secret, trusted, wanted, active,
                         next_attempt_at, attempts, created_at)
                    VALUES (?, ?, ?, ?, ?, TRUE, FALSE, ?, 0, ?)
                    """,
                    feed_id,
                    hub_url,
                    topic_url,
                    secret,
                    trusted,
                    ts,
                    ts,
                )
                return True
            if (row[0], row[1]) != (hub_url, topic_url):
                await tx.execute(
                    """
                    UPDATE websub_subscriptions SET hub_url = ?, topic_url = ?, secret = ?,
                        trusted = ?, wanted = TRUE, active = FALSE, pending_mode = NULL,
                        lease_seconds = NULL, expires_at = NULL, next_attempt_at = ?,
                        attempts = 0, last_error = NULL
                    WHERE feed_id = ?
                    """,
                    hub_url,
                    topic_url,
                    secret,
                    trusted,
                    ts,
                    feed_id,
                )
                return True
            if not row[2]:
                await tx.execute(
                    "UPDATE websub_subscriptions SET wanted = TRUE, pending_mode = NULL, "
                    "next_attempt_at = ?, attempts = 0 WHERE feed_id = ?",
                    ts,
                    feed_id,
                )
                return True
            return False

    async def forget_hub(self, feed_id: int, now: datetime) -> bool:
        """The feed no longer names a hub: cancel its subscription."""
        changed = await self._db.execute(
            "UPDATE websub_subscriptions SET wanted = FALSE, next_attempt_at = ?, attempts = 0 "
            "WHERE feed_id = ? AND wanted",
            to_timestamp(now),
            feed_id,
        )
        return changed > 0

    async def unwant_unpolled(self, now: datetime) -> int:
        """Cancel the subscriptions of feeds that are no longer polled
        (removed, paused, gone); returns how many."""
        return await self._db.execute(
            f"""
            UPDATE websub_subscriptions SET wanted = FALSE, next_attempt_at = ?, attempts = 0
            WHERE wanted AND feed_id NOT IN ({_POLLED})
            """,
            to_timestamp(now),
        )

    async def claim_due(
        self, now: datetime, lease_seconds: float, limit: int = 100
    ) -> list[HubSubscription]:
        """Claim the subscriptions that need a request now; each is due
        again after ``lease_seconds`` unless the request's outcome says when."""
        ts = to_timestamp(now)
        rows = await self._db.fetch(
            f"""
            UPDATE websub_subscriptions SET next_attempt_at = ?
            WHERE id IN (
                SELECT id FROM websub_subscriptions WHERE next_attempt_at <= ?
                ORDER BY next_attempt_at, id LIMIT ?
                {_FOR_UPDATE[self._db.backend]})
              AND next_attempt_at <= ?
            RETURNING {_COLUMNS}
            """,
            ts + max(1, int(lease_seconds)),
            ts,
            limit,
            ts,
        )
        # The rows as they were claimed, but due when they were due.
        return sorted((_subscription(r) for r in rows), key=lambda s: s.id)

    async def mark_requested(self, subscription_id: int, mode: Mode, verify_by: datetime) -> None:
        """A request is about to go to the hub: its verification is awaited
        until ``verify_by`` (set before sending: a hub may verify before it
        even answers the request)."""
        await self._db.execute(
            "UPDATE websub_subscriptions SET pending_mode = ?, next_attempt_at = ?, "
            "attempts = attempts + 1 WHERE id = ?",
            mode,
            to_timestamp(verify_by),
            subscription_id,
        )

    async def mark_request_failed(
        self, subscription_id: int, mode: Mode, error: str, retry_at: datetime
    ) -> None:
        """The hub refused the request or could not be reached."""
        await self._db.execute(
            "UPDATE websub_subscriptions SET pending_mode = NULL, last_error = ?, "
            "next_attempt_at = ? WHERE id = ? AND pending_mode = ?",
            error[:500],
            to_timestamp(retry_at),
            subscription_id,
            mode,
        )

    async def subscription(self, subscription_id: int) -> HubSubscription | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM websub_subscriptions WHERE id = ?", subscription_id
        )
        return _subscription(row) if row is not None else None

    async def subscriptions(self) -> list[HubSubscription]:
        rows = await self._db.fetch(f"SELECT {_COLUMNS} FROM websub_subscriptions ORDER BY id")
        return [_subscription(r) for r in rows]

    async def confirm_subscribe(
        self,
        subscription_id: int,
        topic_url: str,
        *,
        lease_seconds: int,
        expires_at: datetime,
        renew_at: datetime,
    ) -> bool:
        """The hub verified our subscribe request; False if it is no longer
        the request we are waiting for (another process moved on)."""
        changed = await self._db.execute(
            """
            UPDATE websub_subscriptions SET active = TRUE, pending_mode = NULL,
                lease_seconds = ?, expires_at = ?, next_attempt_at = ?, attempts = 0,
                last_error = NULL
            WHERE id = ? AND topic_url = ? AND wanted AND pending_mode = 'subscribe'
            """,
            lease_seconds,
            to_timestamp(expires_at),
            to_timestamp(renew_at),
            subscription_id,
            topic_url,
        )
        return changed > 0

    async def confirm_unsubscribe(self, subscription_id: int, topic_url: str) -> bool:
        """The hub verified our unsubscribe request: the subscription is over."""
        changed = await self._db.execute(
            "DELETE FROM websub_subscriptions WHERE id = ? AND topic_url = ? "
            "AND NOT wanted AND pending_mode = 'unsubscribe'",
            subscription_id,
            topic_url,
        )
        return changed > 0

    async def record_denied(
        self, subscription_id: int, topic_url: str, reason: str, retry_at: datetime
    ) -> bool:
        """The hub refused (or ended) our subscription; asked again at ``retry_at``."""
        changed = await self._db.execute(
            "UPDATE websub_subscriptions SET active = FALSE, pending_mode = NULL, "
            "last_error = ?, next_attempt_at = ? WHERE id = ? AND topic_url = ? AND wanted",
            ("denied by the hub: " + reason)[:500],
            to_timestamp(retry_at),
            subscription_id,
            topic_url,
        )
        return changed > 0

    async def delete(self, subscription_id: int) -> None:
        await self._db.execute("DELETE FROM websub_subscriptions WHERE id = ?", subscription_id)

    async def feeds_with_hubs(self, now: datetime) -> dict[int, FeedHub]:
        """The feeds whose hubs are subscribed (or being subscribed) to, with
        whether a hub pushes to them now (a confirmed lease that has not run
        out): those are polled only at the fallback interval."""
        rows = await self._db.fetch(
            "SELECT feed_id, hub_url, topic_url, active AND expires_at > ? "
            "FROM websub_subscriptions WHERE wanted",
            to_timestamp(now),
        )
        return {int(r[0]): FeedHub(r[1], r[2], bool(r[3])) for r in rows}
