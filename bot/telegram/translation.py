"""The translator and time zone of the chat an update comes from: one
settings read per update, kept on the update's context for every answer the
handlers give.

A private chat that never chose a language starts in its user's Telegram
language when the bot speaks it, stored the first time, so that the user's
later choice (``/language``) is the only thing that changes it.
"""

from __future__ import annotations

import logging
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import CallbackContext

from bot.errors import StorageError
from bot.i18n import Translator, chat_language, supported_language, translator
from bot.timezones import zone

if TYPE_CHECKING:
    from bot.telegram.handlers import BotServices

log = logging.getLogger(__name__)

_CACHED = "newsbot_chat_texts"


def _services(context: CallbackContext[Any, Any, Any, Any]) -> BotServices | None:
    found = context.bot_data.get("services") if isinstance(context.bot_data, dict) else None
    return found if found is not None and hasattr(found, "runtime") else None


async def chat_translator(
    update: object, context: CallbackContext[Any, Any, Any, Any]
) -> Translator:
    """The translator for the chat ``update`` comes from (an inline query,
    which has none: its user's language)."""
    return (await _chat_texts(update, context))[0]


async def chat_zone(update: object, context: CallbackContext[Any, Any, Any, Any]) -> tzinfo:
    """The time zone the chat's times are shown in (its own, else
    ``[telegram] default_timezone``)."""
    return (await _chat_texts(update, context))[1]


async def _chat_texts(
    update: object, context: CallbackContext[Any, Any, Any, Any]
) -> tuple[Translator, tzinfo]:
    cached = context.__dict__.get(_CACHED)
    if isinstance(cached, tuple):
        return cached
    found = await _resolve(update, context)
    context.__dict__[_CACHED] = found
    return found


def forget_chat_translator(context: CallbackContext[Any, Any, Any, Any]) -> None:
    """The chat changed its language while this update is being handled."""
    context.__dict__.pop(_CACHED, None)


async def _resolve(
    update: object, context: CallbackContext[Any, Any, Any, Any]
) -> tuple[Translator, tzinfo]:
    bot = _services(context)
    if not isinstance(update, Update) or bot is None:
        return translator(None), zone(None, "UTC")
    telegram = bot.runtime.config.telegram
    default, default_zone = telegram.default_language, zone(None, telegram.default_timezone)
    user = update.effective_user
    user_language = user.language_code if user is not None else None
    chat = update.effective_chat
    if chat is None:
        # An inline query comes from a person, wherever its result is
        # posted: their private chat's language and zone, when they chose.
        chosen = None
        if user is not None:
            try:
                chosen = await bot.runtime.storage.chats.chat_settings(user.id)
            except StorageError as error:
                log.warning("i18n: cannot read the settings of user %s: %s", user.id, error)
        found = chat_language(
            chosen.language if chosen else None,
            private=True,
            user_language=user_language,
            default=default,
        )
        where = zone(chosen.timezone, telegram.default_timezone) if chosen else default_zone
        return translator(found), where
    private = chat.type == ChatType.PRIVATE
    storage = bot.runtime.storage
    try:
        settings = await storage.chats.chat_settings(chat.id)
    except StorageError as error:
        # An answer in the default language beats no answer at all.
        log.warning("i18n: cannot read the settings of chat %s: %s", chat.id, error)
        return translator(default), default_zone
    language = chat_language(
        settings.language,
        private=private,
        user_language=user_language,
        default=default,
    )
    if private and settings.language is None and supported_language(user_language) is not None:
        now = bot.runtime.clock.now()
        try:
            await storage.chats.upsert_chat(
                chat.id, chat.type, chat.title or chat.full_name, chat.username, now
            )
            await storage.chats.update_chat_settings(chat.id, {"language": language}, now)
        except StorageError as error:
            log.warning("i18n: cannot store the language of chat %s: %s", chat.id, error)
    return translator(language), zone(settings.timezone, telegram.default_timezone)
