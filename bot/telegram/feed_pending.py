"""What the operators' feed commands keep in this process's memory.

What a button stands for when it is too long for its 64 bytes (discovered
feeds, an OPML document) waits behind a random token for ``PENDING_SECONDS``:
a press after that, after a restart, or with forged data finds nothing
("expired"). And the /addfeed discoveries under way, one per operator and
URL: a discovery may take up to a minute, so it runs beside the updates of
every other chat, and the same URL sent again meanwhile is not looked up twice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from telegram.ext import ContextTypes

from bot.discover import FoundFeed
from bot.opml import OpmlDocument

PENDING_SECONDS = 30 * 60.0
MAX_PENDING = 200
PENDING_KEY = "feed_pending"  # in bot_data
DISCOVERIES_KEY = "feed_discoveries"  # in bot_data


@dataclass
class Pending:
    user_id: int
    created: float  # time.monotonic()
    found: tuple[FoundFeed, ...] = ()
    chosen: int | None = None  # index into found, once known
    categories: tuple[str, ...] = ()  # given with /addfeed
    document: OpmlDocument | None = None
    file_name: str = ""


@dataclass
class PendingStore:
    entries: dict[str, Pending] = field(default_factory=dict)

    def put(self, pending: Pending) -> str:
        self._forget_old()
        while len(self.entries) >= MAX_PENDING:
            del self.entries[next(iter(self.entries))]
        token = secrets.token_urlsafe(9)  # 12 characters
        self.entries[token] = pending
        return token

    def get(self, token: str) -> Pending | None:
        self._forget_old()
        return self.entries.get(token)

    def drop(self, token: str) -> None:
        self.entries.pop(token, None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for token in [t for t, p in self.entries.items() if now - p.created > PENDING_SECONDS]:
            del self.entries[token]


def pending_store(context: ContextTypes.DEFAULT_TYPE) -> PendingStore:
    store = context.bot_data.get(PENDING_KEY)
    if not isinstance(store, PendingStore):
        store = PendingStore()
        context.bot_data[PENDING_KEY] = store
    return store


class RunningDiscoveries:
    """The /addfeed discoveries running now, by (operator's user id, URL)."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[int, str], asyncio.Task[None]] = {}

    def running(self, user_id: int, url: str) -> bool:
        return (user_id, url) in self._tasks

    def track(self, user_id: int, url: str, task: asyncio.Task[None]) -> None:
        """``task`` looks up ``url`` for ``user_id`` until it is done, failed or not."""
        key = (user_id, url)
        self._tasks[key] = task
        task.add_done_callback(lambda _: self._tasks.pop(key, None))

    async def settled(self) -> None:
        """Return once no discovery runs (and each one's answer, or its
        error handler, is done)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))


def running_discoveries(bot_data: dict[Any, Any]) -> RunningDiscoveries:
    """The one registry of this application (``application.bot_data``)."""
    found = bot_data.get(DISCOVERIES_KEY)
    if not isinstance(found, RunningDiscoveries):
        found = RunningDiscoveries()
        bot_data[DISCOVERIES_KEY] = found
    return found
