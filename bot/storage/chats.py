"""Chats, their subscriptions and their delivery state.

A chat row carries what every sender must agree on, whichever process it
runs in: whether the bot may post there (``active``: not blocked or kicked;
``suspended_reason``: the right to post was lost, its cards wait) and until
when Telegram asked it to wait (``paused_until``, from a 429).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.chat_settings import ChatSettings
from bot.clock import to_timestamp
from bot.filters import MAX_TERMS, ChatFilter, Term, parse_term
from bot.storage.db import Database, Dialect, Row, Tx


@dataclass(frozen=True, slots=True)
class Chat:
    id: int
    type: str
    title: str | None
    username: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class SuspendedChat:
    id: int
    type: str
    title: str | None
    username: str | None
    reason: str
    pending: int  # cards waiting for the right to post to come back


@dataclass(frozen=True, slots=True)
class Topic:
    """Where in a forum a category's cards go."""

    thread_id: int | None  # None: General (Telegram takes no thread id for it)
    name: str | None = None  # as Telegram named it when the chat subscribed there


@dataclass(frozen=True, slots=True)
class SubscribedTopic:
    category_id: str
    topic: Topic


@dataclass(frozen=True, slots=True)
class FiltersAdded:
    added: list[Term] = field(default_factory=list)  # new, or the sign turned
    already: list[Term] = field(default_factory=list)  # the chat had them, same sign
    over_limit: list[Term] = field(default_factory=list)  # refused: MAX_TERMS reached


def filter_from_row(row: Row) -> ChatFilter | None:
    """(category_id, term, include) -> a filter; None for a stored term this
    version no longer reads."""
    term = parse_term(("+" if row[2] else "-") + row[1])
    return ChatFilter(row[0], term) if isinstance(term, Term) else None


def _same(term: Term) -> tuple[tuple[str, ...], bool]:
    """Terms that match the same words ("Café" and "cafe") are one term."""
    return term.words, term.prefix


_RELEASE_CLAIMS = (
    "UPDATE deliveries SET claimed_by = NULL, claim_expires_at = 0 "
    "WHERE chat_id = ? AND status = 'pending'"
)


async def settings_of_chats(
    tx: Tx, dialect: Dialect, chat_ids: Iterable[int]
) -> dict[int, ChatSettings]:
    """``SqlChats.settings_of_chats`` inside a transaction (routing reads
    them in the one that queues the cards)."""
    ids = sorted(set(chat_ids))
    if not ids:
        return {}
    rows = await tx.fetch(
        f"SELECT chat_id, settings FROM chat_settings WHERE {dialect.in_ids('chat_id')}",
        dialect.ids(ids),
    )
    return {int(r[0]): ChatSettings.from_json(r[1]) for r in rows}


class SqlChats:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert_chat(
        self,
        chat_id: int,
        chat_type: str,
        title: str | None,
        username: str | None,
        now: datetime,
        *,
        reactivate: bool = False,
    ) -> None:
        ts = to_timestamp(now)
        await self._db.execute(
            """
            INSERT INTO chats (id, type, title, username, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (id) DO UPDATE SET type = excluded.type, title = excluded.title,
                username = excluded.username, updated_at = excluded.updated_at,
                active = CASE WHEN ? THEN TRUE ELSE chats.active END,
                inactive_reason = CASE WHEN ? THEN NULL ELSE chats.inactive_reason END
            """,
            chat_id,
            chat_type,
            title,
            username,
            ts,
            ts,
            reactivate,
            reactivate,
        )

    async def get_chat(self, chat_id: int) -> Chat | None:
        row = await self._db.fetchrow(
            "SELECT id, type, title, username, active FROM chats WHERE id = ?", chat_id
        )
        return Chat(row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    async def chat_settings(self, chat_id: int) -> ChatSettings:
        """What the chat chose; the defaults for a chat that never chose."""
        text = await self._db.fetchval(
            "SELECT settings FROM chat_settings WHERE chat_id = ?", chat_id
        )
        return ChatSettings.from_json(text)

    async def settings_of_chats(self, chat_ids: Iterable[int]) -> dict[int, ChatSettings]:
        """The settings of each of ``chat_ids`` that chose any (the others
        have the defaults)."""
        return await settings_of_chats(self._db, self._db.dialect, chat_ids)

    async def chats_with_settings(self) -> dict[int, ChatSettings]:
        """Every active chat that chose anything (digest schedules, quiet
        hours), with its settings."""
        rows = await self._db.fetch(
            "SELECT s.chat_id, s.settings FROM chat_settings AS s "
            "JOIN chats AS c ON c.id = s.chat_id WHERE c.active ORDER BY s.chat_id"
        )
        return {int(r[0]): ChatSettings.from_json(r[1]) for r in rows}

    async def chats_in_digest_mode(self) -> dict[int, ChatSettings]:
        """Every active chat that chose digest times, with its settings. The
        JSON holds only what differs from the defaults, so the text test
        skips the chats that never chose digests without parsing them."""
        rows = await self._db.fetch(
            "SELECT s.chat_id, s.settings FROM chat_settings AS s "
            "JOIN chats AS c ON c.id = s.chat_id "
            "WHERE c.active AND s.settings LIKE '%\"digest_times\"%' ORDER BY s.chat_id"
        )
        chosen = {int(r[0]): ChatSettings.from_json(r[1]) for r in rows}
        return {chat_id: s for chat_id, s in chosen.items() if s.digest_times}

    async def update_chat_settings(
        self, chat_id: int, changes: Mapping[str, Any], now: datetime
    ) -> ChatSettings:
        """Apply ``changes`` to the chat's settings and return the result.
        Read and written in one transaction, the row locked first, so that
        two admins changing two settings at once both keep theirs. The chat
        must exist (``upsert_chat``). ValueError names an invalid change."""
        ts = to_timestamp(now)
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT INTO chat_settings (chat_id, settings, updated_at) VALUES (?, '{}', ?) "
                "ON CONFLICT (chat_id) DO NOTHING",
                chat_id,
                ts,
            )
            # A write that changes nothing still takes PostgreSQL's row lock
            # (SQLite's BEGIN IMMEDIATE already holds the database).
            await tx.execute(
                "UPDATE chat_settings SET updated_at = updated_at WHERE chat_id = ?", chat_id
            )
            current = ChatSettings.from_json(
                await tx.fetchval("SELECT settings FROM chat_settings WHERE chat_id = ?", chat_id)
            )
            updated = current.changed(**changes)
            await tx.execute(
                "UPDATE chat_settings SET settings = ?, updated_at = ? WHERE chat_id = ?",
                updated.to_json(),
                ts,
                chat_id,
            )
        return updated

    async def subscribe(
        self,
        chat_id: int,
        category_ids: Iterable[str],
        now: datetime,
        *,
        topic: Topic | None = None,
    ) -> list[str]:
        """Add subscriptions; returns the ones that were new. With a
        ``topic`` (a forum), the categories' cards go there from now on, and
        those that moved there count as new; without one, an existing
        subscription stays where it is."""
        added = []
        thread_id = topic.thread_id if topic else None
        name = topic.name if topic else None
        if topic is None:
            conflict = "DO NOTHING"
        else:
            # Only a move counts: subscribing again in the same topic is a no-op.
            conflict = (
                "(chat_id, category_id) DO UPDATE SET thread_id = excluded.thread_id, "
                "topic_name = excluded.topic_name "
                "WHERE COALESCE(subscriptions.thread_id, 0) != COALESCE(excluded.thread_id, 0)"
            )
        async with self._db.transaction() as tx:
            for category_id in category_ids:
                if await tx.execute(
                    "INSERT INTO subscriptions "
                    "(chat_id, category_id, created_at, thread_id, topic_name) "
                    f"VALUES (?, ?, ?, ?, ?) ON CONFLICT {conflict}",
                    chat_id,
                    category_id,
                    to_timestamp(now),
                    thread_id,
                    name,
                ):
                    added.append(category_id)
        return added

    async def subscription_topics(self, chat_id: int) -> list[SubscribedTopic]:
        """Each subscribed category and the forum topic its cards go to."""
        rows = await self._db.fetch(
            "SELECT category_id, thread_id, topic_name FROM subscriptions "
            "WHERE chat_id = ? ORDER BY category_id",
            chat_id,
        )
        return [SubscribedTopic(r[0], Topic(r[1], r[2])) for r in rows]

    async def topic_gone(self, chat_id: int, thread_id: int) -> list[str]:
        """A forum topic was closed or deleted: its categories fall back to
        General, and so do their waiting cards (free to be sent again at
        once). Returns the categories that moved."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT category_id FROM subscriptions WHERE chat_id = ? AND thread_id = ? "
                "ORDER BY category_id",
                chat_id,
                thread_id,
            )
            await tx.execute(
                "UPDATE subscriptions SET thread_id = NULL, topic_name = NULL "
                "WHERE chat_id = ? AND thread_id = ?",
                chat_id,
                thread_id,
            )
            await tx.execute(
                "UPDATE deliveries SET thread_id = NULL, claimed_by = NULL, claim_expires_at = 0 "
                "WHERE chat_id = ? AND thread_id = ? AND status = 'pending'",
                chat_id,
                thread_id,
            )
        return [r[0] for r in rows]

    async def unsubscribe(self, chat_id: int, category_ids: Iterable[str] | None) -> list[str]:
        """Remove subscriptions (all when ``category_ids`` is None); returns the
        removed ones. Pending cards of categories the chat no longer follows
        are dropped unless another subscribed category still matches them."""
        async with self._db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT category_id FROM subscriptions WHERE chat_id = ?", chat_id
            )
            current = {r[0] for r in rows}
            targets = current if category_ids is None else current & set(category_ids)
            for category_id in targets:
                await tx.execute(
                    "DELETE FROM subscriptions WHERE chat_id = ? AND category_id = ?",
                    chat_id,
                    category_id,
                )
            if targets:
                await tx.execute(
                    """
                    UPDATE deliveries SET status = 'dropped', error = 'unsubscribed'
                    WHERE chat_id = ? AND status = 'pending' AND NOT EXISTS (
                        SELECT 1 FROM article_categories AS ac
                        JOIN subscriptions AS s
                          ON s.category_id = ac.category_id AND s.chat_id = deliveries.chat_id
                        WHERE ac.article_id = deliveries.article_id)
                    """,
                    chat_id,
                )
        return sorted(targets)

    async def subscriptions(self, chat_id: int) -> list[str]:
        rows = await self._db.fetch(
            "SELECT category_id FROM subscriptions WHERE chat_id = ? ORDER BY category_id",
            chat_id,
        )
        return [r[0] for r in rows]

    async def chat_filters(self, chat_id: int) -> list[ChatFilter]:
        """The chat's terms, oldest first."""
        rows = await self._db.fetch(
            "SELECT category_id, term, include FROM chat_filters WHERE chat_id = ? ORDER BY id",
            chat_id,
        )
        return [f for f in map(filter_from_row, rows) if f is not None]

    async def add_filters(
        self,
        chat_id: int,
        category_id: str | None,
        terms: Sequence[Term],
        now: datetime,
        *,
        limit: int = MAX_TERMS,
    ) -> FiltersAdded:
        """Add terms for one category (None: every category). A term the chat
        has with the other sign changes sign; past ``limit`` terms in all,
        the rest are refused."""
        outcome = FiltersAdded()
        async with self._db.transaction() as tx:
            if self._db.backend == "postgresql":
                # Two commands at once must not both pass the limit.
                await tx.execute("SELECT 1 FROM chats WHERE id = ? FOR UPDATE", chat_id)
            rows = await tx.fetch(
                "SELECT id, category_id, term, include FROM chat_filters WHERE chat_id = ?",
                chat_id,
            )
            existing: dict[tuple[tuple[str, ...], bool], tuple[int, bool]] = {}
            for row in rows:
                stored = filter_from_row(row[1:])
                if stored is not None and stored.category_id == category_id:
                    existing[_same(stored.term)] = (int(row[0]), stored.term.include)
            count = len(rows)
            for term in terms:
                found = existing.get(_same(term))
                if found is not None:
                    row_id, include = found
                    if include == term.include:
                        outcome.already.append(term)
                        continue
                    await tx.execute(
                        "UPDATE chat_filters SET term = ?, include = ?, created_at = ? WHERE id = ?",
                        term.text,
                        term.include,
                        to_timestamp(now),
                        row_id,
                    )
                    existing[_same(term)] = (row_id, term.include)
                    outcome.added.append(term)
                    continue
                if count >= limit:
                    outcome.over_limit.append(term)
                    continue
                row_id = await tx.fetchval(
                    "INSERT INTO chat_filters (chat_id, category_id, term, include, created_at) "
                    "VALUES (?, ?, ?, ?, ?) RETURNING id",
                    chat_id,
                    category_id,
                    term.text,
                    term.include,
                    to_timestamp(now),
                )
                existing[_same(term)] = (int(row_id or 0), term.include)
                count += 1
                outcome.added.append(term)
        return outcome

    async def clear_filters(self, chat_id: int, category_id: str | None) -> int:
        """Remove the terms of one category, or (None) all of the chat's."""
        if category_id is None:
            return await self._db.execute("DELETE FROM chat_filters WHERE chat_id = ?", chat_id)
        return await self._db.execute(
            "DELETE FROM chat_filters WHERE chat_id = ? AND category_id = ?", chat_id, category_id
        )

    async def deactivate_chat(self, chat_id: int, reason: str, now: datetime) -> int:
        """Pause a chat (blocked, kicked, gone) and drop its pending cards.
        Subscriptions are kept so re-adding the bot restores them. Returns the
        number of dropped cards."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE chats SET active = FALSE, inactive_reason = ?, updated_at = ? WHERE id = ?",
                reason[:500],
                to_timestamp(now),
                chat_id,
            )
            return await tx.execute(
                "UPDATE deliveries SET status = 'dropped', error = ?, claimed_by = NULL, "
                "claim_expires_at = 0 WHERE chat_id = ? AND status = 'pending'",
                reason[:500],
                chat_id,
            )

    async def migrate_chat(self, old_id: int, new_id: int, now: datetime) -> None:
        """A group became a supergroup: keep subscriptions and pending cards
        under the new id (ON UPDATE CASCADE moves the rows)."""
        async with self._db.transaction() as tx:
            if await tx.fetchval("SELECT 1 FROM chats WHERE id = ?", new_id):
                # The bot already met the supergroup: merge into it.
                await tx.execute(
                    "INSERT INTO subscriptions (chat_id, category_id, created_at) "
                    "SELECT ?, category_id, created_at FROM subscriptions WHERE chat_id = ? "
                    "ON CONFLICT DO NOTHING",
                    new_id,
                    old_id,
                )
                # Settings move unless the supergroup already has its own.
                await tx.execute(
                    "UPDATE chat_settings SET chat_id = ? WHERE chat_id = ? AND NOT EXISTS ("
                    "SELECT 1 FROM chat_settings AS other WHERE other.chat_id = ?)",
                    new_id,
                    old_id,
                    new_id,
                )
                # Filters move unless the supergroup already has its own.
                await tx.execute(
                    "UPDATE chat_filters SET chat_id = ? WHERE chat_id = ? AND NOT EXISTS ("
                    "SELECT 1 FROM chat_filters AS other WHERE other.chat_id = ?)",
                    new_id,
                    old_id,
                    new_id,
                )
                await tx.execute(
                    """
                    UPDATE deliveries SET chat_id = ? WHERE chat_id = ? AND NOT EXISTS (
                        SELECT 1 FROM deliveries AS other
                        WHERE other.chat_id = ? AND other.article_id = deliveries.article_id)
                    """,
                    new_id,
                    old_id,
                    new_id,
                )
                await tx.execute("DELETE FROM chats WHERE id = ?", old_id)
            else:
                await tx.execute(
                    "UPDATE chats SET id = ?, type = 'supergroup', updated_at = ? WHERE id = ?",
                    new_id,
                    to_timestamp(now),
                    old_id,
                )
            # A card claimed for the old id is sent again under the new one.
            await tx.execute(_RELEASE_CLAIMS, new_id)

    async def suspend_chat(self, chat_id: int, reason: str, now: datetime) -> None:
        """The bot may no longer post in this chat (not an admin any more, a
        closed topic): hold its cards, neither sent nor failed, until
        ``resume_chat``."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE chats SET suspended_reason = ?, updated_at = ? WHERE id = ?",
                reason[:500] or "no right to post",
                to_timestamp(now),
                chat_id,
            )
            # The refused card waits with the others, free for whoever sends
            # once the right is back.
            await tx.execute(_RELEASE_CLAIMS, chat_id)

    async def resume_chat(self, chat_id: int, now: datetime) -> bool:
        """The right to post is back; returns whether the chat was suspended."""
        changed = await self._db.execute(
            "UPDATE chats SET suspended_reason = NULL, updated_at = ? "
            "WHERE id = ? AND suspended_reason IS NOT NULL",
            to_timestamp(now),
            chat_id,
        )
        return changed > 0

    async def pause_chat(self, chat_id: int, until: datetime) -> None:
        """Telegram asked this chat's sends to wait (a 429 with retry_after)."""
        latest = self._db.dialect.greatest("paused_until", "?")
        await self._db.execute(
            f"UPDATE chats SET paused_until = {latest} WHERE id = ?",
            to_timestamp(until),
            chat_id,
        )

    async def suspended_chats(self) -> list[SuspendedChat]:
        rows = await self._db.fetch(
            """
            SELECT c.id, c.type, c.title, c.username, c.suspended_reason,
                   (SELECT count(*) FROM deliveries AS d
                    WHERE d.chat_id = c.id AND d.status = 'pending')
            FROM chats AS c WHERE c.suspended_reason IS NOT NULL AND c.active ORDER BY c.id
            """
        )
        return [SuspendedChat(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]
