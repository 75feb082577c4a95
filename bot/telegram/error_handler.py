"""The one error handler: what a failing handler or job leaves behind.

It logs the error first (the token is redacted by the log filter), then tells
the operators and, without details, the user.
"""

from __future__ import annotations

import html
import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.error import Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.i18n import translator
from bot.telegram import handlers
from bot.telegram.translation import chat_translator

log = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its traceback (the token is redacted by the log
    filter), tell the operators once per distinct error per hour, and tell
    the user something went wrong, without details; in a channel, nobody:
    every subscriber would read the apology."""
    error = context.error
    log.error("telegram: error while handling an update", exc_info=error)
    if error is None:
        return
    found = context.bot_data.get("services")
    if isinstance(found, handlers.BotServices):

        async def send_private(chat_id: int, text: str) -> object:
            return await context.bot.send_message(
                chat_id, text, link_preview_options=handlers.NO_PREVIEW
            )

        await found.alerts.report(error, _describe(update), found.runtime.clock.now(), send_private)
    if isinstance(error, Forbidden) or not isinstance(update, Update):
        return  # the chat blocked us, or a job failed: no user to tell
    try:
        _ = (await chat_translator(update, context)).gettext
    except Exception:  # the apology must not fail on what failed the handler
        _ = translator(None).gettext
    message = update.effective_message
    chat = update.effective_chat
    if (
        message is not None
        and update.callback_query is None
        and (chat is None or chat.type != ChatType.CHANNEL)
    ):
        try:
            await message.reply_text(
                html.escape(_("Sorry, something went wrong. Please try again later.")),
                do_quote=False,
            )
        except TelegramError:
            pass  # the original error is logged; a failed apology changes nothing
    if update.callback_query is not None:
        # An answer to a button press is shown to the presser alone.
        try:
            await update.callback_query.answer(_("Something went wrong."))
        except TelegramError:
            pass


def _describe(update: object) -> str:
    """What was being handled, for the operators: the kind of update and the
    chat, never the user's text."""
    if not isinstance(update, Update):
        return "a background job, outside any update"
    chat = update.effective_chat
    where = f" in {chat.type} chat {chat.id}" if chat is not None else ""
    if update.callback_query is not None:
        return f"a button press{where}"
    message = update.effective_message
    if message is not None and message.text and message.text.startswith("/"):
        command = message.text.split(maxsplit=1)[0].split("@", 1)[0][:40]
        return f"the command {command}{where}"
    return f"an update{where}"
