"""Small values the bot keeps across restarts and shares between processes:
named values (the webhook secret) and search queries behind paging buttons."""

from __future__ import annotations

from datetime import datetime

from bot.clock import to_timestamp
from bot.storage.db import Database


class SqlState:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_state(self, key: str) -> str | None:
        value = await self._db.fetchval("SELECT value FROM state WHERE key = ?", key)
        return None if value is None else str(value)

    async def set_state_if_absent(self, key: str, value: str, now: datetime) -> str:
        """Store ``value`` under ``key`` unless one is there; returns the value
        that is stored (the first writer's, when two race)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                key,
                value,
                to_timestamp(now),
            )
            stored = await tx.fetchval("SELECT value FROM state WHERE key = ?", key)
        return str(stored)

    async def remember_search(self, query: str, now: datetime) -> int:
        """A short key for ``query``, for a paging button's 64 bytes (a query
        may be 256 characters)."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO search_queries (query, created_at) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                query,
                to_timestamp(now),
            )
            key = await tx.fetchval("SELECT id FROM search_queries WHERE query = ?", query)
        return int(key)

    async def recall_search(self, key: int) -> str | None:
        value = await self._db.fetchval("SELECT query FROM search_queries WHERE id = ?", key)
        return None if value is None else str(value)
