"""Digest sending: the I/O around ``bot.digest``, for the active sender.

Chats shape their delivery (``bot/digest.py``): a card claimed for a chat
in digest mode, in its quiet hours or at ``max_cards_per_hour`` is held
instead of sent, with the chat's other waiting cards (``hold_decisions``).
Every few seconds, at each new minute of the clock and at start-up (a
digest time missed while the bot was down is due then, once) the sender
gathers what is due into digests or releases it (``release_due``). A digest
is claimed through its oldest card and sent as one message (several only
beyond 4096 characters; ``digest_messages`` makes them) by ``DigestSender``
with the same pacing and outcomes as a card; its cards become sent together.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from telegram import LinkPreviewOptions, Message
from telegram.constants import ParseMode

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.digest import (
    CAP_WINDOW,
    KIND_MORE,
    KIND_QUIET,
    DigestEntry,
    DigestTexts,
    Hold,
    compose_digest,
    digest_thread,
    due_digest,
    hold_for,
    plan_release,
)
from bot.errors import StorageError
from bot.i18n import N_, translator
from bot.models import Article
from bot.storage import PendingDelivery, Storage
from bot.timezones import zone

if TYPE_CHECKING:
    from bot.deliver import Sender

log = logging.getLogger(__name__)

# Held cards due for release are looked for at least this often (and at
# each new minute of the clock, when digest times and quiet hours end).
_RELEASE_CHECK = timedelta(seconds=10)

MONTHS = (
    N_("January"),
    N_("February"),
    N_("March"),
    N_("April"),
    N_("May"),
    N_("June"),
    N_("July"),
    N_("August"),
    N_("September"),
    N_("October"),
    N_("November"),
    N_("December"),
)


def chat_zone(settings: ChatSettings, default_timezone: str) -> tzinfo:
    return zone(settings.timezone, default_timezone)


async def hold_decisions(
    storage: Storage,
    rows: Sequence[PendingDelivery],
    now: datetime,
    *,
    default_timezone: str,
    cap: int,
) -> dict[int, Hold]:
    """For claimed instant cards: the chats whose cards are held now, and why."""
    chat_ids = {row.chat_id for row in rows if row.digest_id is None}
    if not chat_ids:
        return {}
    settings = await storage.chats.settings_of_chats(chat_ids)
    recent = await storage.outbox.recent_card_times(chat_ids, now - CAP_WINDOW)
    holds: dict[int, Hold] = {}
    for chat_id in chat_ids:
        chosen = settings.get(chat_id, DEFAULT_SETTINGS)
        hold = hold_for(
            digest_times=chosen.digest_times,
            quiet=chosen.quiet_hours,
            zone=chat_zone(chosen, default_timezone),
            now=now,
            recent_cards=recent.get(chat_id, ()),
            cap=cap,
        )
        if hold is not None:
            holds[chat_id] = hold
    return holds


async def release_due(storage: Storage, now: datetime, *, default_timezone: str) -> int:
    """Gather the digests and release the cards that are due; returns how
    many digests were gathered or card groups released."""
    settings = await storage.chats.chats_in_digest_mode()
    summaries = {s.chat_id: s for s in await storage.outbox.held_summaries()}
    settings.update(
        await storage.chats.settings_of_chats(c for c in summaries if c not in settings)
    )
    candidates = set(summaries) | {c for c, s in settings.items() if s.digest_times}
    last = await storage.outbox.last_digest_times(candidates)
    done = 0
    for chat_id in sorted(candidates):
        chosen = settings.get(chat_id, DEFAULT_SETTINGS)
        where = chat_zone(chosen, default_timezone)
        # Cheap checks first: the held rows are read only for a chat with
        # something due.
        if chosen.digest_times:
            if due_digest(chosen.digest_times, where, last.get(chat_id), now) is None:
                continue
        else:
            summary = summaries.get(chat_id)
            if summary is None:
                continue
            if not summary.for_digest and (
                summary.first_until is None or summary.first_until > now
            ):
                continue
        held = await storage.outbox.held_cards(chat_id)
        release = plan_release(
            held,
            digest_times=chosen.digest_times,
            zone=where,
            last_digest=last.get(chat_id),
            now=now,
        )
        if release is None:
            continue
        if release.digest_kind is not None:
            chosen_ids = set(release.card_ids)
            thread = digest_thread(c.thread_id for c in held if c.id in chosen_ids)
            gathered = await storage.outbox.gather_digest(
                chat_id, release.digest_kind, release.card_ids, thread, release.slot, now
            )
            log.info(
                "digest: %s digest of %d cards for chat %s", release.digest_kind, gathered, chat_id
            )
            done += 1
        else:
            if release.card_ids:
                await storage.outbox.release_held(chat_id, release.card_ids)
                done += 1
            if release.slot is not None:
                await storage.outbox.mark_digest_time(chat_id, release.slot, now)
    return done


def local_date(when: datetime, where: tzinfo, language: str | None) -> str:
    _ = translator(language).gettext
    local = when.astimezone(where)
    return f"{local.day} {_(MONTHS[local.month - 1])} {local.year}"


def digest_texts(kind: str, count: int, date: str, language: str | None) -> DigestTexts:
    words = translator(language)
    _ = words.gettext
    if kind == KIND_MORE:
        heading = words.ngettext("{count} more story", "{count} more stories", count).format(
            count=count
        )
    elif kind == KIND_QUIET:
        heading = _("While it was quiet, {date}").format(date=date)
    else:
        heading = _("Your digest, {date}").format(date=date)

    def more(hidden: int, category_id: str) -> str:
        return words.ngettext(
            "…and {count} more — /latest {category}",
            "…and {count} more — /latest {category}",
            hidden,
        ).format(count=hidden, category=category_id)

    return DigestTexts(heading=heading, more=more)


def entries_for(
    articles: Sequence[Article], subscribed: Sequence[str], category_titles: Mapping[str, str]
) -> list[DigestEntry]:
    """Each article under the first of its categories (in the configuration's
    order) that the chat follows, as routing chose it."""
    followed = set(subscribed)
    order = {category: n for n, category in enumerate(category_titles)}
    entries = []
    for article in articles:
        ranked = sorted(article.categories, key=lambda c: order.get(c, len(order)))
        mine = [c for c in ranked if c in followed]
        category = (mine or ranked or [""])[0]
        entries.append(
            DigestEntry(article.title, article.url, article.source, category, article.published)
        )
    return entries


async def digest_messages(
    storage: Storage,
    row: PendingDelivery,
    category_titles: Mapping[str, str],
    *,
    default_timezone: str,
    default_language: str | None = None,
) -> list[str]:
    """The messages of the digest ``row``'s claim stands for (none when all
    its cards went away meanwhile), headed by the date it fell due in the
    chat's zone, whenever it is sent."""
    assert row.digest_id is not None
    digest = await storage.outbox.digest_to_send(row.digest_id)
    if not digest.articles:
        return []
    settings = await storage.chats.chat_settings(row.chat_id)
    subscribed = await storage.chats.subscriptions(row.chat_id)
    where = chat_zone(settings, default_timezone)
    texts = digest_texts(
        digest.kind,
        len(digest.articles),
        local_date(digest.due_at, where, settings.language or default_language),
        settings.language or default_language,
    )
    entries = entries_for(digest.articles, subscribed, category_titles)
    return compose_digest(entries, category_titles, texts)


class DigestSender:
    """Gathers and sends the digests of the chats that want them, paced and
    recorded by ``sender`` like its cards."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._release_checked: datetime | None = None

    async def release_held(self, now: datetime) -> None:
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
            await release_due(self._sender.storage, now, default_timezone=self._sender.zone_default)
        except StorageError as error:
            log.warning("deliver: could not release held cards (%s); trying again soon", error)
        except Exception:
            log.exception("deliver: releasing held cards failed")

    async def send(self, row: PendingDelivery, spacing: float) -> None:
        """Send the digest ``row``'s claim stands for; its parts (a digest
        beyond 4096 characters) follow each other at the chat's pacing. A
        failure counts for the whole digest: retried, it is sent whole again."""
        sender = self._sender
        storage = sender.storage
        assert row.digest_id is not None
        digest_id = row.digest_id
        started = time.monotonic()
        try:
            messages = await digest_messages(
                storage,
                row,
                sender.categories,
                default_timezone=sender.zone_default,
                default_language=sender.language_default,
            )
        except StorageError as error:
            sender.storage_failed(error, "read a digest")
            with contextlib.suppress(StorageError):
                await storage.outbox.release_deliveries([row.id], sender.worker)
            return
        if not messages:
            await sender.record(
                row, "was empty", lambda: storage.outbox.mark_dropped(row.id, "empty digest")
            )
            return
        send = sender.send_message
        if row.thread_id is not None:
            send = functools.partial(send, message_thread_id=row.thread_id)
        try:
            message: Message | None = None
            for number, text in enumerate(messages):
                if number:
                    # Each part is a message: the chat's spacing and a global slot.
                    await asyncio.sleep(spacing)
                    await sender.pacer.wait_slot(sender.stopping)
                    sender.pacer.space_chat(row.chat_id, spacing)
                message = await send(
                    chat_id=row.chat_id,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
        except Exception as error:
            await sender.after_failure(row, error, started)
            return
        assert message is not None
        done = sender.count_sent(row.created_at)
        message_id = message.message_id
        await sender.record(
            row,
            "was sent",
            lambda: storage.outbox.mark_digest_sent(digest_id, message_id, done),
        )
