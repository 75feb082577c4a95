"""Edit sending: sent cards follow corrections of their story.

``bot.edits`` says which cards are edited and when; this claims the due
edits and makes them, for the sender (``bot.deliver``) whose pacing and
outcomes it shares: an edit takes a card's place in the global and the
per-chat budget, one per chat at a time. What an edit's error means is what
it means for a send, for the chat (flood control, lost rights, blocked,
migrated); for the edit itself, a message that was deleted or can no longer
be edited drops it quietly, and "message is not modified" means it is done.
An edit never sends a new card.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from telegram.error import BadRequest, ChatMigrated, InvalidToken, RetryAfter, TelegramError

from bot.card_messages import EditMessage, edit_card
from bot.delivery_errors import lost_rights, retry_seconds, telegram_unreachable
from bot.edits import (
    CardKind,
    edit_retry_delay,
    edit_too_late,
    message_gone,
    next_edit_after,
    not_modified,
)
from bot.errors import StorageError
from bot.storage import CardEdit

if TYPE_CHECKING:
    from bot.deliver import Sender

log = logging.getLogger(__name__)

# Due edits claimed at once.
_BATCH = 100


class EditSender:
    """Makes the due edits of sent cards, paced and recorded by ``sender``."""

    def __init__(
        self, sender: Sender, methods: Mapping[CardKind, EditMessage], *, lease_seconds: float
    ) -> None:
        """``methods``: how each kind of sent card is edited (editMessageText,
        editMessageCaption); a kind without one is never edited.
        ``lease_seconds``: how long a claimed edit is this sender's."""
        self._sender = sender
        self._methods = dict(methods)
        self._lease = lease_seconds

    async def next_time(self) -> datetime | None:
        """When the next edit can be claimed; None: none waits (or no card
        can be edited at all)."""
        if not self._methods:
            return None
        return await self._sender.storage.edits.next_edit_time()

    async def any_due(self) -> bool:
        """Is an edit due now (waiting only for its chat's pacing)?"""
        due = await self.next_time()
        return due is not None and due <= self._sender.clock.now()

    async def dispatch(self) -> int:
        """Start the due edits of sent cards, paced like cards: one per chat
        at a time, each taking a global slot and its chat's spacing."""
        sender = self._sender
        if not self._methods or sender.storage_trouble or sender.stopping.is_set():
            return 0
        busy = sender.pacer.busy_chats() | set(sender.in_flight)
        now = sender.clock.now()
        rows = await sender.storage.edits.claim_edits(
            now, _BATCH, worker=sender.worker, lease_seconds=self._lease, exclude_chats=busy
        )
        window = timedelta(seconds=sender.config.edit_window)
        started = 0
        unstarted = []
        for row in rows:
            if (
                sender.stopping.is_set()
                or sender.storage_trouble
                or row.chat_id in sender.in_flight
            ):
                unstarted.append(row.id)
                continue
            if edit_too_late(row.sent_at, now, window):
                sender.start(row, self._drop(row, None, "past its edit window"))
                continue
            if row.kind not in self._methods:
                sender.start(row, self._drop(row, None, f"no way to edit a {row.kind} card"))
                continue
            await sender.pacer.wait_slot(sender.stopping)
            if sender.stopping.is_set():
                unstarted.append(row.id)
                continue
            sender.pacer.space_chat(row.chat_id, sender.spacing(row.chat_type))
            sender.start(row, self._edit(row))
            started += 1
        if unstarted:
            with contextlib.suppress(StorageError):
                await sender.storage.edits.release_edits(unstarted, sender.worker)
        return started

    async def _edit(self, row: CardEdit) -> None:
        sender = self._sender
        edit = self._methods[row.kind]
        try:
            # Edited as the chat wants its cards now (summary, zone).
            settings = await sender.storage.chats.chat_settings(row.chat_id)
            card = sender.card(row.article, settings)
            await edit_card(edit, row.kind, row.chat_id, row.message_id, card)
        except Exception as error:
            if isinstance(error, BadRequest) and not_modified(error.message):
                await self._done(row)
            else:
                await self._after_failure(row, error)
        else:
            sender.count_edited()
            await self._done(row)

    async def _done(self, row: CardEdit) -> None:
        sender = self._sender
        now = sender.clock.now()
        again = next_edit_after(now, row.sent_at, timedelta(seconds=sender.config.edit_window))
        await sender.record(
            row, "was edited", lambda: sender.storage.edits.mark_edited(row, now, again)
        )

    async def _drop(self, row: CardEdit, refused: str | None, why: str) -> None:
        sender = self._sender
        log.debug("deliver: edit of card %d in %s dropped: %s", row.id, row.chat_id, why)
        await sender.record(
            row, "dropped its edit", lambda: sender.storage.edits.drop_edit(row.id, refused)
        )

    async def _after_failure(self, row: CardEdit, error: Exception) -> None:
        """What a failed edit means: for the chat, what a failed send would
        (see ``Sender.chat_refusal``); for the edit, done, dropped or retried."""
        sender = self._sender
        storage = sender.storage
        now = sender.clock.now()
        if isinstance(error, RetryAfter):
            until = sender.pause_for_flood(row.chat_id, retry_seconds(error))

            async def pause() -> None:
                await storage.chats.pause_chat(row.chat_id, until)
                await storage.edits.retry_edit(row.id, until, count_attempt=False)

            await sender.record(row, "was told to wait", pause)
        elif isinstance(error, BadRequest) and message_gone(error.message):
            # Someone deleted the card, or it is too old to edit: nothing to
            # follow any more, and nothing worth a warning.
            await self._drop(row, error.message, error.message)
        elif (refusal := sender.chat_refusal(row.chat_id, error, now)) is not None:
            outcome, write = refusal
            if isinstance(error, ChatMigrated):
                # Message ids do not carry over to the new supergroup.
                await sender.record(row, outcome, write)
                await self._drop(row, error.message, "the chat moved")
            elif isinstance(error, TelegramError) and lost_rights(error):
                # The edit stays due, like the chat's cards, for when the right is back.
                async def suspend() -> None:
                    await write()
                    await storage.edits.release_edits([row.id], sender.worker)

                await sender.record(row, outcome, suspend)
            else:  # the bot is out of the chat: nothing there to follow
                await sender.record(row, outcome, write)
                await self._drop(row, None, outcome)
        elif isinstance(error, InvalidToken):
            sender.token_refused()
        elif isinstance(error, BadRequest):
            log.warning("deliver: edit of card %d in %s refused: %s", row.id, row.chat_id, error)
            await self._drop(row, None, error.message)
        else:
            if isinstance(error, TelegramError) and telegram_unreachable(error):
                sender.pacer.unreachable_for_edit()
            elif not isinstance(error, TelegramError):
                log.error("deliver: unexpected error editing card %d", row.id, exc_info=error)
            attempts = row.attempts + 1
            if attempts >= sender.config.max_attempts:
                log.warning("deliver: edit of card %d given up: %s", row.id, error)
                await self._drop(row, None, str(error))
                return
            due = now + edit_retry_delay(attempts)
            await sender.record(
                row,
                "was put back",
                lambda: storage.edits.retry_edit(row.id, due, count_attempt=True),
            )
