"""Deliver stage: drains the outbox to Telegram, paced below the flood limits.

Pacing happens *before* a send, so Telegram's limits are not hit in the first
place: one global slot every 1/``messages_per_second`` seconds (Telegram
allows about 30 messages/s per bot), and per chat at most one card every
``private_chat_interval`` (about 1/s) or ``group_chat_interval`` for groups
and channels (20 per minute). A chat's cards go out oldest first, one at a
time. A card still pending ``max_age`` after it was queued is dropped when it
comes up, not sent late.

Delivery is at-least-once: a row is marked sent only after Telegram accepted
the message, so a crash between the two re-sends just the cards that were in
flight (at most one per chat). What each Telegram error means for the row:

- RetryAfter: pause that chat for the given time and retry; all sending
  pauses only when several chats are told to wait in a row (the bot's
  overall limit, not one busy chat). Nothing is dropped.
- A card for a forum topic that was closed or deleted ("message thread not
  found", TOPIC_CLOSED): the topic's categories fall back to General, the
  card is sent there at once, and the chat is told once.
- Lost the right to post (not an admin any more, no "Post messages" right,
  a closed topic the card was not sent to by its category): suspend the
  chat; its cards wait until Telegram reports the right back (a
  ``my_chat_member`` update).
- Forbidden (blocked, kicked, not a member): deactivate the chat, drop its cards.
- ChatMigrated: move the chat (and its cards) to the new id and send again.
- BadRequest "chat not found": deactivate the chat.
- BadRequest about entities: re-send the card as plain text, buttons kept;
  about the buttons: plain text with the link written out.
- other BadRequest: the row fails with the reason (retrying cannot help).
- Telegram unreachable (connection errors, timeouts, 502, 503, 504): pause
  everything with backoff and retry; the card keeps its attempts, so an
  outage of any length loses nothing.
- other 5xx answered by Telegram: retry with backoff; failed after max_attempts.
- InvalidToken: stop sending; every card stays pending.

Sent cards follow corrections of their story (``bot.edits`` says which and
when): due edits are claimed like cards and go through the same pacing, so
an edit takes a card's place in the global and the per-chat budget. What an
edit's error means is what it means for a send, for the chat (flood control,
lost rights, blocked, migrated); for the edit itself, a message that was
deleted or can no longer be edited drops it quietly, and "message is not
modified" means it is done.

Chats shape their delivery (``bot/digest.py``): a card claimed for a chat
in digest mode, in its quiet hours or at ``max_cards_per_hour`` is held
instead of sent, with the chat's other waiting cards; every few seconds
(and at each new minute) the sender gathers what is due into digests or
releases it (``bot/digest_delivery.py``). A digest is claimed through its
oldest card and sent as one message (several only beyond 4096 characters)
with the same pacing and outcomes as a card; its cards become sent together.

Recording an outcome can fail too (disk full, a lock held past the busy
timeout). The outcome is then kept and written again with backoff while the
chat's next card waits, and no new card is sent until storage works again:
a card Telegram accepted is never sent twice because of our own trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBDeprecationWarning

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.clock import Clock
from bot.config import DeliveryConfig
from bot.delivery_events import DeliveryEvents
from bot.digest_delivery import digest_messages, hold_decisions, release_due
from bot.edits import (
    CardKind,
    edit_retry_delay,
    edit_too_late,
    message_gone,
    next_edit_after,
    not_modified,
)
from bot.errors import StorageError
from bot.i18n import DEFAULT_LANGUAGE, translator
from bot.models import Article
from bot.reload import CurrentConfig
from bot.render import CAPTION_LIMIT, Card, escape, render_card
from bot.roles import worker_name
from bot.storage import CardEdit, PendingDelivery, Storage
from bot.telegram.links import article_link
from bot.text import cut_html
from bot.timezones import zone

log = logging.getLogger(__name__)

SendMessage = Callable[..., Awaitable[Message]]
SendPhoto = Callable[..., Awaitable[Message]]
EditMessage = Callable[..., Awaitable[Message | bool]]
_BATCH = 100
_IDLE_WAIT = 5.0
_MAX_RETRY_DELAY = 600.0
_MAX_OUTAGE_PAUSE = 60.0
_MAX_STORAGE_RETRY = 30.0
# A claimed card returns to the queue if its sender has not finished with it
# by then (it died): longer than any send with its retries of the outcome.
CLAIM_LEASE = 300.0
# This many different chats told to wait in a row, with no success between
# them, means the bot's overall rate was exceeded: then everything pauses.
_GLOBAL_FLOOD_CHATS = 3
# Telegram's words for "the bot may not post here (any more)", whichever of
# 400 or 403 they come with: the chat is suspended, not given up on.
_LOST_RIGHTS = (
    "need administrator rights",
    "not enough rights",
    "have no rights to send",
    "chat_write_forbidden",
    "topic_closed",
)
# Telegram's words for a forum topic that cannot take cards any more.
_TOPIC_GONE = ("message thread not found", "topic_closed", "topic_deleted")
# Telegram's words for an image it could not fetch or use.
_PHOTO_REFUSED = (
    "http url content",
    "wrong file identifier",
    "web page content",
    "photo_invalid",
    "image_process_failed",
    "wrong remote file",
    "file must be non-empty",
)
# Held cards due for release are looked for at least this often (and at
# each new minute of the clock, when digest times and quiet hours end).
_RELEASE_CHECK = timedelta(seconds=10)
# Telegram's front end answering for a Telegram that is not there.
_UNREACHABLE = ("bad gateway", "service unavailable", "gateway timeout", "(502)", "(503)", "(504)")


def keyboard(card: Card) -> InlineKeyboardMarkup | None:
    if not card.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, url=b.url) for b in card.buttons]])


def preview(card: Card) -> LinkPreviewOptions:
    if not card.link_preview:
        return LinkPreviewOptions(is_disabled=True)
    return LinkPreviewOptions(
        is_disabled=False,
        url=card.preview_url,
        prefer_large_media=True,
        show_above_text=card.preview_above_text,
    )


async def send_card(
    send_message: SendMessage,
    chat_id: int,
    card: Card,
    thread_id: int | None = None,
    *,
    send_photo: SendPhoto | None = None,
) -> Message:
    """Send a card as HTML (into forum topic ``thread_id``; None: General,
    sent without a thread id since Telegram refuses General's): as a photo
    with the card as its caption when the card has a photo and
    ``send_photo`` is given, else as text. If Telegram cannot use the photo
    (it could not fetch the image, or refused the caption or buttons), the
    text card goes instead. If Telegram rejects the markup, send the same
    card as plain text with its buttons; if it rejects the buttons, as
    plain text with the article's link written out, so a card never
    arrives without a way to the story."""
    options: dict[str, Any] = {"disable_notification": True} if card.silent else {}
    if thread_id is not None:
        options["message_thread_id"] = thread_id
    if options:
        send_message = functools.partial(send_message, **options)
    if card.photo_url and send_photo is not None:
        try:
            return await send_photo(
                chat_id=chat_id,
                photo=card.photo_url,
                caption=card.caption,
                parse_mode=ParseMode.HTML,
                reply_markup=keyboard(card),
                **options,
            )
        except BadRequest as error:
            if not (_rejects_photo(error) or _rejects_markup(error) or _rejects_buttons(error)):
                raise
            log.info("deliver: chat %s got no photo card (%s); sending text", chat_id, error)
    try:
        return await send_message(
            chat_id=chat_id,
            text=card.html,
            parse_mode=ParseMode.HTML,
            link_preview_options=preview(card),
            reply_markup=keyboard(card),
        )
    except BadRequest as error:
        if not _rejects_buttons(error) and not _rejects_markup(error):
            raise
        log.warning("deliver: chat %s rejected a card (%s); sending plain text", chat_id, error)
        markup = None if _rejects_buttons(error) else keyboard(card)
    try:
        return await send_message(
            chat_id=chat_id,
            text=card.plain,
            parse_mode=None,
            link_preview_options=preview(card),
            reply_markup=markup,
        )
    except BadRequest as error:
        if markup is None or not _rejects_buttons(error):
            raise
        return await send_message(
            chat_id=chat_id, text=card.plain, parse_mode=None, link_preview_options=preview(card)
        )


def _rejects_photo(error: BadRequest) -> bool:
    """Telegram could not use the image behind the URL (unreachable, not an
    image, too big, odd dimensions)."""
    reason = error.message.lower()
    return any(words in reason for words in _PHOTO_REFUSED)


async def edit_card(
    edit: EditMessage, kind: CardKind, chat_id: int, message_id: int, card: Card
) -> None:
    """Make sent card ``message_id`` show ``card``: its text, or its caption
    for a photo card (``edit`` is editMessageText or editMessageCaption to
    match). Rejected markup or buttons fall back as in ``send_card``."""
    content = "caption" if kind == "photo" else "text"
    # A photo card's caption is the card cut to Telegram's caption limit,
    # whatever the chat's photo option says now.
    shown = card.html
    if kind == "photo":
        shown = card.caption or cut_html(card.html, CAPTION_LIMIT)
    # A caption has no link preview of its own: the photo is the preview.
    extra: dict[str, Any] = {} if kind == "photo" else {"link_preview_options": preview(card)}
    try:
        await edit(
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(card),
            **{content: shown},
            **extra,
        )
        return
    except BadRequest as error:
        if not _rejects_buttons(error) and not _rejects_markup(error):
            raise
        log.warning("deliver: chat %s rejected an edited card (%s); plain text", chat_id, error)
        markup = None if _rejects_buttons(error) else keyboard(card)
    await edit(
        chat_id=chat_id,
        message_id=message_id,
        parse_mode=None,
        reply_markup=markup,
        **{content: card.plain},
        **extra,
    )


def _rejects_markup(error: BadRequest) -> bool:
    return "entit" in error.message.lower()


def _rejects_buttons(error: BadRequest) -> bool:
    reason = error.message.lower()
    return "button" in reason or "url" in reason or "reply markup" in reason


def lost_rights(error: TelegramError) -> bool:
    """Telegram refused a send because the bot may not post there."""
    reason = error.message.lower()
    return any(words in reason for words in _LOST_RIGHTS)


def topic_gone(error: TelegramError) -> bool:
    """Telegram refused a send into a forum topic that was closed or deleted."""
    reason = error.message.lower()
    return any(words in reason for words in _TOPIC_GONE)


def telegram_unreachable(error: TelegramError) -> bool:
    """Telegram could not be reached at all (as opposed to answering no)."""
    text = str(error)
    return (
        isinstance(error, TimedOut)
        or text.startswith("httpx.")  # PTB's wording for transport errors
        or any(words in text.lower() for words in _UNREACHABLE)
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
        *,
        bot_username: str | None = None,
        current: CurrentConfig | None = None,
        send_photo: SendPhoto | None = None,
        default_timezone: str = "UTC",
        edit_message_text: EditMessage | None = None,
        edit_message_caption: EditMessage | None = None,
        default_language: str = DEFAULT_LANGUAGE,
    ) -> None:
        """With ``current`` the sender follows reloads: every card reads the
        delivery settings and category titles held there then (the pacing
        of ``messages_per_second`` is set once, at start)."""
        self._current = current
        self._storage = storage
        # Photo cards need sendPhoto; without it every card goes as text.
        self._send_photo = send_photo
        self._default_timezone = default_timezone
        # How each kind of sent card is edited; without them no card is.
        self._edit_methods: dict[CardKind, EditMessage] = {}
        if edit_message_text is not None:
            self._edit_methods["text"] = edit_message_text
        if edit_message_caption is not None:
            self._edit_methods["photo"] = edit_message_caption
        self.edited = 0
        self._release_checked: datetime | None = None
        # A card's own words are in its chat's language; this for chats that
        # chose none ([telegram] default_language).
        self._default_language = default_language
        # Known once getMe answered: the Share button then links back here.
        self._bot_username = bot_username
        self._send_message = send_message
        self._delivery = config
        self._clock = clock
        self._titles = dict(category_titles)
        self._pacer = _Pacer(1.0 / config.messages_per_second)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # Names this sender on the rows it claims (several may share a database).
        self.worker = worker_name("sender")
        self.sent = 0
        self.failed = 0
        self.events = DeliveryEvents()  # replaced by the metrics when they are on
        # Set when Telegram rejects the token: the bot is alive but useless,
        # and the health check must say so.
        self.token_rejected = False
        # Set while an outcome cannot be written (see _record): no new card
        # goes out, and the health check fails.
        self.storage_trouble = False
        self._storage_trouble_since = 0.0
        # Outcomes being written again right now: while any waits, storage
        # has not recovered, whatever a read in between says.
        self._failing_writes = 0
        # Consecutive sends that could not reach Telegram (sets the pause),
        # and when the last such pause began (monotonic seconds).
        self._network_errors = 0
        self._outage_paused_at = float("-inf")
        # Chats told to wait since the last successful send.
        self._flooded_chats: set[int] = set()

    @property
    def _config(self) -> DeliveryConfig:
        return self._current.config.delivery if self._current is not None else self._delivery

    @property
    def _language_default(self) -> str:
        """The language of chats that chose none, as the config says now."""
        if self._current is None:
            return self._default_language
        return self._current.config.telegram.default_language

    @property
    def _zone_default(self) -> str:
        """The zone of chats that chose none, as the config says now."""
        if self._current is None:
            return self._default_timezone
        return self._current.config.telegram.default_timezone

    @property
    def _categories(self) -> Mapping[str, str]:
        if self._current is None:
            return self._titles
        return {c.id: c.title for c in self._current.config.categories}

    @property
    def healthy(self) -> bool:
        return not self.token_rejected and not self.storage_trouble

    def wake(self) -> None:
        """New cards are waiting (called after a polling round stored some)."""
        self._wake.set()

    def resume(self) -> None:
        """Make a stopped sender ready to run again: it lost the active
        sender's role and stands by to win it back."""
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Drain the outbox until ``stop()``; survives any single failure."""
        try:
            await self._storage.outbox.drop_stale_deliveries(
                self._clock.now() - timedelta(seconds=self._config.max_age)
            )
        except Exception:
            log.exception("deliver: could not drop stale cards")
        while not self._stopping.is_set():
            # Cleared before looking, never after: a wake() that comes while
            # the outbox is read (or while _idle asks when the next card is
            # due) must end the idle wait that follows, not be lost in it.
            self._wake.clear()
            try:
                started = await self._dispatch_batch()
            except InvalidToken:
                log.error("deliver: Telegram rejected the bot token; delivery stopped")
                self.token_rejected = True
                return
            except StorageError as error:
                self._storage_failed(error, "read the outbox")
                started = 0
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
            if not await self._storage.outbox.has_pending_deliveries() and not (
                await self._edits_due()
            ):
                return
            ready = self._pacer.next_ready()
            await asyncio.sleep(min(0.5, max(0.01, (ready or 0) - time.monotonic())))

    async def _edits_due(self) -> bool:
        """Is an edit due now (waiting only for its chat's pacing)?"""
        if not self._edit_methods:
            return False
        due = await self._storage.edits.next_edit_time()
        return due is not None and due <= self._clock.now()

    async def _idle(self) -> None:
        """Sleep until a chat's pacing ends, a retry falls due, or new cards arrive."""
        wait = _IDLE_WAIT
        ready = self._pacer.next_ready()
        if ready is not None:
            wait = min(wait, ready - time.monotonic())
        if not self.storage_trouble:
            try:
                due = await self._storage.outbox.next_delivery_time()
                if self._edit_methods:
                    next_edit = await self._storage.edits.next_edit_time()
                    if next_edit is not None and (due is None or next_edit < due):
                        due = next_edit
            except StorageError as error:
                self._storage_failed(error, "read the outbox")
                due = None
            if due is not None and due > self._clock.now():
                # Due rows that were not started belong to paced chats (see above).
                wait = min(wait, (due - self._clock.now()).total_seconds())
        wait = max(0.01, wait)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=min(wait, _IDLE_WAIT))
        except TimeoutError:
            pass

    async def _dispatch_batch(self) -> int:
        if self._failing_writes:
            # Outcomes are waiting to be written: sending more would pile up
            # cards that Telegram accepted and we could not record. (Trouble
            # with a read alone ends with the next read that works, below.)
            return 0
        busy = self._pacer.busy_chats() | set(self._in_flight)
        now = self._clock.now()
        await self._release_held(now)
        rows = await self._storage.outbox.claim_deliveries(
            now, _BATCH, worker=self.worker, lease_seconds=CLAIM_LEASE, exclude_chats=busy
        )
        if not self._failing_writes:
            # A read that works says nothing while an outcome still waits.
            self._storage_recovered()
        try:
            holds = await hold_decisions(
                self._storage,
                rows,
                now,
                default_timezone=self._zone_default,
                cap=self._config.max_cards_per_hour,
            )
        except StorageError:
            # Hand the claims back at once, not when their lease runs out.
            with contextlib.suppress(StorageError):
                await self._storage.outbox.release_deliveries([r.id for r in rows], self.worker)
            raise
        started = 0
        too_old = now - timedelta(seconds=self._config.max_age)
        # How each chat wants its cards, read once for the whole batch.
        try:
            looks = await self._storage.chats.settings_of_chats({row.chat_id for row in rows})
        except StorageError as error:
            # Nothing was sent: the cards go back and are claimed again on
            # the next round (a card rendered without its chat's settings
            # could go to a chat that paused).
            log.warning("deliver: cannot read the chats' settings (%s); retrying", error)
            with contextlib.suppress(StorageError):
                await self._storage.outbox.release_deliveries([r.id for r in rows], self.worker)
            return 0
        unstarted = []
        for row in rows:
            if self._stopping.is_set() or self.storage_trouble or row.chat_id in self._in_flight:
                unstarted.append(row.id)
                continue
            hold = holds.get(row.chat_id) if row.digest_id is None else None
            if hold is not None:
                # Not sent and no pacing slot used: the next batch goes on at once.
                try:
                    await self._storage.outbox.hold_cards(
                        row.chat_id, hold.reason, hold.until, self.worker
                    )
                except StorageError as error:
                    self._storage_failed(error, "hold a card")
                    unstarted.append(row.id)
                    continue
                started += 1
                continue
            if row.created_at < too_old and row.digest_id is None:
                # Checked when a card comes up, not only at start-up: after a
                # long outage in a running bot, week-old news is not news.
                self._start(row, self._drop_stale(row))
                continue
            if looks.get(row.chat_id, DEFAULT_SETTINGS).paused:
                # Queued just before /pause: a paused chat gets nothing.
                self._start(row, self._drop_paused(row))
                continue
            await self._pacer.wait_slot(self._stopping)
            if self._stopping.is_set():
                # stop() came during the wait. A send started now would not
                # be waited for: the shutdown that follows closes the HTTP
                # client under it, after Telegram may have accepted the card.
                unstarted.append(row.id)
                continue
            self._pacer.chat_ready_at[row.chat_id] = time.monotonic() + self._spacing(row.chat_type)
            if row.digest_id is not None:
                self._start(row, self._deliver_digest(row, self._spacing(row.chat_type)))
            else:
                self._start(row, self._deliver(row, looks.get(row.chat_id, DEFAULT_SETTINGS)))
            started += 1
        if unstarted:
            # Claimed but not sent (stopping, or storage trouble): hand them
            # back now rather than when their lease runs out.
            with contextlib.suppress(StorageError):
                await self._storage.outbox.release_deliveries(unstarted, self.worker)
        return started + await self._dispatch_edits()

    async def _dispatch_edits(self) -> int:
        """Start the due edits of sent cards, paced like cards: one per chat
        at a time, each taking a global slot and its chat's spacing."""
        if not self._edit_methods or self.storage_trouble or self._stopping.is_set():
            return 0
        busy = self._pacer.busy_chats() | set(self._in_flight)
        now = self._clock.now()
        rows = await self._storage.edits.claim_edits(
            now, _BATCH, worker=self.worker, lease_seconds=CLAIM_LEASE, exclude_chats=busy
        )
        window = timedelta(seconds=self._config.edit_window)
        started = 0
        unstarted = []
        for row in rows:
            if self._stopping.is_set() or self.storage_trouble or row.chat_id in self._in_flight:
                unstarted.append(row.id)
                continue
            if edit_too_late(row.sent_at, now, window):
                self._start(row, self._drop_edit(row, None, "past its edit window"))
                continue
            if row.kind not in self._edit_methods:
                self._start(row, self._drop_edit(row, None, f"no way to edit a {row.kind} card"))
                continue
            await self._pacer.wait_slot(self._stopping)
            if self._stopping.is_set():
                unstarted.append(row.id)
                continue
            self._pacer.chat_ready_at[row.chat_id] = time.monotonic() + self._spacing(row.chat_type)
            self._start(row, self._edit(row))
            started += 1
        if unstarted:
            with contextlib.suppress(StorageError):
                await self._storage.edits.release_edits(unstarted, self.worker)
        return started

    def _spacing(self, chat_type: str) -> float:
        if chat_type == "private":
            return self._config.private_chat_interval
        return self._config.group_chat_interval

    def _start(self, row: PendingDelivery | CardEdit, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._in_flight[row.chat_id] = task
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for chat_id, running in list(self._in_flight.items()):
            if running is task:
                del self._in_flight[chat_id]

    async def _drop_stale(self, row: PendingDelivery) -> None:
        log.info("deliver: card %d to %s is older than max_age; dropped", row.id, row.chat_id)
        self.events.card_failed("too_old")
        await self._record(
            row, "was dropped", lambda: self._storage.outbox.mark_dropped(row.id, "too old")
        )

    async def _drop_paused(self, row: PendingDelivery) -> None:
        log.info("deliver: card %d to %s dropped, the chat is paused", row.id, row.chat_id)
        await self._record(
            row, "was dropped", lambda: self._storage.outbox.mark_dropped(row.id, "paused")
        )

    def _card(self, article: Article, settings: ChatSettings) -> Card:
        """The card of an article in a chat, the same for its send and its edits."""
        link = article_link(self._bot_username, article.id) if self._bot_username else None
        return render_card(
            article,
            self._categories,
            article_link=link,
            settings=settings,
            t=translator(settings.language or self._language_default),
            zone=zone(settings.timezone, self._zone_default),
        )

    async def _deliver(self, row: PendingDelivery, settings: ChatSettings) -> None:
        card = self._card(row.article, settings)
        started = time.monotonic()
        try:
            message = await send_card(
                self._send_message, row.chat_id, card, row.thread_id, send_photo=self._send_photo
            )
        except Exception as error:
            await self._after_failure(row, error, started)
        else:
            self.sent += 1
            self._network_errors = 0
            self._flooded_chats.clear()
            now = self._clock.now()
            self.events.card_sent(row.created_at, now)
            await self._record(
                row,
                "was sent",
                functools.partial(self._mark_sent, row, message, now),
            )

    async def _mark_sent(self, row: PendingDelivery, message: Message, now: datetime) -> None:
        await self._storage.outbox.mark_sent(row.id, message.message_id, now)
        if message.photo:
            # Telegram edits a photo card's caption, not a text (bot.edits).
            await self._storage.edits.record_card_kind(row.id, "photo")

    async def _edit(self, row: CardEdit) -> None:
        edit = self._edit_methods[row.kind]
        try:
            # Edited as the chat wants its cards now (summary, zone).
            settings = await self._storage.chats.chat_settings(row.chat_id)
            card = self._card(row.article, settings)
            await edit_card(edit, row.kind, row.chat_id, row.message_id, card)
        except Exception as error:
            if isinstance(error, BadRequest) and not_modified(error.message):
                await self._edit_done(row)
            else:
                await self._after_edit_failure(row, error)
        else:
            self.edited += 1
            self._flooded_chats.clear()
            await self._edit_done(row)

    async def _edit_done(self, row: CardEdit) -> None:
        now = self._clock.now()
        again = next_edit_after(now, row.sent_at, timedelta(seconds=self._config.edit_window))
        await self._record(
            row, "was edited", lambda: self._storage.edits.mark_edited(row, now, again)
        )

    async def _drop_edit(self, row: CardEdit, refused: str | None, why: str) -> None:
        log.debug("deliver: edit of card %d in %s dropped: %s", row.id, row.chat_id, why)
        await self._record(
            row, "dropped its edit", lambda: self._storage.edits.drop_edit(row.id, refused)
        )

    async def _after_edit_failure(self, row: CardEdit, error: Exception) -> None:
        """What a failed edit means: for the chat, what a failed send would
        (see ``_chat_refusal``); for the edit, done, dropped or retried."""
        now = self._clock.now()
        if isinstance(error, RetryAfter):
            until = self._pause_for_flood(row.chat_id, _retry_seconds(error))

            async def pause() -> None:
                await self._storage.chats.pause_chat(row.chat_id, until)
                await self._storage.edits.retry_edit(row.id, until, count_attempt=False)

            await self._record(row, "was told to wait", pause)
        elif isinstance(error, BadRequest) and message_gone(error.message):
            # Someone deleted the card, or it is too old to edit: nothing to
            # follow any more, and nothing worth a warning.
            await self._drop_edit(row, error.message, error.message)
        elif (refusal := self._chat_refusal(row.chat_id, error, now)) is not None:
            outcome, write = refusal
            if isinstance(error, ChatMigrated):
                # Message ids do not carry over to the new supergroup.
                await self._record(row, outcome, write)
                await self._drop_edit(row, error.message, "the chat moved")
            elif isinstance(error, TelegramError) and lost_rights(error):
                # The edit stays due, like the chat's cards, for when the right is back.
                async def suspend() -> None:
                    await write()
                    await self._storage.edits.release_edits([row.id], self.worker)

                await self._record(row, outcome, suspend)
            else:  # the bot is out of the chat: nothing there to follow
                await self._record(row, outcome, write)
                await self._drop_edit(row, None, outcome)
        elif isinstance(error, InvalidToken):
            log.error("deliver: Telegram rejected the bot token; delivery stopped")
            self.token_rejected = True
            self._stopping.set()
        elif isinstance(error, BadRequest):
            log.warning("deliver: edit of card %d in %s refused: %s", row.id, row.chat_id, error)
            await self._drop_edit(row, None, error.message)
        else:
            if isinstance(error, TelegramError) and telegram_unreachable(error):
                self._pacer.pause(min(2.0 ** min(self._network_errors + 1, 10), _MAX_OUTAGE_PAUSE))
            elif not isinstance(error, TelegramError):
                log.error("deliver: unexpected error editing card %d", row.id, exc_info=error)
            attempts = row.attempts + 1
            if attempts >= self._config.max_attempts:
                log.warning("deliver: edit of card %d given up: %s", row.id, error)
                await self._drop_edit(row, None, str(error))
                return
            due = now + edit_retry_delay(attempts)
            await self._record(
                row,
                "was put back",
                lambda: self._storage.edits.retry_edit(row.id, due, count_attempt=True),
            )

    async def _release_held(self, now: datetime) -> None:
        """Gather due digests and release held cards, every few seconds and at
        each new minute; trouble here never stops the sending of cards."""
        last = self._release_checked
        if (
            last is not None
            and now - last < _RELEASE_CHECK
            and now.replace(second=0, microsecond=0) <= last.replace(second=0, microsecond=0)
        ):
            return
        self._release_checked = now
        try:
            await release_due(self._storage, now, default_timezone=self._zone_default)
        except StorageError as error:
            log.warning("deliver: could not release held cards (%s); trying again soon", error)
        except Exception:
            log.exception("deliver: releasing held cards failed")

    async def _deliver_digest(self, row: PendingDelivery, spacing: float) -> None:
        """Send the digest ``row``'s claim stands for; its parts (a digest
        beyond 4096 characters) follow each other at the chat's pacing. A
        failure counts for the whole digest: retried, it is sent whole again."""
        assert row.digest_id is not None
        digest_id = row.digest_id
        started = time.monotonic()
        try:
            messages = await digest_messages(
                self._storage,
                row,
                self._categories,
                default_timezone=self._zone_default,
                default_language=self._language_default,
            )
        except StorageError as error:
            self._storage_failed(error, "read a digest")
            with contextlib.suppress(StorageError):
                await self._storage.outbox.release_deliveries([row.id], self.worker)
            return
        if not messages:
            await self._record(
                row, "was empty", lambda: self._storage.outbox.mark_dropped(row.id, "empty digest")
            )
            return
        send = self._send_message
        if row.thread_id is not None:
            send = functools.partial(send, message_thread_id=row.thread_id)
        try:
            message: Message | None = None
            for number, text in enumerate(messages):
                if number:
                    # Each part is a message: the chat's spacing and a global slot.
                    await asyncio.sleep(spacing)
                    await self._pacer.wait_slot(self._stopping)
                    self._pacer.chat_ready_at[row.chat_id] = time.monotonic() + spacing
                message = await send(
                    chat_id=row.chat_id,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
        except Exception as error:
            await self._after_failure(row, error, started)
            return
        assert message is not None
        self.sent += 1
        self._network_errors = 0
        self._flooded_chats.clear()
        done = self._clock.now()
        self.events.card_sent(row.created_at, done)
        message_id = message.message_id
        await self._record(
            row,
            "was sent",
            lambda: self._storage.outbox.mark_digest_sent(digest_id, message_id, done),
        )

    async def _after_failure(self, row: PendingDelivery, error: Exception, started: float) -> None:
        """Decide what a failed send means for the card and its chat, and record it."""
        now = self._clock.now()
        storage = self._storage
        if isinstance(error, RetryAfter):
            await self._flood_control(row, _retry_seconds(error))
        elif row.thread_id is not None and isinstance(error, BadRequest) and topic_gone(error):
            thread_id = row.thread_id
            log.info("deliver: topic %s of chat %s is gone (%s)", thread_id, row.chat_id, error)

            async def fall_back() -> None:
                moved = await storage.chats.topic_gone(row.chat_id, thread_id)
                if moved:
                    await self._tell_topic_gone(row.chat_id, moved)

            await self._record(row, "fell back to General", fall_back)
            self.wake()
        elif (refusal := self._chat_refusal(row.chat_id, error, now)) is not None:
            await self._record(row, *refusal)
        elif isinstance(error, BadRequest):
            self.failed += 1
            self.events.card_failed("rejected")
            log.warning("deliver: card %d to %s failed: %s", row.id, row.chat_id, error)
            await self._record(
                row, "failed", lambda: storage.outbox.mark_failed(row.id, error.message)
            )
        elif isinstance(error, InvalidToken):
            # Nothing can be sent with a revoked token: keep every card pending
            # for when the operator fixes it, and stop hammering the API.
            log.error("deliver: Telegram rejected the bot token; delivery stopped")
            self.token_rejected = True
            self._stopping.set()
        elif isinstance(error, TelegramError):
            await self._network_trouble(row, error, started)
        else:  # a bug: keep the row, keep the sender alive
            log.error("deliver: unexpected error sending card %d", row.id, exc_info=error)
            await self._retry_later(row, f"internal: {type(error).__name__}")

    def _chat_refusal(
        self, chat_id: int, error: Exception, now: datetime
    ) -> tuple[str, Callable[[], Awaitable[object]]] | None:
        """What an error that concerns the chat, not the message, does to the
        chat (the outcome, and the write that records it), the same for a
        send and for an edit; None for any other error."""
        storage = self._storage
        if isinstance(error, TelegramError) and lost_rights(error):
            log.warning(
                "deliver: chat %s no longer lets the bot post (%s); its cards wait",
                chat_id,
                error.message,
            )
            reason = error.message
            return "suspended its chat", lambda: storage.chats.suspend_chat(chat_id, reason, now)
        if isinstance(error, Forbidden):
            forbidden = error

            async def deactivate() -> None:
                dropped = await storage.chats.deactivate_chat(chat_id, forbidden.message, now)
                log.info(
                    "deliver: chat %s deactivated (%s), %d cards dropped",
                    chat_id,
                    forbidden,
                    dropped,
                )

            return "deactivated its chat", deactivate
        if isinstance(error, ChatMigrated):
            log.info("deliver: chat %s migrated to %s", chat_id, error.new_chat_id)
            new_id = error.new_chat_id

            async def migrate() -> None:
                await storage.chats.migrate_chat(chat_id, new_id, now)
                self.wake()

            return "moved its chat", migrate
        if isinstance(error, BadRequest) and "chat not found" in error.message.lower():
            reason = error.message
            return "deactivated its chat", lambda: storage.chats.deactivate_chat(
                chat_id, reason, now
            )
        return None

    async def _tell_topic_gone(self, chat_id: int, category_ids: list[str]) -> None:
        """Say once, in General, where the cards of a closed topic go now.
        Only the categories that moved are named: the next card of theirs
        goes to General, so this is never said twice for one topic."""
        titles = ", ".join(escape(self._categories.get(c, c)) for c in category_ids)
        first = escape(category_ids[0])
        text = (
            f"The topic for {titles} was closed or deleted, so these cards come to General "
            f"now. Send <code>/subscribe {first}</code> in another topic to move them there."
        )
        try:
            await self._send_message(chat_id=chat_id, text=text, parse_mode=ParseMode.HTML)
        except TelegramError as error:
            log.info("deliver: could not tell chat %s its topic is gone: %s", chat_id, error)

    async def _flood_control(self, row: PendingDelivery, seconds: float) -> None:
        """A 429 pauses the chat it came for. Several chats told to wait in a
        row, with nothing sent between, is the bot's overall limit: then
        every send pauses."""
        until = self._pause_for_flood(row.chat_id, seconds)

        async def pause() -> None:
            await self._storage.chats.pause_chat(row.chat_id, until)
            await self._storage.outbox.mark_retry(
                row.id, until, "flood control", count_attempt=False
            )

        await self._record(row, "was told to wait", pause)

    def _pause_for_flood(self, chat_id: int, seconds: float) -> datetime:
        """Hold a chat's sends and edits for ``seconds`` (the whole bot's, when
        several chats were told to wait in a row); returns until when."""
        self._flooded_chats.add(chat_id)
        self.events.told_to_wait()
        ready = time.monotonic() + seconds
        self._pacer.chat_ready_at[chat_id] = max(self._pacer.chat_ready_at.get(chat_id, 0.0), ready)
        if len(self._flooded_chats) >= _GLOBAL_FLOOD_CHATS:
            log.warning("deliver: flood control for the whole bot, pausing %.1fs", seconds)
            self._pacer.pause(seconds)
        else:
            log.warning("deliver: flood control for chat %s, pausing it %.1fs", chat_id, seconds)
        return self._clock.now() + timedelta(seconds=seconds)

    async def _network_trouble(
        self, row: PendingDelivery, error: TelegramError, started: float
    ) -> None:
        """While Telegram cannot be reached at all (connection errors, timeouts,
        502-504 from its front end) every send pauses and the card keeps its
        attempts, so an outage of any length loses nothing. An error Telegram
        itself answered (500...) counts against the card, up to max_attempts."""
        text = str(error)
        if not telegram_unreachable(error):
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
        retry_at = self._clock.now() + timedelta(seconds=pause)
        await self._record(
            row,
            "was put back",
            lambda: self._storage.outbox.mark_retry(row.id, retry_at, text, count_attempt=False),
        )

    async def _retry_later(self, row: PendingDelivery, reason: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self._config.max_attempts:
            self.failed += 1
            self.events.card_failed("attempts_exhausted")
            log.warning("deliver: card %d to %s failed for good: %s", row.id, row.chat_id, reason)
            await self._record(
                row, "failed", lambda: self._storage.outbox.mark_failed(row.id, reason)
            )
            return
        delay = min(2.0**attempts, _MAX_RETRY_DELAY)
        retry_at = self._clock.now() + timedelta(seconds=delay)
        await self._record(
            row, "was put back", lambda: self._storage.outbox.mark_retry(row.id, retry_at, reason)
        )

    async def _record(
        self, row: PendingDelivery | CardEdit, outcome: str, write: Callable[[], Awaitable[object]]
    ) -> None:
        """Write a send's outcome, again and again with backoff if storage
        fails: the chat counts as busy meanwhile (this task is its in-flight
        send), so its card is not handed out again, and no new card goes
        out anywhere until the write succeeds. Stopping gives up: the card
        stays pending and may be sent once more after the restart, which
        at-least-once allows."""
        delay = 0.5
        failing = False
        try:
            while True:
                try:
                    await write()
                except StorageError as error:
                    if not failing:
                        failing = True
                        self._failing_writes += 1
                    self._storage_failed(error, f"record that card {row.id} {outcome}")
                else:
                    if failing:
                        failing = False
                        self._failing_writes -= 1
                    if not self._failing_writes:
                        self._storage_recovered()
                    return
                if self._stopping.is_set():
                    log.error(
                        "deliver: stopping without recording that card %d %s; "
                        "it may be sent again after the restart",
                        row.id,
                        outcome,
                    )
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, _MAX_STORAGE_RETRY)
        finally:
            if failing:
                self._failing_writes -= 1

    def _storage_failed(self, error: StorageError, doing: str) -> None:
        # Once per spell of trouble, not once per card or per pacing slot.
        if not self.storage_trouble:
            self.storage_trouble = True
            self._storage_trouble_since = time.monotonic()
            log.error("deliver: cannot %s (%s); sending is held until storage works", doing, error)

    def _storage_recovered(self) -> None:
        if self.storage_trouble:
            self.storage_trouble = False
            log.warning(
                "deliver: storage works again after %.0fs; sending resumes",
                time.monotonic() - self._storage_trouble_since,
            )


def _retry_seconds(error: RetryAfter) -> float:
    # PTB 22 warns that retry_after becomes a timedelta in a future major
    # version; accept both and keep the warning out of the logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: float | timedelta = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
