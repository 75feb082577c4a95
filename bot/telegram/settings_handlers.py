"""``/settings``, ``/pause``, ``/resume`` and ``/timezone``: how a chat's
cards look and when they come. Thin: find the chat and check who may (as
``/subscribe`` does: here, or a channel named from a private chat by a
verified admin), store, reply.

Anyone in a chat may see its panel; only those who may change its
subscriptions may change its settings, checked again on every tap.
"""

from __future__ import annotations

import logging

from telegram import Chat, ChatFullInfo, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.chat_settings import ChatSettings
from bot.i18n import Translator
from bot.local_time import zone_abbreviation
from bot.render import escape
from bot.telegram.args import split_target
from bot.telegram.handlers import (
    NO_PREVIEW,
    BotServices,
    _alert,
    _args,
    _chat_name,
    _target_chat,
    reply,
    services,
)
from bot.telegram.settings_panel import (
    PATTERN,
    ExplainOption,
    PanelFacts,
    SetOption,
    SwitchToInstant,
    parse_panel_data,
    settings_panel,
)
from bot.telegram.translation import chat_translator
from bot.timezones import UnknownTimezone, parse_timezone, zone

log = logging.getLogger(__name__)


def _names(update: Update, chat: Chat | ChatFullInfo) -> tuple[str, int | None]:
    """How replies name ``chat`` (HTML), and the id buttons must carry: None
    when the chat is the one being talked in."""
    here = update.effective_chat
    if here is not None and chat.id == here.id:
        return "", None
    return escape(_chat_name(chat)), chat.id


async def _panel(
    bot: BotServices,
    chat: Chat | ChatFullInfo,
    settings: ChatSettings,
    target: int | None,
    t: Translator,
) -> tuple[str, InlineKeyboardMarkup]:
    """The panel of ``chat`` as it is now (``target``: the id its buttons carry)."""
    default = bot.runtime.config.telegram.default_timezone
    own = chat.type == ChatType.PRIVATE and target is None
    facts = PanelFacts(
        chat_name=t.gettext("this chat") if own else _chat_name(chat),
        zone_name=settings.timezone or default,
        zone=zone(settings.timezone, default),
        filters=len(await bot.runtime.storage.chats.chat_filters(chat.id)),
        now=bot.runtime.clock.now(),
    )
    return settings_panel(settings, facts, target, t)


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/settings [@channel]: every option of the chat, with buttons."""
    bot = services(context)
    target = await _target_chat(update, context, _args(context), changing=False)
    if target is None:
        return
    chat, _rest = target
    settings = await bot.runtime.storage.chats.chat_settings(chat.id)
    _name, carried = _names(update, chat)
    text, markup = await _panel(
        bot, chat, settings, carried, await chat_translator(update, context)
    )
    await reply(update, context, text, markup)


async def pause_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/pause [@channel]: no new cards until /resume."""
    await _set_paused(update, context, paused=True)


async def resume_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/resume [@channel]: new cards again (those of the pause are not sent)."""
    await _set_paused(update, context, paused=False)


async def _set_paused(update: Update, context: ContextTypes.DEFAULT_TYPE, *, paused: bool) -> None:
    bot = services(context)
    target = await _target_chat(update, context, _args(context))
    if target is None:
        return
    chat, _rest = target
    chats = bot.runtime.storage.chats
    before = await chats.chat_settings(chat.id)
    _ = (await chat_translator(update, context)).gettext
    name, _carried = _names(update, chat)
    shown = name or _("this chat")
    if before.paused == paused:
        text = (
            _("{name} is already paused; /resume starts the cards again.")
            if paused
            else _("{name} is not paused; new stories arrive as cards.")
        )
        await reply(update, context, _capital(text.format(name=shown)))
        return
    await chats.update_chat_settings(chat.id, {"paused": paused}, bot.runtime.clock.now())
    bot.sender.wake()
    if paused:
        text = _(
            "Paused: no new cards for {name} until /resume. Stories published meanwhile "
            "are not sent later; /latest shows them."
        )
    else:
        text = _(
            "Resumed: new stories arrive in {name} as cards again. Those of the pause "
            "are not sent; /latest shows them."
        )
    await reply(update, context, text.format(name=shown))


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


async def timezone_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/timezone [@channel] [Area/City | UTC+5:30]: show or set the chat's zone."""
    bot = services(context)
    args = _args(context)
    _reference, rest = split_target(args)
    target = await _target_chat(update, context, args, changing=bool(rest))
    if target is None:
        return
    chat, rest = target
    chats = bot.runtime.storage.chats
    settings = await chats.chat_settings(chat.id)
    _ = (await chat_translator(update, context)).gettext
    name, _carried = _names(update, chat)
    shown = name or _("this chat")
    default = bot.runtime.config.telegram.default_timezone
    now = bot.runtime.clock.now()
    if not rest:
        current = settings.timezone or default
        local = zone(settings.timezone, default)
        text = _(
            "Times in {name} are shown in {zone} ({abbreviation}, now {time}). Change it: "
            "<code>/timezone Europe/Berlin</code> or <code>/timezone UTC+5:30</code>."
        ).format(
            name=shown,
            zone=escape(current),
            abbreviation=escape(zone_abbreviation(now, local)),
            time=f"{now.astimezone(local):%H:%M}",
        )
        await reply(update, context, _capital(text))
        return
    try:
        canonical = parse_timezone(" ".join(rest))
    except UnknownTimezone as problem:
        await reply(update, context, escape(str(problem)))
        return
    await chats.update_chat_settings(chat.id, {"timezone": canonical}, now)
    local = zone(canonical, default)
    text = _("Times in {name} are now shown in {zone} ({abbreviation}, now {time}).").format(
        name=shown,
        zone=escape(canonical),
        abbreviation=escape(zone_abbreviation(now, local)),
        time=f"{now.astimezone(local):%H:%M}",
    )
    await reply(update, context, _capital(text))


async def settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A tap on the /settings panel. Data is never trusted: it is parsed
    strictly, and the presser's right to change the chat is checked again."""
    query = update.callback_query
    if query is None:
        return
    bot = services(context)
    t = await chat_translator(update, context)  # the panel's chat: where it is shown
    _ = t.gettext
    press = parse_panel_data(query.data or "")
    message = query.message if isinstance(query.message, Message) else None
    here = message.chat if message is not None else None
    if press is None or (
        press.chat_id is not None and (here is None or here.type != ChatType.PRIVATE)
    ):
        # Only a panel in a private chat names another chat in its buttons.
        await query.answer(_("This button is not valid."))
        return
    chat: Chat | ChatFullInfo | None = here
    if press.chat_id is not None:
        try:
            chat = await context.bot.get_chat(press.chat_id)
        except TelegramError:
            await query.answer(_("I can't reach that chat any more."))
            return
    if chat is None:
        await query.answer()
        return
    chats = bot.runtime.storage.chats
    settings = await chats.chat_settings(chat.id)
    if isinstance(press, ExplainOption):
        await query.answer(_alert(_(press.hint)), show_alert=True)
        return
    verdict = await bot.permissions.can_manage(chat, query.from_user.id)
    if not verdict.allowed:
        await query.answer(_alert(verdict.explained(t)), show_alert=True)
        return
    if isinstance(press, SwitchToInstant):
        changes: dict[str, object] = {"digest_times": ()}
        stale = not settings.digest_times
        note = _("Cards now come as soon as stories are published.")
    else:
        assert isinstance(press, SetOption)
        changes = {press.field: press.value}
        stale = getattr(settings, press.field) == press.value
        note = _("Saved.")
    if stale:
        note = _("That was already so; the panel now shows the current settings.")
    else:
        settings = await chats.update_chat_settings(chat.id, changes, bot.runtime.clock.now())
        if _wakes_the_sender(changes):
            bot.sender.wake()
    await query.answer(_alert(note))
    if message is None:
        return
    text, markup = await _panel(bot, chat, settings, press.chat_id, t)
    try:
        await message.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
    except BadRequest as error:
        # A double tap asks twice for the panel the message already shows.
        if "not modified" not in error.message.lower():
            raise
        log.debug("settings: panel of %s was already up to date", chat.id)


def _wakes_the_sender(changes: dict[str, object]) -> bool:
    """Whether the sender should look at the outbox again now."""
    return "paused" in changes or "digest_times" in changes


# For bot.telegram.registration: the commands of this module, and the data its buttons carry.
SETTINGS_COMMANDS = (
    ("settings", settings_command),
    ("pause", pause_command),
    ("resume", resume_command),
    ("timezone", timezone_command),
)
SETTINGS_PATTERN = PATTERN
