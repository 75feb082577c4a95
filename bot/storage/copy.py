"""Copy a live SQLite installation into PostgreSQL (``newsbot db copy``).

Every table is copied with its ids, parents before children, in batches;
rows already in the target (by primary key or unique key) are left alone,
so running the copy again copies nothing twice and picks up what the source
gained meanwhile. The search index is not copied: PostgreSQL's trigger builds
it from each article as it arrives. Identity sequences are moved past the
copied ids, so rows the bot adds afterwards never collide with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.storage.db import PostgresDatabase, SqliteDatabase

BATCH = 2000


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the primary key: batches are read in its order
    booleans: tuple[str, ...] = ()
    # The identity column whose sequence must move past the copied ids.
    identity: str | None = None


# Parents before children (foreign keys hold at every step).
TABLES: Sequence[Table] = (
    Table(
        "feeds",
        (
            "id", "url", "fetch_url", "name", "title", "site_url", "categories", "interval",
            "configured", "etag", "last_modified", "body_hash", "next_check_at",
            "last_checked_at", "last_success_at", "error_count", "last_error", "disabled",
            "ever_fetched", "claimed_by", "claim_expires_at", "origin", "paused",
        ),
        key=("id",),
        booleans=("configured", "disabled", "ever_fetched", "paused"),
        identity="id",
    ),
    Table(
        "articles",
        (
            "id", "feed_id", "entry_key", "url", "title", "summary", "author", "image_url",
            "categories", "published_at", "first_seen_at", "changed_at", "tags",
        ),
        key=("id",),
        identity="id",
    ),
    Table(
        "article_categories",
        ("category_id", "published_at", "article_id"),
        key=("category_id", "published_at", "article_id"),
    ),
    Table("article_aliases", ("feed_id", "entry_key", "article_id"), key=("feed_id", "entry_key")),
    Table("feed_items", ("feed_id", "item_digest", "entry_key"), key=("feed_id", "item_digest")),
    Table(
        "chats",
        (
            "id", "type", "title", "username", "active", "inactive_reason", "created_at",
            "updated_at", "suspended_reason", "paused_until",
        ),
        key=("id",),
        booleans=("active",),
    ),
    Table(
        "subscriptions",
        ("chat_id", "category_id", "created_at", "thread_id", "topic_name"),
        key=("chat_id", "category_id"),
    ),
    Table(
        "deliveries",
        (
            "id", "article_id", "chat_id", "status", "attempts", "next_attempt_at",
            "message_id", "error", "created_at", "sent_at", "claimed_by", "claim_expires_at",
            "thread_id", "card_kind", "edit_generation", "edit_due_at", "edit_attempts",
            "edit_claimed_by", "edit_claim_expires_at", "edited_at", "edit_refused",
            "held_for", "held_until", "digest_id",
        ),
        key=("id",),
        identity="id",
    ),
    Table(
        "digests",
        ("id", "chat_id", "kind", "slot_at", "created_at"),
        key=("id",),
        identity="id",
    ),
    Table(
        "chat_filters",
        ("id", "chat_id", "category_id", "term", "include", "created_at"),
        key=("id",),
        booleans=("include",),
        identity="id",
    ),
    Table("chat_settings", ("chat_id", "settings", "updated_at"), key=("chat_id",)),
    Table("state", ("key", "value", "updated_at"), key=("key",)),
    Table("search_queries", ("id", "query", "created_at"), key=("id",), identity="id"),
    Table(
        "websub_subscriptions",
        (
            "id", "feed_id", "hub_url", "topic_url", "secret", "trusted", "wanted", "active",
            "pending_mode", "lease_seconds", "expires_at", "next_attempt_at", "attempts",
            "last_error", "created_at",
        ),
        key=("id",),
        booleans=("trusted", "wanted", "active"),
        identity="id",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TableCopied:
    table: str
    rows: int  # in the source
    added: int  # new in the target


Progress = Callable[[TableCopied], None]


async def copy_database(
    source: SqliteDatabase, target: PostgresDatabase, progress: Progress | None = None
) -> list[TableCopied]:
    results = []
    for table in TABLES:
        copied = await _copy_table(source, target, table)
        results.append(copied)
        if progress is not None:
            progress(copied)
    return results


async def _copy_table(
    source: SqliteDatabase, target: PostgresDatabase, table: Table
) -> TableCopied:
    columns = ", ".join(table.columns)
    key = ", ".join(table.key)
    positions = [table.columns.index(c) for c in table.key]
    flags = [table.columns.index(c) for c in table.booleans]
    rows_seen = added = 0
    after: tuple[Any, ...] | None = None
    while True:
        # Keyset pagination in primary-key order: the bot may go on writing
        # to the source meanwhile (WAL), and each batch reads a consistent
        # snapshot; a re-run picks up whatever arrived after.
        where = f"WHERE ({key}) > ({', '.join('?' * len(table.key))})" if after else ""
        rows = await source.fetch(
            f"SELECT {columns} FROM {table.name} {where} ORDER BY {key} LIMIT ?",
            *(after or ()),
            BATCH,
        )
        if not rows:
            break
        after = tuple(rows[-1][i] for i in positions)
        values = [value for row in rows for value in _convert(row, flags)]
        marks = ", ".join(["(" + ", ".join("?" * len(table.columns)) + ")"] * len(rows))
        # One statement per batch: its status says how many rows were new.
        added += await target.execute(
            f"INSERT INTO {table.name} ({columns}) VALUES {marks} ON CONFLICT DO NOTHING",
            *values,
        )
        rows_seen += len(rows)
    if table.identity is not None:
        await target.execute(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{table.identity}'), "
            f"GREATEST((SELECT max({table.identity}) FROM {table.name}), 1))"
        )
    return TableCopied(table.name, rows_seen, added)


def _convert(row: Sequence[Any], booleans: Sequence[int]) -> tuple[Any, ...]:
    values = list(row)
    for index in booleans:
        values[index] = bool(values[index])
    return tuple(values)
