"""Telling the operators (``[telegram] admins``) about the bot's health, by
private message, once per change of state and never once per failure.

What is told, and what keeps it from being told twice:

- A feed failing ``[alerts] failures`` times in a row, a feed disabled by
  410 Gone, and the first success of a feed that had been reported failing.
  Derived from the feed's row: the poller that records a failure knows the
  count before it (``FeedOutcome.errors_before``), and only the fetch that
  takes the count exactly to the threshold reports it; a success reports a
  recovery when the count before it had reached the threshold. The count is
  in the database and a claimed feed is fetched by one poller at a time, so
  neither a restart nor a second process repeats or loses an alert, and no
  state of its own is kept.
- A chat suspended (the bot lost the right to post) or resumed. The set of
  suspended chats the operators were told about is kept in the ``state``
  table and changed by compare-and-swap: of two processes seeing the same
  change, the one whose swap wins tells. A restart compares against the
  stored set, so it neither repeats nor misses a change made meanwhile.
- Storage errors: the sender's "cannot record" state beginning, once per
  spell like its log line. Kept in memory: while storage fails, nothing
  could be written to say it was told.

Several changes seen together go out as one message. Sending never raises:
a failure to notify is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from bot.errors import StorageError
from bot.render import escape
from bot.storage.ops import SqlOps
from bot.text import cut_at_word

if TYPE_CHECKING:
    from bot.models import FeedHealth
    from bot.pipeline import FeedOutcome
    from bot.storage import Storage
    from bot.storage.chats import SuspendedChat

log = logging.getLogger(__name__)

SendPrivate = Callable[[int, str], Awaitable[object]]

# The state key holding the suspended chats the operators were told about.
SUSPENDED_CHATS_KEY = "alerts.suspended_chats"
MESSAGE_LIMIT = 4096  # Telegram's limit on a message's text
_ROOM = 3900  # what the lines may take, leaving room for the closing line
_ERROR_LIMIT = 300
_TITLE_LIMIT = 100


async def tell_operators(admins: Sequence[int], text: str, send: SendPrivate, what: str) -> None:
    """Send ``text`` to every operator; a failure is logged, never raised
    (the operators are told about trouble: their message must not add to it)."""
    for admin in admins:
        try:
            await send(admin, text)
        except Exception as failure:
            log.warning("alerts: could not tell operator %s about %s: %s", admin, what, failure)


# -- feeds ---------------------------------------------------------------------

FeedAlertKind = Literal["failing", "disabled", "recovered"]


@dataclass(frozen=True, slots=True)
class FeedAlert:
    kind: FeedAlertKind
    url: str
    failures: int  # in a row, this fetch included (0 for a recovery)
    error: str | None


def feed_alerts(outcomes: Iterable[FeedOutcome], threshold: int) -> list[FeedAlert]:
    """What a round's outcomes tell the operators (see the module's text)."""
    alerts = []
    for outcome in outcomes:
        if outcome.status == "failed":
            failures = outcome.errors_before + 1
            if outcome.disabled:
                alerts.append(FeedAlert("disabled", outcome.url, failures, outcome.error))
            elif failures == threshold:
                alerts.append(FeedAlert("failing", outcome.url, failures, outcome.error))
        elif outcome.errors_before >= threshold:
            alerts.append(FeedAlert("recovered", outcome.url, 0, None))
    return alerts


def _feed_line(alert: FeedAlert) -> str:
    url = escape(cut_at_word(alert.url, 200))
    if alert.kind == "recovered":
        return f"✅ {url} works again"
    error = escape(cut_at_word(alert.error or "unknown error", _ERROR_LIMIT))
    if alert.kind == "disabled":
        return f"⛔ {url} is gone (disabled until resumed): <code>{error}</code>"
    return f"⚠️ {url} failed {alert.failures} times in a row: <code>{error}</code>"


def feed_alert_text(alerts: Sequence[FeedAlert]) -> str:
    return _message("<b>newsbot: feeds</b>", [_feed_line(a) for a in alerts])


# -- chats ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatChanges:
    suspended: list[SuspendedChat]  # newly suspended
    cleared: list[int]  # told as suspended before, suspended no longer

    def __bool__(self) -> bool:
        return bool(self.suspended or self.cleared)


def chat_changes(told: frozenset[int], suspended_now: Sequence[SuspendedChat]) -> ChatChanges:
    now_ids = {c.id for c in suspended_now}
    return ChatChanges(
        [c for c in suspended_now if c.id not in told],
        sorted(told - now_ids),
    )


def encode_chat_ids(ids: Iterable[int]) -> str:
    """One spelling per set, so that compare-and-swap compares sets."""
    return json.dumps(sorted(set(ids)))


def decode_chat_ids(value: str | None) -> frozenset[int] | None:
    """None when absent or unreadable (then the current state is the baseline)."""
    if value is None:
        return None
    try:
        ids = json.loads(value)
    except ValueError:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        return None
    return frozenset(ids)


def _chat_name(chat_id: int, chat_type: str, title: str | None, username: str | None) -> str:
    name = title or (f"@{username}" if username else None) or str(chat_id)
    return f"{escape(cut_at_word(name, _TITLE_LIMIT))} ({escape(chat_type)} {chat_id})"


def chat_alert_text(suspended: Sequence[SuspendedChat], resumed: Sequence[ChatSummary]) -> str:
    lines = [
        f"⏸ {_chat_name(c.id, c.type, c.title, c.username)} no longer lets the bot post: "
        f"<code>{escape(cut_at_word(c.reason, _ERROR_LIMIT))}</code>; {c.pending} cards wait"
        for c in suspended
    ]
    lines += [
        f"▶️ {_chat_name(c.id, c.type, c.title, c.username)} lets the bot post again"
        for c in resumed
    ]
    return _message("<b>newsbot: chats</b>", lines)


@dataclass(frozen=True, slots=True)
class ChatSummary:
    id: int
    type: str
    title: str | None
    username: str | None


# -- storage -------------------------------------------------------------------


class StorageSpell:
    """The sender's "cannot record" state, seen from outside: ``began`` is
    True once per spell of trouble, on the first look that finds it."""

    def __init__(self) -> None:
        self._in_trouble = False

    def began(self, trouble: bool) -> bool:
        started = trouble and not self._in_trouble
        self._in_trouble = trouble
        return started


STORAGE_ALERT = (
    "<b>newsbot: storage errors</b>\n"
    "The sender cannot record what it sent, so no card goes out until storage "
    "works again. The error is in the log. Told once per spell."
)


# -- the daily report ----------------------------------------------------------


def daily_report_text(
    feeds: Sequence[FeedHealth],
    cards: dict[str, int],
    suspended: Sequence[SuspendedChat],
    now: datetime,
) -> str:
    ok = [f for f in feeds if not f.disabled and f.error_count == 0]
    failing = [f for f in feeds if not f.disabled and f.error_count > 0]
    disabled = [f for f in feeds if f.disabled]
    lines = [
        f"Feeds: {len(ok)} ok, {len(failing)} failing, {len(disabled)} disabled",
        f"Cards in the last 24 h: {cards.get('sent', 0)} sent, {cards.get('failed', 0)} failed",
        f"Suspended chats: {len(suspended)}",
    ]
    for feed in failing:
        name = escape(cut_at_word(feed.title or feed.url, _TITLE_LIMIT))
        error = escape(cut_at_word(feed.last_error or "", _ERROR_LIMIT))
        lines.append(f"⚠️ {name}: {feed.error_count} failures, <code>{error}</code>")
    for feed in disabled:
        lines.append(f"⛔ {escape(cut_at_word(feed.title or feed.url, _TITLE_LIMIT))}: disabled")
    for chat in suspended:
        lines.append(f"⏸ {_chat_name(chat.id, chat.type, chat.title, chat.username)}")
    return _message(f"<b>newsbot: daily report</b> ({now:%d %b %Y, %H:%M} UTC)", lines)


def _message(title: str, lines: Sequence[str]) -> str:
    """Title and lines, as many lines as fit well within Telegram's limit;
    every line is whole (an entity is never cut in half)."""
    kept: list[str] = []
    size = len(title)
    for line in lines:
        if size + 1 + len(line) > _ROOM:
            break
        kept.append(line)
        size += 1 + len(line)
    if len(kept) < len(lines):
        kept.append(f"… and {len(lines) - len(kept)} more (see /health)")
    return "\n".join([title, *kept])


# -- the watch -----------------------------------------------------------------


class OperatorWatch:
    """Compares states before and after (a polling round, a look at the
    chats, at the sender) and tells the operators what changed."""

    def __init__(
        self, admins: Sequence[int], storage: Storage, send: SendPrivate, failures: int
    ) -> None:
        self.admins = list(admins)
        self._storage = storage
        self._send = send
        self._failures = failures
        self._storage_spell = StorageSpell()

    async def _tell(self, text: str, what: str) -> None:
        if self.admins:
            await tell_operators(self.admins, text, self._send, what)

    async def after_round(self, outcomes: Iterable[FeedOutcome]) -> None:
        alerts = feed_alerts(outcomes, self._failures)
        if alerts:
            await self._tell(feed_alert_text(alerts), "feeds")

    async def check_chats(self, now: datetime) -> None:
        """Tell about chats suspended or resumed since the last look (by any
        process). The first look ever takes the current state as known."""
        ops = SqlOps(self._storage.db)
        try:
            stored = await self._storage.state.get_state(SUSPENDED_CHATS_KEY)
            suspended_now = await self._storage.chats.suspended_chats()
            told = decode_chat_ids(stored)
            current = encode_chat_ids(c.id for c in suspended_now)
            if told is None:
                await ops.replace_state(SUSPENDED_CHATS_KEY, stored, current, now)
                return
            changes = chat_changes(told, suspended_now)
            if not changes:
                return
            resumed = []
            for chat_id in changes.cleared:
                chat = await self._storage.chats.get_chat(chat_id)
                # Gone from the set because it left or blocked the bot is
                # not "resumed": its cards were dropped.
                if chat is not None and chat.active:
                    resumed.append(ChatSummary(chat.id, chat.type, chat.title, chat.username))
            if not await ops.replace_state(SUSPENDED_CHATS_KEY, stored, current, now):
                return  # another process saw the same change first and tells
        except StorageError as error:
            log.warning("alerts: could not look at the suspended chats: %s", error)
            return
        if changes.suspended or resumed:
            await self._tell(chat_alert_text(changes.suspended, resumed), "chats")

    async def check_storage(self, trouble: bool) -> None:
        if self._storage_spell.began(trouble):
            await self._tell(STORAGE_ALERT, "storage errors")

    async def daily_report(self, now: datetime) -> None:
        try:
            feeds = await self._storage.feeds.feed_health()
            cards = await SqlOps(self._storage.db).cards_finished_since(now - timedelta(days=1))
            suspended = await self._storage.chats.suspended_chats()
        except StorageError as error:
            log.warning("alerts: no daily report, storage failed: %s", error)
            return
        await self._tell(daily_report_text(feeds, cards, suspended, now), "the daily report")
