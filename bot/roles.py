"""Which jobs a process runs, and how it holds what only one may hold.

``newsbot run`` does everything in one process: poll feeds, send cards, and
read Telegram's updates (the embedded default, on SQLite). On PostgreSQL,
``newsbot run --role poller,sender,updates`` (any subset, any number of
processes on any machines) splits them:

- **poller**: claims due feeds in the database; pollers share the feeds,
  and no feed is ever fetched by two of them at once.
- **sender**: drains the outbox. One sender is *active* at a time, elected
  with a PostgreSQL advisory lock; the others stand by and one takes over
  within seconds when the active one dies (its session, and with it the
  lock, ends). One active sender paces every card of the bot, so together
  they stay under Telegram's limits (about 30 messages/s per bot, 1/s per
  chat, 20/min per group) without sharing a clock; the outbox's leases make
  a takeover lose nothing and repeat at most the cards that were in flight.
- **updates**: reads Telegram's updates. Long polling allows one reader per
  bot (a second gets 409 Conflict), so it is elected the same way; in
  webhook mode every such process serves the webhook behind a load balancer.

The job queue of each process schedules only its own roles' work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from bot.storage.db import PostgresDatabase

log = logging.getLogger(__name__)

Role = Literal["poller", "sender", "updates"]
ALL_ROLES: tuple[Role, ...] = ("poller", "sender", "updates")

# Advisory lock keys (any constants no other lock uses).
SENDER_LOCK = 7_201_010
UPDATES_LOCK = 7_201_011


def parse_roles(text: str | None, *, backend: str) -> frozenset[Role]:
    """``--role poller,sender`` → the roles; all of them without the option.
    SQLite serves one process, so it runs every role or refuses."""
    if text is None:
        return frozenset(ALL_ROLES)
    if backend != "postgresql":
        raise ConfigError(
            "--role needs PostgreSQL ([storage] url): SQLite serves one process, "
            "which runs every role"
        )
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    unknown = [w for w in words if w not in ALL_ROLES]
    if unknown or not words:
        raise ConfigError(
            f"--role: unknown role {unknown[0]!r}" if unknown else "--role: no role given"
        ) from None
    return frozenset(w for w in ALL_ROLES if w in words)


def worker_name(role: str) -> str:
    """Names a process's claims: readable in the database, unique per run."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership(Protocol):
    """Something only one process may hold at a time."""

    @property
    def held(self) -> bool: ...

    async def try_acquire(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class SoleProcess:
    """On SQLite there is one process: it always leads."""

    held = True

    async def try_acquire(self) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own: it is
    held exactly as long as that session lives, so a process that dies, or
    loses its network, gives it up without anyone's help."""

    def __init__(self, db: PostgresDatabase, key: int, what: str) -> None:
        self._db = db
        self._key = key
        self._what = what
        self._connection: Any = None
        self.held = False

    async def try_acquire(self) -> bool:
        if self.held:
            return await self.still_held()
        try:
            if self._connection is None:
                self._connection = await self._db.connect()
            self.held = bool(
                await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key)
            )
        except (StorageError, OSError) as error:
            log.warning("roles: cannot contend to be the %s: %s", self._what, error)
            await self._drop_connection()
            return False
        except Exception as error:  # asyncpg's own errors: the session is gone
            log.warning("roles: cannot contend to be the %s: %s", self._what, error)
            await self._drop_connection()
            return False
        if self.held:
            log.info("roles: this process is now the %s", self._what)
        return self.held

    async def still_held(self) -> bool:
        """Is the session that holds the lock alive? A dead one has lost it."""
        if not self.held:
            return False
        try:
            await asyncio.wait_for(self._connection.fetchval("SELECT 1"), timeout=10)
        except Exception as error:
            log.warning("roles: lost the %s role: %s", self._what, error)
            self.held = False
            await self._drop_connection()
        return self.held

    async def release(self) -> None:
        if self.held and self._connection is not None:
            try:
                await self._connection.execute("SELECT pg_advisory_unlock($1)", self._key)
            except Exception as error:
                log.info("roles: releasing the %s role: %s", self._what, error)
        self.held = False
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), timeout=5)
            except Exception:
                connection.terminate()


def describe(roles: Iterable[Role]) -> str:
    return ",".join(r for r in ALL_ROLES if r in set(roles))
