"""/reload: an operator has the bot read its configuration file again.

Only the users in ``[telegram] admins`` may; anyone else gets a short
refusal. The process that receives the update is the one that reloads (with
several processes on PostgreSQL, each reloads its own file on its own
SIGHUP). The work is ``NewsbotApplication.reload_config``; this handler only
asks for it and says what came of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import ContextTypes

from bot.errors import ConfigError, StorageError
from bot.i18n import Translator
from bot.reload import ReloadPlan
from bot.render import escape
from bot.telegram.handlers import reply, services
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word

log = logging.getLogger(__name__)

# The application's reload, in ``application.bot_data``.
RELOAD_KEY = "reload"
# Room for the heading in one message (Telegram's limit is 4096).
MAX_DETAIL = 3500

Reload = Callable[[], Awaitable[ReloadPlan]]


async def reload_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    bot = services(context)
    chat = update.effective_chat
    user = update.effective_user
    message = update.effective_message
    if chat is None or message is None:
        return
    t = await chat_translator(update, context)
    _ = t.gettext
    # A message on behalf of a chat (a channel post, an anonymous group
    # admin) names no person, so it cannot be an operator's.
    on_behalf_of_chat = message.sender_chat is not None
    if user is None or on_behalf_of_chat or user.id not in bot.runtime.config.telegram.admins:
        await reply(update, context, escape(_("/reload is for the bot's operators.")))
        return
    reload: Reload | None = context.bot_data.get(RELOAD_KEY)
    if reload is None:
        await reply(update, context, escape(_("This bot cannot reload its configuration.")))
        return
    try:
        plan = await reload()
    except (ConfigError, StorageError) as error:
        log.warning("config: /reload by %d refused: %s", user.id, error)
        await reply(
            update,
            context,
            "<b>{heading}</b>\n{detail}".format(
                heading=escape(_("The configuration was not reloaded; the running one is kept.")),
                detail=escape(cut_at_word(str(error), MAX_DETAIL)),
            ),
        )
        return
    log.info("config: reloaded by /reload from %d: %s", user.id, "; ".join(plan.summary()))
    await reply(
        update,
        context,
        "<b>{heading}</b>\n{detail}".format(
            heading=escape(_("Configuration reloaded.")),
            detail=escape(cut_at_word("\n".join(_changes(plan, t)), MAX_DETAIL)),
        ),
    )


def _changes(plan: ReloadPlan, words: Translator) -> list[str]:
    """What the reload changed, one line per kind: ids and keys, never values."""
    _ = words.gettext
    lines = []
    for text, ids in (
        (_("Categories added: {ids}"), plan.categories_added),
        (_("Categories removed: {ids}"), plan.categories_removed),
        (_("Categories changed: {ids}"), plan.categories_changed),
    ):
        if ids:
            lines.append(text.format(ids=", ".join(ids)))
    # Direct ngettext calls, so that the catalogs' extraction finds them.
    added, removed, changed = (
        len(plan.feeds_added),
        len(plan.feeds_removed),
        len(plan.feeds_changed),
    )
    if added:
        lines.append(words.ngettext("{n} feed added", "{n} feeds added", added).format(n=added))
    if removed:
        lines.append(
            words.ngettext(
                "{n} feed removed (no longer polled, its articles kept)",
                "{n} feeds removed (no longer polled, their articles kept)",
                removed,
            ).format(n=removed)
        )
    if changed:
        lines.append(
            words.ngettext("{n} feed changed", "{n} feeds changed", changed).format(n=changed)
        )
    if plan.settings:
        lines.append(_("Settings changed: {keys}").format(keys=", ".join(plan.settings)))
    if plan.needs_restart:
        lines.append(
            _("Needs a restart (the running values are kept): {keys}").format(
                keys=", ".join(plan.needs_restart)
            )
        )
    return lines or [_("Nothing changed.")]
