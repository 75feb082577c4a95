"""Storage: every SQL statement of newsbot lives in this package.

Split by entity, as the rest of the program sees it (``Storage`` below):
feeds; articles and their search; chats, subscriptions and chat state; the
outbox; small shared values; WebSub subscriptions. Each entity is a protocol (``protocols``) with
one implementation per backend: SQLite, the embedded default, and
PostgreSQL, for several processes on several machines. Shared SQL is written
once (``feeds``, ``articles``, ``chats``, ``outbox``, ``state``); what the
dialects do differently lives in the backend's own module (``search_sqlite``,
``search_postgres``, ``schema_sqlite``, ``schema_postgres``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from bot.config import StorageConfig
from bot.logs import register_secret
from bot.storage import schema_postgres, schema_sqlite
from bot.storage.articles import SqlArticles, StoreOutcome
from bot.storage.chats import Chat, SqlChats, SuspendedChat
from bot.storage.db import Backend, Database, PostgresDatabase, SqliteDatabase
from bot.storage.edits import CardEdit, SqlCardEdits
from bot.storage.feeds import SqlFeeds
from bot.storage.outbox import PendingDelivery, SqlOutbox
from bot.storage.protocols import (
    ArticleStore,
    CardEditQueue,
    ChatStore,
    FeedStore,
    Outbox,
    SearchIndex,
    StateStore,
    WebSubStore,
)
from bot.storage.search_postgres import PostgresSearch
from bot.storage.search_sqlite import SqliteSearch
from bot.storage.state import SqlState
from bot.storage.websub import SqlWebSub

PASSWORD_ENV = "NEWSBOT_DATABASE_PASSWORD"

__all__ = [
    "PASSWORD_ENV",
    "CardEdit",
    "Chat",
    "PendingDelivery",
    "Storage",
    "StoreOutcome",
    "SuspendedChat",
    "open_storage",
    "postgres_dsn",
]


@dataclass
class Storage:
    db: Database
    feeds: FeedStore
    articles: ArticleStore
    search: SearchIndex
    chats: ChatStore
    outbox: Outbox
    state: StateStore
    edits: CardEditQueue
    websub: WebSubStore

    @property
    def backend(self) -> Backend:
        return self.db.backend

    @property
    def where(self) -> str:
        """The database, for messages: a path, or host:port/name (no password)."""
        return self.db.where

    async def schema_version(self) -> int:
        if isinstance(self.db, PostgresDatabase):
            return await schema_postgres.schema_version(self.db)
        assert isinstance(self.db, SqliteDatabase)
        async with self.db.lock:
            return await schema_sqlite.schema_version(self.db.connection)

    async def close(self) -> None:
        await self.db.close()


def postgres_dsn(url: str) -> tuple[str, str]:
    """The URL asyncpg connects with (the password from the environment when
    set there), and how to name the server in messages (without one)."""
    parts = urlsplit(url)
    password = os.environ.get(PASSWORD_ENV) or (unquote(parts.password) if parts.password else "")
    user = unquote(parts.username) if parts.username else ""
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    database = parts.path.lstrip("/") or user or "postgres"
    if password:
        register_secret(password)
    credentials = quote(user, safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    dsn = urlunsplit(("postgresql", netloc, "/" + database, parts.query, ""))
    return dsn, f"{host}:{port}/{database}"


async def open_storage(config: StorageConfig) -> Storage:
    """Open (and migrate) the configured database: PostgreSQL when
    ``[storage] url`` is set, else the SQLite file at ``[storage] path``."""
    db: Database
    if config.url:
        dsn, where = postgres_dsn(config.url)
        db = await PostgresDatabase.open(dsn, where, pool_size=config.pool_size)
        try:
            await schema_postgres.migrate(db)
        except BaseException:
            await db.close()
            raise
        search: SearchIndex = PostgresSearch(db)
    else:
        db = await SqliteDatabase.open(config.path)
        try:
            await schema_sqlite.migrate(db)
        except BaseException:
            await db.close()
            raise
        search = SqliteSearch(db)
    return Storage(
        db=db,
        feeds=SqlFeeds(db),
        articles=SqlArticles(db),
        search=search,
        chats=SqlChats(db),
        outbox=SqlOutbox(db),
        state=SqlState(db),
        edits=SqlCardEdits(db),
        websub=SqlWebSub(db),
    )
