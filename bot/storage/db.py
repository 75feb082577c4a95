"""The two database backends behind one small interface.

SQLite (the embedded default) is one aiosqlite connection in autocommit mode:
transactions are explicit (``BEGIN IMMEDIATE`` ... ``COMMIT``) and serialised
by an asyncio lock, because the poller, the sender and the Telegram handlers
share the connection and their statements must never interleave inside
someone else's transaction. PostgreSQL (several processes, several machines)
is an asyncpg pool; a transaction holds one pooled connection.

SQL is written once, with ``?`` placeholders, wherever the two dialects agree
(standard SQL, ``ON CONFLICT``, ``RETURNING``); the PostgreSQL side numbers
the placeholders (``$1``, ``$2``) for asyncpg. The few spellings that differ
(a list of ids as one parameter, ``max(a, b)``) come from ``Dialect``; what
differs wholly (full-text search, claiming with ``SKIP LOCKED``) lives in the
backend's own module. Driver errors become ``StorageError`` here, with a
message that never carries a password.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiosqlite

from bot.errors import StorageError

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

Row = Sequence[Any]
Backend = Literal["sqlite", "postgresql"]


class Dialect:
    """The spellings that differ between the backends, as SQL fragments."""

    def __init__(self, name: Backend) -> None:
        self.name = name

    def in_ids(self, expression: str) -> str:
        """``expression`` is one of a list of integers passed as ONE parameter
        (see ``ids``): SQLite's host-parameter limit never applies."""
        if self.name == "sqlite":
            return f"{expression} IN (SELECT value FROM json_each(?))"
        return f"{expression} = ANY(?::bigint[])"

    def in_texts(self, expression: str) -> str:
        if self.name == "sqlite":
            return f"{expression} IN (SELECT value FROM json_each(?))"
        return f"{expression} = ANY(?::text[])"

    def ids(self, values: Iterable[int]) -> Any:
        return json.dumps(list(values)) if self.name == "sqlite" else list(values)

    def texts(self, values: Iterable[str]) -> Any:
        return json.dumps(list(values)) if self.name == "sqlite" else list(values)

    def greatest(self, a: str, b: str) -> str:
        return f"max({a}, {b})" if self.name == "sqlite" else f"GREATEST({a}, {b})"


class Tx(Protocol):
    """What a statement runs on: a transaction, or the database itself (then
    each statement is a transaction of its own)."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...


class Database(Tx, Protocol):
    backend: Backend
    dialect: Dialect
    where: str  # for messages: a path, or host:port/database (never a password)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    async def close(self) -> None: ...


class _RowsFromFetch(abc.ABC):
    """``fetchrow`` and ``fetchval`` for a class that can ``fetch``."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = await self.fetchrow(sql, *args)
        return row[0] if row else None


class _InTransaction(abc.ABC):
    """Writes through ``transaction()``, each statement a transaction of its own."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...

    async def execute(self, sql: str, *args: Any) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)


# -- SQLite ------------------------------------------------------------------


async def uncancellable(statement: Awaitable[Any]) -> Any:
    """Await ``statement`` to its end even if the awaiting task is cancelled
    meanwhile; the cancellation is raised once the statement is done.
    aiosqlite runs a statement to its end in its own thread whatever happens
    to the task that awaits it, so BEGIN, COMMIT and ROLLBACK must be waited
    for: the lock is released only when the connection's state is known."""
    future = asyncio.ensure_future(statement)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await asyncio.wait([future])
        raise


def _sqlite_error(error: sqlite3.Error) -> StorageError:
    return StorageError(f"storage: {error}")


class _SqliteTx(_RowsFromFetch):
    """Each call is as few trips to aiosqlite's thread as it can be: a trip
    (a queue put, a wake-up, a future set from the other thread) costs more
    CPU than most of the statements a poll runs."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self._db.execute(sql, args)
            if cursor.description is not None:
                # It returned rows (RETURNING): close it, so it holds no
                # statement open in the transaction.
                await cursor.close()
            # Otherwise the statement ran to its end and was reset already:
            # closing would be one more trip for nothing.
            return max(0, cursor.rowcount)
        except sqlite3.Error as error:
            raise _sqlite_error(error) from None

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._db.executemany(sql, rows)
        except sqlite3.Error as error:
            raise _sqlite_error(error) from None

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            # One trip: executed, read and closed in aiosqlite's thread.
            return list(await self._db.execute_fetchall(sql, args))
        except sqlite3.Error as error:
            raise _sqlite_error(error) from None


class SqliteDatabase(_RowsFromFetch, _InTransaction):
    backend: Backend = "sqlite"

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self.connection = connection
        self.path = path
        self.where = path
        self.dialect = Dialect("sqlite")
        self._tx = _SqliteTx(connection)
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Find a path SQLite cannot open before aiosqlite does: when its
                # connect fails, its worker thread outlives the call and dies
                # with "Event loop is closed" once the CLI's loop is gone.
                sqlite3.connect(path).close()
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"storage: cannot open {path}: {error}") from None
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as error:
            raise StorageError(f"storage: cannot open {path}: {error}") from None
        database = cls(connection, path)
        try:
            # WAL lets the CLI read while the bot writes; NORMAL sync is safe
            # with WAL (a crash can lose the last commit, never corrupt).
            await connection.execute("PRAGMA journal_mode = WAL")
            await connection.execute("PRAGMA synchronous = NORMAL")
            await connection.execute("PRAGMA foreign_keys = ON")
            await connection.execute("PRAGMA busy_timeout = 5000")
        except sqlite3.Error as error:
            await connection.close()
            raise StorageError(f"storage: {path} is not usable: {error}") from None
        except BaseException:
            await connection.close()
            raise
        return database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error.
        A cancelled task never releases the lock with a transaction left
        open on the shared connection: the next user would run inside it,
        and a later ROLLBACK would undo their work too."""
        db = self.connection
        async with self.lock:
            try:
                await uncancellable(db.execute("BEGIN IMMEDIATE"))
                yield self._tx
            except BaseException as error:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        await uncancellable(db.execute("ROLLBACK"))
                if isinstance(error, sqlite3.Error):
                    raise _sqlite_error(error) from None
                raise
            else:
                try:
                    await uncancellable(db.execute("COMMIT"))
                except sqlite3.Error as error:
                    if db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            await uncancellable(db.execute("ROLLBACK"))
                    raise StorageError(f"storage: commit failed: {error}") from None

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self.lock:
            return await self._tx.fetch(sql, *args)

    async def close(self) -> None:
        async with self.lock:
            try:
                await self.connection.execute("PRAGMA optimize")
            except sqlite3.Error:
                pass  # optimisation is best effort; closing is what matters
            await self.connection.close()


# -- PostgreSQL --------------------------------------------------------------

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")


@functools.lru_cache(maxsize=1024)
def numbered_placeholders(sql: str) -> str:
    """``?`` → ``$1``, ``$2``... outside string literals (asyncpg's style)."""
    counter = 0

    def number(match: re.Match[str]) -> str:
        nonlocal counter
        if match.group(0) != "?":
            return match.group(0)
        counter += 1
        return f"${counter}"

    return _PLACEHOLDER.sub(number, sql)


def _changed(status: str) -> int:
    """Rows changed, from asyncpg's command status ("UPDATE 3", "INSERT 0 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def postgres_error(error: BaseException, where: str) -> StorageError:
    return StorageError(f"storage: PostgreSQL at {where}: {type(error).__name__}: {error}")


def _is_driver_error(error: BaseException) -> bool:
    import asyncpg

    return isinstance(
        error, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | TimeoutError
    )


class _PostgresTx:
    def __init__(self, connection: asyncpg.Connection, where: str) -> None:
        self._conn = connection
        self._where = where

    async def _run(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except BaseException as error:
            if _is_driver_error(error):
                raise postgres_error(error, self._where) from None
            raise

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._run(self._conn.execute(numbered_placeholders(sql), *args))
        return _changed(str(status))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._run(self._conn.executemany(numbered_placeholders(sql), list(rows)))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._run(self._conn.fetch(numbered_placeholders(sql), *args)))

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._run(self._conn.fetchrow(numbered_placeholders(sql), *args))
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(self._conn.fetchval(numbered_placeholders(sql), *args))


class PostgresDatabase(_InTransaction):
    backend: Backend = "postgresql"

    def __init__(self, pool: asyncpg.Pool, where: str, dsn: str) -> None:
        self.pool = pool
        self.where = where
        self.dialect = Dialect("postgresql")
        self._dsn = dsn  # for the dedicated connections of advisory locks

    @classmethod
    async def open(
        cls, dsn: str, where: str, *, pool_size: int = 10, connect_timeout: float = 10.0
    ) -> PostgresDatabase:
        import asyncpg

        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                command_timeout=60,
                # asyncpg prepares every statement; after five runs PostgreSQL
                # may keep one generic plan for it, which cannot see how common
                # a search's words are: a rare word in a category then took
                # 0.8 s through a plan made for common ones. Planning each
                # time costs well under a millisecond.
                server_settings={"plan_cache_mode": "force_custom_plan"},
            )
        except asyncpg.InvalidCatalogNameError:
            database = where.rsplit("/", 1)[-1]
            raise StorageError(
                f"storage.url: database {database!r} does not exist on {where.rsplit('/', 1)[0]} "
                f"(create it: createdb {database})"
            ) from None
        except asyncpg.InvalidPasswordError:
            raise StorageError(
                f"storage.url: PostgreSQL at {where} refused the password "
                "(set NEWSBOT_DATABASE_PASSWORD or put it in the URL)"
            ) from None
        except (OSError, TimeoutError) as error:
            raise StorageError(
                f"storage.url: cannot reach PostgreSQL at {where}: {error or type(error).__name__}"
            ) from None
        except asyncpg.PostgresError as error:
            raise StorageError(f"storage.url: PostgreSQL at {where}: {error}") from None
        return cls(pool, where, dsn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                yield _PostgresTx(connection, self.where)
        except BaseException as error:
            if _is_driver_error(error):
                raise postgres_error(error, self.where) from None
            raise

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self.transaction() as tx:
            return await tx.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self.transaction() as tx:
            return await tx.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.transaction() as tx:
            return await tx.fetchval(sql, *args)

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool (advisory locks live as
        long as the session that took them)."""
        import asyncpg

        try:
            # Named after this process, so that an operator (or a test) can
            # see in pg_stat_activity which process holds which role.
            return await asyncpg.connect(
                self._dsn,
                timeout=10,
                server_settings={"application_name": f"newsbot:{os.getpid()}"},
            )
        except BaseException as error:
            if _is_driver_error(error):
                raise postgres_error(error, self.where) from None
            raise

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except TimeoutError:
            self.pool.terminate()
