"""``/digest`` and ``/quiet``: when a chat gets its cards. Thin: parse, check
who may, store the chat's settings, reply.

The chat is found and checked exactly as for ``/subscribe`` (here, where
groups need an admin; or a channel named from a private chat by one of its
verified admins); without arguments both commands show the chat's choice,
which anyone who may see the chat's subscriptions may do.
"""

from __future__ import annotations

from datetime import datetime

from telegram import Update
from telegram.ext import ContextTypes

from bot.chat_settings import ChatSettings
from bot.digest import BadTime, next_digest, parse_digest_times, parse_quiet_hours
from bot.digest_delivery import chat_zone
from bot.render import escape
from bot.telegram.args import split_target
from bot.telegram.handlers import _chat_name, _target_chat, reply, services
from bot.telegram.translation import chat_translator

MAX_WORDS = 12


def _local_time(settings: ChatSettings, default_timezone: str, when: datetime | None) -> str:
    if when is None:
        return "—"
    local = when.astimezone(chat_zone(settings, default_timezone))
    return f"{local:%H:%M}"


async def digest_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/digest [@channel] HH:MM [HH:MM ...] | off"""
    await _shape(update, context, digest=True)


async def quiet_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/quiet [@channel] HH:MM-HH:MM | off"""
    await _shape(update, context, digest=False)


async def _shape(update: Update, context: ContextTypes.DEFAULT_TYPE, *, digest: bool) -> None:
    bot = services(context)
    arguments = list(context.args or [])
    if len(arguments) > MAX_WORDS:
        arguments = arguments[:MAX_WORDS]
    target = await _target_chat(update, context, arguments, changing=bool(_rest(arguments)))
    if target is None:
        return
    chat, words = target
    here = update.effective_chat
    storage = bot.runtime.storage
    settings = await storage.chats.chat_settings(chat.id)
    _ = (await chat_translator(update, context)).gettext
    default_timezone = bot.runtime.config.telegram.default_timezone
    zone_name = escape(settings.timezone or default_timezone)
    name = escape(_chat_name(chat)) if here is None or chat.id != here.id else _("This chat")
    now = bot.runtime.clock.now()
    example = "<code>/digest 08:00 18:00</code>" if digest else "<code>/quiet 23:00-07:00</code>"
    if not words:
        if digest and settings.digest_times:
            text = _(
                "{chat} gets a digest at {times} ({zone}) instead of instant cards. "
                "<code>/digest off</code> switches back."
            ).format(chat=name, times=", ".join(settings.digest_times), zone=zone_name)
        elif digest:
            text = _(
                "{chat} gets instant cards. For one digest message at set times instead: {example}"
            ).format(chat=name, example=example)
        elif settings.quiet_hours:
            text = _(
                "{chat} has quiet hours {start}–{end} ({zone}): cards wait until they end. "
                "<code>/quiet off</code> ends them."
            ).format(
                chat=name,
                start=settings.quiet_hours[0],
                end=settings.quiet_hours[1],
                zone=zone_name,
            )
        else:
            text = _("{chat} has no quiet hours. To hold cards at night: {example}").format(
                chat=name, example=example
            )
        await reply(update, context, text)
        return
    if len(words) == 1 and words[0].lower() == "off":
        field = "digest_times" if digest else "quiet_hours"
        await storage.chats.update_chat_settings(chat.id, {field: () if digest else None}, now)
        bot.sender.wake()
        text = (
            _("{chat} gets instant cards again; stories held for the digest follow now.")
            if digest
            else _("Quiet hours of {chat} are off; held cards follow now.")
        )
        await reply(update, context, text.format(chat=name))
        return
    try:
        if digest:
            times = parse_digest_times(words)
        else:
            if len(words) != 1:
                raise BadTime(_("give one range, such as 23:00-07:00"))
            quiet = parse_quiet_hours(words[0])
    except BadTime as error:
        await reply(
            update,
            context,
            _("Not changed: {reason}. Example: {example}").format(
                reason=escape(str(error)), example=example
            ),
        )
        return
    if digest:
        changed = await storage.chats.update_chat_settings(chat.id, {"digest_times": times}, now)
        # The times chosen count from now: one that passed earlier today is
        # not due at once.
        await storage.outbox.mark_digest_time(chat.id, now, now)
        upcoming = next_digest(times, chat_zone(changed, default_timezone), now)
        text = _(
            "{chat} gets a digest at {times} ({zone}) instead of instant cards; "
            "the next at {next}. <code>/digest off</code> switches back."
        ).format(
            chat=name,
            times=", ".join(times),
            zone=zone_name,
            next=_local_time(changed, default_timezone, upcoming),
        )
    else:
        await storage.chats.update_chat_settings(chat.id, {"quiet_hours": quiet}, now)
        text = _(
            "Quiet hours of {chat}: {start}–{end} ({zone}). Cards due then wait until they "
            "end: more than 5 arrive as one digest message."
        ).format(chat=name, start=quiet[0], end=quiet[1], zone=zone_name)
    await reply(update, context, text)


def _rest(arguments: list[str]) -> list[str]:
    """The arguments after an optional channel reference."""
    return split_target(arguments)[1]
