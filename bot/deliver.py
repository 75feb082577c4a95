"""Deliver stage: drains the outbox to Telegram, paced below the flood limits.

Pacing happens *before* a send, so Telegram's limits are not hit in the first
place: one global slot every 1/``messages_per_second`` seconds (Telegram
allows about 30 messages/s per bot), and per chat at most one card every
``private_chat_interval`` (about 1/s) or ``group_chat_interval`` for groups
and channels (20 per minute). A chat's cards go out oldest first, one at a
time.

Delivery is at-least-once: a row is marked sent only after Telegram accepted
the message, so a crash between the two re-sends just the cards that were in
flight (at most one per chat). What each Telegram error means for the row:

- RetryAfter: pause all sending for the given time, then retry; nothing dropped.
- Forbidden (blocked, kicked, not a member): deactivate the chat, drop its cards.
- ChatMigrated: move the chat (and its cards) to the new id and send again.
- BadRequest "chat not found": deactivate the chat.
- BadRequest about entities or buttons: re-send the card as plain text.
- other BadRequest: the row fails with the reason (retrying cannot help).
- Telegram unreachable (connection errors, timeouts, 502): pause everything
  with backoff and retry; the card keeps its attempts, so an outage of any
  length loses nothing.
- 5xx answered by Telegram: retry with backoff; failed after max_attempts.
- InvalidToken: stop sending; every card stays pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from bot.clock import Clock
from bot.config import DeliveryConfig
from bot.render import Card, render_card
from bot.storage import PendingDelivery, Storage

log = logging.getLogger(__name__)

SendMessage = Callable[..., Awaitable[Message]]
_BATCH = 100
_IDLE_WAIT = 5.0
_MAX_RETRY_DELAY = 600.0
_MAX_OUTAGE_PAUSE = 60.0


def keyboard(card: Card) -> InlineKeyboardMarkup | None:
    if not card.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, url=b.url) for b in card.buttons]])


def preview(card: Card) -> LinkPreviewOptions:
    return LinkPreviewOptions(url=card.preview_url, prefer_large_media=True)


async def send_card(send_message: SendMessage, chat_id: int, card: Card) -> Message:
    """Send a card as HTML; if Telegram rejects the markup or the buttons,
    send the same card as plain text without buttons."""
    try:
        return await send_message(
            chat_id=chat_id,
            text=card.html,
            parse_mode=ParseMode.HTML,
            link_preview_options=preview(card),
            reply_markup=keyboard(card),
        )
    except BadRequest as error:
        reason = error.message.lower()
        if "entit" not in reason and "button" not in reason and "url" not in reason:
            raise
        log.warning("deliver: chat %s rejected a card (%s); sending plain text", chat_id, error)
        return await send_message(
            chat_id=chat_id,
            text=card.plain,
            parse_mode=None,
            link_preview_options=preview(card),
        )


@dataclass
class _Pacer:
    """Global spacing plus per-chat next-allowed times (monotonic seconds)."""

    interval: float
    next_slot: float = 0.0
    chat_ready_at: dict[int, float] = field(default_factory=dict)

    async def wait_slot(self, interrupt: asyncio.Event) -> None:
        """Sleep until the next global slot, or until ``interrupt`` is set:
        stopping must not wait out a minute-long flood-control pause."""
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupt.wait(), slot - now)

    def pause(self, seconds: float) -> None:
        self.next_slot = max(self.next_slot, time.monotonic() + seconds)

    def busy_chats(self) -> set[int]:
        now = time.monotonic()
        for chat_id in [c for c, t in self.chat_ready_at.items() if t <= now]:
            del self.chat_ready_at[chat_id]
        return set(self.chat_ready_at)

    def next_ready(self) -> float | None:
        return min(self.chat_ready_at.values(), default=None)


class Sender:
    def __init__(
        self,
        storage: Storage,
        send_message: SendMessage,
        config: DeliveryConfig,
        clock: Clock,
        category_titles: Mapping[str, str],
    ) -> None:
        self._storage = storage
        self._send_message = send_message
        self._config = config
        self._clock = clock
        self._categories = dict(category_titles)
        self._pacer = _Pacer(1.0 / config.messages_per_second)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self.sent = 0
        self.failed = 0
        # Set when Telegram rejects the token: the bot is alive but useless,
        # and the health check must say so.
        self.token_rejected = False
        # Consecutive sends that could not reach Telegram (sets the pause),
        # and when the last such pause began (monotonic seconds).
        self._network_errors = 0
        self._outage_paused_at = float("-inf")

    def wake(self) -> None:
        """New cards are waiting (called after a polling round stored some)."""
        self._wake.set()

    async def run(self) -> None:
        """Drain the outbox until ``stop()``; survives any single failure."""
        try:
            await self._storage.drop_stale_deliveries(
                self._clock.now() - timedelta(seconds=self._config.max_age)
            )
        except Exception:
            log.exception("deliver: could not drop stale cards")
        while not self._stopping.is_set():
            try:
                started = await self._dispatch_batch()
            except InvalidToken:
                log.error("deliver: Telegram rejected the bot token; delivery stopped")
                self.token_rejected = True
                return
            except Exception:
                log.exception("deliver: dispatch failed; retrying shortly")
                started = 0
            if started == 0:
                await self._idle()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking new rows; let in-flight sends finish (or leave them pending)."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        while self._in_flight:
            tasks = list(self._in_flight.values())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for task in tasks:
                    task.cancel()
                break
            await asyncio.wait(tasks, timeout=remaining)

    async def drain(self, within: float = 60.0) -> None:
        """Send until no card is pending (CLI, benchmarks and tests); cards
        waiting for a retry are waited for, up to ``within`` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await self._dispatch_batch():
                continue
            if self._in_flight:
                await asyncio.wait(list(self._in_flight.values()), timeout=0.5)
                continue
            if not (await self._storage.delivery_counts()).get("pending"):
                return
            ready = self._pacer.next_ready()
            await asyncio.sleep(min(0.5, max(0.01, (ready or 0) - time.monotonic())))

    async def _idle(self) -> None:
        """Sleep until a chat's pacing ends, a retry falls due, or new cards arrive."""
        wait = _IDLE_WAIT
        ready = self._pacer.next_ready()
        if ready is not None:
            wait = min(wait, ready - time.monotonic())
        due = await self._storage.next_delivery_time()
        if due is not None and due > self._clock.now():
            # Due rows that were not started belong to paced chats (see above).
            wait = min(wait, (due - self._clock.now()).total_seconds())
        wait = max(0.01, wait)
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=min(wait, _IDLE_WAIT))
        except TimeoutError:
            pass

    async def _dispatch_batch(self) -> int:
        busy = self._pacer.busy_chats() | set(self._in_flight)
        rows = await self._storage.pending_deliveries(self._clock.now(), _BATCH, busy)
        started = 0
        for row in rows:
            if self._stopping.is_set():
                break
            if row.chat_id in self._in_flight:
                continue
            await self._pacer.wait_slot(self._stopping)
            if self._stopping.is_set():
                # stop() came during the wait. A send started now would not
                # be waited for: the shutdown that follows closes the HTTP
                # client under it, after Telegram may have accepted the card.
                break
            spacing = (
                self._config.private_chat_interval
                if row.chat_type == "private"
                else self._config.group_chat_interval
            )
            self._pacer.chat_ready_at[row.chat_id] = time.monotonic() + spacing
            task = asyncio.create_task(self._deliver(row))
            self._in_flight[row.chat_id] = task
            task.add_done_callback(self._forget_task)
            started += 1
        return started

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for chat_id, running in list(self._in_flight.items()):
            if running is task:
                del self._in_flight[chat_id]

    async def _deliver(self, row: PendingDelivery) -> None:
        card = render_card(row.article, self._categories)
        now = self._clock.now()
        started = time.monotonic()
        try:
            message = await send_card(self._send_message, row.chat_id, card)
        except RetryAfter as error:
            seconds = _retry_seconds(error)
            log.warning("deliver: flood control, pausing %.1fs", seconds)
            self._pacer.pause(seconds)
            await self._storage.mark_retry(
                row.id, now + timedelta(seconds=seconds), "flood control", count_attempt=False
            )
        except Forbidden as error:
            dropped = await self._storage.deactivate_chat(row.chat_id, error.message, now)
            log.info(
                "deliver: chat %s deactivated (%s), %d cards dropped", row.chat_id, error, dropped
            )
        except ChatMigrated as error:
            log.info("deliver: chat %s migrated to %s", row.chat_id, error.new_chat_id)
            await self._storage.migrate_chat(row.chat_id, error.new_chat_id, now)
            self.wake()
        except BadRequest as error:
            if "chat not found" in error.message.lower():
                await self._storage.deactivate_chat(row.chat_id, error.message, now)
            else:
                self.failed += 1
                log.warning("deliver: card %d to %s failed: %s", row.id, row.chat_id, error)
                await self._storage.mark_failed(row.id, error.message)
        except InvalidToken:
            # Nothing can be sent with a revoked token: keep every card pending
            # for when the operator fixes it, and stop hammering the API.
            log.error("deliver: Telegram rejected the bot token; delivery stopped")
            self.token_rejected = True
            self._stopping.set()
        except (TimedOut, NetworkError, TelegramError) as error:
            await self._network_trouble(row, error, started)
        except Exception as error:  # a bug: keep the row, keep the sender alive
            log.exception("deliver: unexpected error sending card %d", row.id)
            await self._retry_later(row, f"internal: {type(error).__name__}")
        else:
            self.sent += 1
            self._network_errors = 0
            await self._storage.mark_sent(row.id, message.message_id, self._clock.now())

    async def _network_trouble(
        self, row: PendingDelivery, error: TelegramError, started: float
    ) -> None:
        """While Telegram cannot be reached at all (connection errors, timeouts,
        502 from its front end) every send pauses and the card keeps its
        attempts, so an outage of any length loses nothing. An error Telegram
        itself answered (500...) counts against the card, up to max_attempts."""
        text = str(error)
        unreachable = (
            isinstance(error, TimedOut)
            or text.startswith("httpx.")  # PTB's wording for transport errors
            or "bad gateway" in text.lower()
        )
        if not unreachable:
            await self._retry_later(row, text)
            return
        if started < self._outage_paused_at:
            # Already in flight when the last pause began: the same outage
            # seen again, not a new failure. Counting every one would turn N
            # concurrent timeouts into N doublings: a one-second hiccup with
            # a few sends under way would stall all delivery for a minute.
            pause = max(0.0, self._pacer.next_slot - time.monotonic())
        else:
            self._network_errors += 1
            self._outage_paused_at = time.monotonic()
            pause = min(2.0 ** min(self._network_errors, 10), _MAX_OUTAGE_PAUSE)
            self._pacer.pause(pause)
            log.warning("deliver: Telegram unreachable (%s); retrying in %.0fs", text, pause)
        await self._storage.mark_retry(
            row.id, self._clock.now() + timedelta(seconds=pause), text, count_attempt=False
        )

    async def _retry_later(self, row: PendingDelivery, reason: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self._config.max_attempts:
            self.failed += 1
            log.warning("deliver: card %d to %s failed for good: %s", row.id, row.chat_id, reason)
            await self._storage.mark_failed(row.id, reason)
            return
        delay = min(2.0**attempts, _MAX_RETRY_DELAY)
        await self._storage.mark_retry(row.id, self._clock.now() + timedelta(seconds=delay), reason)


def _retry_seconds(error: RetryAfter) -> float:
    # PTB 22 warns that retry_after becomes a timedelta in a future major
    # version; accept both and keep the warning out of the logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: float | timedelta = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
