"""What the operators' feed commands keep in this process's memory: what a
button stands for when it is too long for its 64 bytes (discovered feeds, an
OPML document), behind a random token for ``PENDING_SECONDS``. A press after
that, after a restart, or with forged data finds nothing: "expired".
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from telegram.ext import ContextTypes

from bot.discover import FoundFeed
from bot.opml import OpmlDocument

PENDING_SECONDS = 30 * 60.0
MAX_PENDING = 200
PENDING_KEY = "feed_pending"  # in bot_data


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
