"""The bot's own membership: added, promoted, demoted, removed or blocked
somewhere (``my_chat_member``), and a group that became a supergroup. The
chat's row follows, so cards are held, dropped or resumed as Telegram allows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from bot.config import CategoryConfig
from bot.i18n import Translator
from bot.render import escape
from bot.telegram.handlers import NO_PREVIEW, services
from bot.telegram.permissions import bot_may_post
from bot.telegram.translation import chat_translator

log = logging.getLogger(__name__)


async def my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The bot was added, removed, blocked or promoted somewhere."""
    change = update.my_chat_member
    if change is None:
        return
    bot = services(context)
    chat = change.chat
    now = bot.runtime.clock.now()
    bot.permissions.forget(chat.id)
    status = change.new_chat_member.status
    if status in (ChatMemberStatus.LEFT, ChatMemberStatus.BANNED):
        reason = "blocked by the user" if chat.type == ChatType.PRIVATE else "removed from the chat"
        await bot.runtime.storage.chats.upsert_chat(
            chat.id, chat.type, chat.title or chat.full_name, chat.username, now
        )
        dropped = await bot.runtime.storage.chats.deactivate_chat(chat.id, reason, now)
        log.info("telegram: chat %s %s; %d pending cards dropped", chat.id, reason, dropped)
    else:
        await bot.runtime.storage.chats.upsert_chat(
            chat.id, chat.type, chat.title or chat.full_name, chat.username, now, reactivate=True
        )
        log.info("telegram: chat %s (%s) now %s", chat.id, chat.type, status)
        if bot_may_post(change.new_chat_member, chat.type):
            if await bot.runtime.storage.chats.resume_chat(chat.id, now):
                log.info("telegram: chat %s lets the bot post again; its cards go out", chat.id)
                bot.sender.wake()
        else:
            # Demoted in a channel, muted in a group: hold the cards now
            # rather than fail the next one.
            await bot.runtime.storage.chats.suspend_chat(
                chat.id, f"the bot may not post here ({status})", now
            )
        was_outside = change.old_chat_member.status in (
            ChatMemberStatus.LEFT,
            ChatMemberStatus.BANNED,
        )
        # Only when just added: a promotion or a restart says nothing again.
        # Not in channels either: every subscriber would read it, and whoever
        # added the bot there already knows (see /help).
        if was_outside and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP):
            t = await chat_translator(update, context)
            await _welcome_group(context, chat.id, bot.runtime.news.categories, t)


async def _welcome_group(
    context: ContextTypes.DEFAULT_TYPE,
    chat_id: int,
    categories: Sequence[CategoryConfig],
    t: Translator,
) -> None:
    example = " ".join(c.id for c in categories[:2]) or "space science"
    text = t.gettext(
        "<b>Hi! I post news headlines by category.</b>\n"
        "Admins: send /subscribe to pick categories with buttons, or name them: "
        "<code>/subscribe {example}</code>. "
        "Everyone can use /latest and /search; /help tells more."
    ).format(example=escape(example))
    try:
        await context.bot.send_message(chat_id, text, link_preview_options=NO_PREVIEW)
    except (BadRequest, Forbidden) as error:
        # Added without the right to write, or removed again at once.
        log.info("telegram: cannot welcome chat %s: %s", chat_id, error)


async def migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A group became a supergroup: keep its subscriptions under the new id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    bot = services(context)
    await bot.runtime.storage.chats.migrate_chat(
        message.chat.id, message.migrate_to_chat_id, bot.runtime.clock.now()
    )
    log.info("telegram: chat %s migrated to %s", message.chat.id, message.migrate_to_chat_id)
