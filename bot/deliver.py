"""Deliver stage: drains the outbox to Telegram, paced below the flood limits.

The sender claims due cards (``bot.storage.outbox``), at most one per chat,
and sends each when the pacing (``bot.pacing``: a global slot, the chat's
spacing, flood control and outage pauses) lets it. A chat's cards go out
oldest first, one at a time. A card still pending ``max_age`` after it was
queued is dropped when it comes up, not sent late.

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

Edits of sent cards (``bot.edit_delivery``) and digests
(``bot.digest_delivery``) share this pacing and these outcomes: an edit or a
digest takes a card's place in the global and the per-chat budget. What
Telegram's words mean is in ``bot.delivery_errors``; the calls that send a
card, with its fallbacks, in ``bot.card_messages``. An outcome that cannot
be written is written again until it is (``bot.outcomes``): a card Telegram
accepted is never sent twice because of our own trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from telegram import Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.card_messages import EditMessage, SendMessage, SendPhoto, send_card
from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.clock import Clock
from bot.config import DeliveryConfig
from bot.delivery_errors import lost_rights, retry_seconds, telegram_unreachable, topic_gone
from bot.delivery_events import DeliveryEvents
from bot.digest_delivery import DigestSender, hold_decisions
from bot.edit_delivery import EditSender
from bot.edits import CardKind
from bot.errors import StorageError
from bot.i18n import DEFAULT_LANGUAGE, translator
from bot.models import Article
from bot.outcomes import OutcomeWriter
from bot.pacing import Pacer
from bot.reload import CurrentConfig
from bot.render import Card, escape, render_card
from bot.roles import worker_name
from bot.storage import CardEdit, PendingDelivery, Storage
from bot.telegram.links import article_link
from bot.timezones import zone

log = logging.getLogger(__name__)

_BATCH = 100
_IDLE_WAIT = 5.0
_MAX_RETRY_DELAY = 600.0
# A claimed card returns to the queue if its sender has not finished with it
# by then (it died): longer than any send with its retries of the outcome.
CLAIM_LEASE = 300.0


class Sender:
    """The active sender: claims cards and digests, paces, sends and records
    them, and has ``EditSender`` make the due edits of sent cards alongside."""

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
        self.storage = storage
        # Photo cards need sendPhoto; without it every card goes as text.
        self._send_photo = send_photo
        self._default_timezone = default_timezone
        # How each kind of sent card is edited; without them no card is.
        edit_methods: dict[CardKind, EditMessage] = {}
        if edit_message_text is not None:
            edit_methods["text"] = edit_message_text
        if edit_message_caption is not None:
            edit_methods["photo"] = edit_message_caption
        self._edits = EditSender(self, edit_methods, lease_seconds=CLAIM_LEASE)
        self._digests = DigestSender(self)
        self.edited = 0
        # A card's own words are in its chat's language; this for chats that
        # chose none ([telegram] default_language).
        self._default_language = default_language
        # Known once getMe answered: the Share button then links back here.
        self._bot_username = bot_username
        self.send_message = send_message
        self._delivery = config
        self.clock = clock
        self._titles = dict(category_titles)
        self.pacer = Pacer(1.0 / config.messages_per_second)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        # Names this sender on the rows it claims (several may share a database).
        self.worker = worker_name("sender")
        self.sent = 0
        self.failed = 0
        self.events = DeliveryEvents()  # replaced by the metrics when they are on
        # Set when Telegram rejects the token: the bot is alive but useless,
        # and the health check must say so.
        self.token_rejected = False
        self._outcomes = OutcomeWriter()

    @property
    def config(self) -> DeliveryConfig:
        return self._current.config.delivery if self._current is not None else self._delivery

    @property
    def language_default(self) -> str:
        """The language of chats that chose none, as the config says now."""
        if self._current is None:
            return self._default_language
        return self._current.config.telegram.default_language

    @property
    def zone_default(self) -> str:
        """The zone of chats that chose none, as the config says now."""
        if self._current is None:
            return self._default_timezone
        return self._current.config.telegram.default_timezone

    @property
    def categories(self) -> Mapping[str, str]:
        if self._current is None:
            return self._titles
        return {c.id: c.title for c in self._current.config.categories}

    @property
    def storage_trouble(self) -> bool:
        """Storage fails (an outcome cannot be written): no new card goes
        out, and the health check fails."""
        return self._outcomes.storage_trouble

    @property
    def healthy(self) -> bool:
        return not self.token_rejected and not self.storage_trouble

    @property
    def stopping(self) -> asyncio.Event:
        """Set by ``stop()``: no new send starts, and waits for a slot end."""
        return self._stopping

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
            await self.storage.outbox.drop_stale_deliveries(
                self.clock.now() - timedelta(seconds=self.config.max_age)
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
                self.storage_failed(error, "read the outbox")
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
        while self.in_flight:
            tasks = list(self.in_flight.values())
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
            if self.in_flight:
                await asyncio.wait(list(self.in_flight.values()), timeout=0.5)
                continue
            if not await self.storage.outbox.has_pending_deliveries() and not (
                await self._edits.any_due()
            ):
                return
            ready = self.pacer.next_ready()
            await asyncio.sleep(min(0.5, max(0.01, (ready or 0) - time.monotonic())))

    async def _idle(self) -> None:
        """Sleep until a chat's pacing ends, a retry falls due, or new cards arrive."""
        wait = _IDLE_WAIT
        ready = self.pacer.next_ready()
        if ready is not None:
            wait = min(wait, ready - time.monotonic())
        if not self.storage_trouble:
            try:
                due = await self.storage.outbox.next_delivery_time()
                next_edit = await self._edits.next_time()
                if next_edit is not None and (due is None or next_edit < due):
                    due = next_edit
            except StorageError as error:
                self.storage_failed(error, "read the outbox")
                due = None
            if due is not None and due > self.clock.now():
                # Due rows that were not started belong to paced chats (see above).
                wait = min(wait, (due - self.clock.now()).total_seconds())
        wait = max(0.01, wait)
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=min(wait, _IDLE_WAIT))
        except TimeoutError:
            pass

    async def _dispatch_batch(self) -> int:
        if self._outcomes.failing_writes:
            # Outcomes are waiting to be written: sending more would pile up
            # cards that Telegram accepted and we could not record. (Trouble
            # with a read alone ends with the next read that works, below.)
            return 0
        busy = self.pacer.busy_chats() | set(self.in_flight)
        now = self.clock.now()
        await self._digests.release_held(now)
        rows = await self.storage.outbox.claim_deliveries(
            now, _BATCH, worker=self.worker, lease_seconds=CLAIM_LEASE, exclude_chats=busy
        )
        if not self._outcomes.failing_writes:
            # A read that works says nothing while an outcome still waits.
            self._outcomes.recovered()
        try:
            holds = await hold_decisions(
                self.storage,
                rows,
                now,
                default_timezone=self.zone_default,
                cap=self.config.max_cards_per_hour,
            )
        except StorageError:
            # Hand the claims back at once, not when their lease runs out.
            with contextlib.suppress(StorageError):
                await self.storage.outbox.release_deliveries([r.id for r in rows], self.worker)
            raise
        started = 0
        too_old = now - timedelta(seconds=self.config.max_age)
        # How each chat wants its cards, read once for the whole batch.
        try:
            looks = await self.storage.chats.settings_of_chats({row.chat_id for row in rows})
        except StorageError as error:
            # Nothing was sent: the cards go back and are claimed again on
            # the next round (a card rendered without its chat's settings
            # could go to a chat that paused).
            log.warning("deliver: cannot read the chats' settings (%s); retrying", error)
            with contextlib.suppress(StorageError):
                await self.storage.outbox.release_deliveries([r.id for r in rows], self.worker)
            return 0
        unstarted = []
        for row in rows:
            if self._stopping.is_set() or self.storage_trouble or row.chat_id in self.in_flight:
                unstarted.append(row.id)
                continue
            hold = holds.get(row.chat_id) if row.digest_id is None else None
            if hold is not None:
                # Not sent and no pacing slot used: the next batch goes on at once.
                try:
                    await self.storage.outbox.hold_cards(
                        row.chat_id, hold.reason, hold.until, self.worker
                    )
                except StorageError as error:
                    self.storage_failed(error, "hold a card")
                    unstarted.append(row.id)
                    continue
                started += 1
                continue
            if row.created_at < too_old and row.digest_id is None:
                # Checked when a card comes up, not only at start-up: after a
                # long outage in a running bot, week-old news is not news.
                self.start(row, self._drop_stale(row))
                continue
            if looks.get(row.chat_id, DEFAULT_SETTINGS).paused:
                # Queued just before /pause: a paused chat gets nothing.
                self.start(row, self._drop_paused(row))
                continue
            await self.pacer.wait_slot(self._stopping)
            if self._stopping.is_set():
                # stop() came during the wait. A send started now would not
                # be waited for: the shutdown that follows closes the HTTP
                # client under it, after Telegram may have accepted the card.
                unstarted.append(row.id)
                continue
            self.pacer.space_chat(row.chat_id, self.spacing(row.chat_type))
            if row.digest_id is not None:
                self.start(row, self._digests.send(row, self.spacing(row.chat_type)))
            else:
                self.start(row, self._deliver(row, looks.get(row.chat_id, DEFAULT_SETTINGS)))
            started += 1
        if unstarted:
            # Claimed but not sent (stopping, or storage trouble): hand them
            # back now rather than when their lease runs out.
            with contextlib.suppress(StorageError):
                await self.storage.outbox.release_deliveries(unstarted, self.worker)
        return started + await self._edits.dispatch()

    def spacing(self, chat_type: str) -> float:
        if chat_type == "private":
            return self.config.private_chat_interval
        return self.config.group_chat_interval

    def start(self, row: PendingDelivery | CardEdit, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.in_flight[row.chat_id] = task
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        for chat_id, running in list(self.in_flight.items()):
            if running is task:
                del self.in_flight[chat_id]

    async def _drop_stale(self, row: PendingDelivery) -> None:
        log.info("deliver: card %d to %s is older than max_age; dropped", row.id, row.chat_id)
        self.events.card_failed("too_old")
        await self.record(
            row, "was dropped", lambda: self.storage.outbox.mark_dropped(row.id, "too old")
        )

    async def _drop_paused(self, row: PendingDelivery) -> None:
        log.info("deliver: card %d to %s dropped, the chat is paused", row.id, row.chat_id)
        await self.record(
            row, "was dropped", lambda: self.storage.outbox.mark_dropped(row.id, "paused")
        )

    def card(self, article: Article, settings: ChatSettings) -> Card:
        """The card of an article in a chat, the same for its send and its edits."""
        link = article_link(self._bot_username, article.id) if self._bot_username else None
        return render_card(
            article,
            self.categories,
            article_link=link,
            settings=settings,
            t=translator(settings.language or self.language_default),
            zone=zone(settings.timezone, self.zone_default),
        )

    async def _deliver(self, row: PendingDelivery, settings: ChatSettings) -> None:
        card = self.card(row.article, settings)
        started = time.monotonic()
        try:
            message = await send_card(
                self.send_message, row.chat_id, card, row.thread_id, send_photo=self._send_photo
            )
        except Exception as error:
            await self.after_failure(row, error, started)
        else:
            now = self.count_sent(row.created_at)
            await self.record(
                row,
                "was sent",
                functools.partial(self._mark_sent, row, message, now),
            )

    async def _mark_sent(self, row: PendingDelivery, message: Message, now: datetime) -> None:
        await self.storage.outbox.mark_sent(row.id, message.message_id, now)
        if message.photo:
            # Telegram edits a photo card's caption, not a text (bot.edits).
            await self.storage.edits.record_card_kind(row.id, "photo")

    def count_sent(self, queued_at: datetime) -> datetime:
        """Telegram took a card or a digest (queued at ``queued_at``): the
        outage backoff and the run of flooded chats start over. Returns when."""
        self.sent += 1
        self.pacer.sent()
        now = self.clock.now()
        self.events.card_sent(queued_at, now)
        return now

    def count_edited(self) -> None:
        """Telegram made an edit: the run of flooded chats starts over (the
        outage backoff is the sends' own)."""
        self.edited += 1
        self.pacer.edited()

    def token_refused(self) -> None:
        """Nothing can be sent with a revoked token: keep every card pending
        for when the operator fixes it, and stop hammering the API."""
        log.error("deliver: Telegram rejected the bot token; delivery stopped")
        self.token_rejected = True
        self._stopping.set()

    async def after_failure(self, row: PendingDelivery, error: Exception, started: float) -> None:
        """Decide what a failed send means for the card and its chat, and record it."""
        now = self.clock.now()
        storage = self.storage
        if isinstance(error, RetryAfter):
            await self._flood_control(row, retry_seconds(error))
        elif row.thread_id is not None and isinstance(error, BadRequest) and topic_gone(error):
            thread_id = row.thread_id
            log.info("deliver: topic %s of chat %s is gone (%s)", thread_id, row.chat_id, error)

            async def fall_back() -> None:
                moved = await storage.chats.topic_gone(row.chat_id, thread_id)
                if moved:
                    await self._tell_topic_gone(row.chat_id, moved)

            await self.record(row, "fell back to General", fall_back)
            self.wake()
        elif (refusal := self.chat_refusal(row.chat_id, error, now)) is not None:
            await self.record(row, *refusal)
        elif isinstance(error, BadRequest):
            self.failed += 1
            self.events.card_failed("rejected")
            log.warning("deliver: card %d to %s failed: %s", row.id, row.chat_id, error)
            await self.record(
                row, "failed", lambda: storage.outbox.mark_failed(row.id, error.message)
            )
        elif isinstance(error, InvalidToken):
            self.token_refused()
        elif isinstance(error, TelegramError):
            await self._network_trouble(row, error, started)
        else:  # a bug: keep the row, keep the sender alive
            log.error("deliver: unexpected error sending card %d", row.id, exc_info=error)
            await self._retry_later(row, f"internal: {type(error).__name__}")

    def chat_refusal(
        self, chat_id: int, error: Exception, now: datetime
    ) -> tuple[str, Callable[[], Awaitable[object]]] | None:
        """What an error that concerns the chat, not the message, does to the
        chat (the outcome, and the write that records it), the same for a
        send and for an edit; None for any other error."""
        storage = self.storage
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
        titles = ", ".join(escape(self.categories.get(c, c)) for c in category_ids)
        first = escape(category_ids[0])
        try:
            settings = await self.storage.chats.chat_settings(chat_id)
        except Exception:  # the notice in the default language beats none
            log.warning("deliver: settings of chat %s unreadable", chat_id, exc_info=True)
            settings = DEFAULT_SETTINGS
        _ = translator(settings.language or self.language_default).gettext
        try:
            text = _(
                "The topic for {titles} was closed or deleted, so these cards come to General "
                "now. Send <code>/subscribe {category}</code> in another topic to move them "
                "there."
            ).format(titles=titles, category=first)
            await self.send_message(chat_id=chat_id, text=text, parse_mode=ParseMode.HTML)
        except TelegramError as error:
            log.info("deliver: could not tell chat %s its topic is gone: %s", chat_id, error)

    async def _flood_control(self, row: PendingDelivery, seconds: float) -> None:
        """A 429 pauses the chat it came for. Several chats told to wait in a
        row, with nothing sent between, is the bot's overall limit: then
        every send pauses."""
        until = self.pause_for_flood(row.chat_id, seconds)

        async def pause() -> None:
            await self.storage.chats.pause_chat(row.chat_id, until)
            await self.storage.outbox.mark_retry(
                row.id, until, "flood control", count_attempt=False
            )

        await self.record(row, "was told to wait", pause)

    def pause_for_flood(self, chat_id: int, seconds: float) -> datetime:
        """Hold a chat's sends and edits for ``seconds`` (the whole bot's, when
        several chats were told to wait in a row); returns until when."""
        self.events.told_to_wait()
        self.pacer.told_to_wait(chat_id, seconds)
        return self.clock.now() + timedelta(seconds=seconds)

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
        pause = self.pacer.unreachable(started, text)
        retry_at = self.clock.now() + timedelta(seconds=pause)
        await self.record(
            row,
            "was put back",
            lambda: self.storage.outbox.mark_retry(row.id, retry_at, text, count_attempt=False),
        )

    async def _retry_later(self, row: PendingDelivery, reason: str) -> None:
        attempts = row.attempts + 1
        if attempts >= self.config.max_attempts:
            self.failed += 1
            self.events.card_failed("attempts_exhausted")
            log.warning("deliver: card %d to %s failed for good: %s", row.id, row.chat_id, reason)
            await self.record(
                row, "failed", lambda: self.storage.outbox.mark_failed(row.id, reason)
            )
            return
        delay = min(2.0**attempts, _MAX_RETRY_DELAY)
        retry_at = self.clock.now() + timedelta(seconds=delay)
        await self.record(
            row, "was put back", lambda: self.storage.outbox.mark_retry(row.id, retry_at, reason)
        )

    async def record(
        self, row: PendingDelivery | CardEdit, outcome: str, write: Callable[[], Awaitable[object]]
    ) -> None:
        """Write a send's outcome, again and again while storage fails
        (``bot.outcomes``); stopping gives up."""
        await self._outcomes.write(row.id, outcome, write, self._stopping)

    def storage_failed(self, error: StorageError, doing: str) -> None:
        """Storage failed while the sender tried ``doing``: sending holds."""
        self._outcomes.failed(error, doing)
