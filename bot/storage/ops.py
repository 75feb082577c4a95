"""What the operators' tools ask of storage: the cheap counts behind the
metrics and the daily report, and the alerts' "already told" state.

The counts read small tables (feeds, chats) or the deliveries' indexes; the
alerts' state is one row of ``state`` changed by compare-and-swap, so that
of two processes looking at the same change only one tells the operators.
"""

from __future__ import annotations

from datetime import datetime

from bot.clock import to_timestamp
from bot.storage.db import Database


class SqlOps:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def feed_state_counts(self) -> dict[str, int]:
        """Configured feeds by state: ``ok``, ``failing`` (failed last time,
        still polled) and ``disabled`` (410 Gone)."""
        rows = await self._db.fetch(
            """
            SELECT CASE WHEN disabled THEN 'disabled'
                        WHEN error_count > 0 THEN 'failing' ELSE 'ok' END AS state,
                   count(*)
            FROM feeds WHERE configured GROUP BY 1
            """
        )
        counts = {"ok": 0, "failing": 0, "disabled": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    async def subscribed_chat_counts(self) -> dict[str, int]:
        """Active chats with at least one subscription, by chat type."""
        rows = await self._db.fetch(
            """
            SELECT c.type, count(*) FROM chats AS c
            WHERE c.active AND EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.chat_id = c.id)
            GROUP BY c.type
            """
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def cards_finished_since(self, since: datetime) -> dict[str, int]:
        """Cards sent since ``since`` (by their sent time), and cards failed
        among those queued since then (a failed row keeps no time of its own)."""
        ts = to_timestamp(since)
        sent = await self._db.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'sent' AND sent_at >= ?", ts
        )
        failed = await self._db.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'failed' AND created_at >= ?", ts
        )
        return {"sent": int(sent or 0), "failed": int(failed or 0)}

    async def replace_state(
        self, key: str, expected: str | None, value: str, now: datetime
    ) -> bool:
        """Set ``key`` to ``value`` if it still holds ``expected`` (None: if it
        is absent). False when another process changed it first."""
        ts = to_timestamp(now)
        if expected is None:
            changed = await self._db.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                key,
                value,
                ts,
            )
        else:
            changed = await self._db.execute(
                "UPDATE state SET value = ?, updated_at = ? WHERE key = ? AND value = ?",
                value,
                ts,
                key,
                expected,
            )
        return changed > 0
