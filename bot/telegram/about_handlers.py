"""What the bot is and who is asking: /start (welcome and category buttons),
/help (every command, and how groups and channels work), /whoami (the ids
to name in the config and in /subscribe) and /health (feed status, for the
operators). Thin: read, reply.
"""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.render import escape
from bot.telegram.feed_handlers import operator_help
from bot.telegram.handlers import (
    COMMANDS,
    _is_stand_in,
    _remember_chat,
    categories_keyboard,
    reply,
    services,
)
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: welcome and category buttons."""
    await welcome(update, context)


async def welcome(update: Update, context: ContextTypes.DEFAULT_TYPE, note: str = "") -> None:
    """The /start answer, after ``note`` (HTML) when there is one."""
    bot = services(context)
    chat = update.effective_chat
    if chat is None:
        return
    await _remember_chat(bot, chat)
    subscribed = await bot.runtime.storage.chats.subscriptions(chat.id)
    categories = bot.runtime.news.categories
    _ = (await chat_translator(update, context)).gettext
    text = _(
        "<b>Hi! I post news headlines by category.</b>\n\n"
        "Tap categories below to subscribe this chat; new stories arrive as cards "
        "with Read and Share buttons.\n\n"
        "/latest shows the newest headlines, /search finds stories, /help explains "
        "groups and channels."
    )
    if note:
        text = f"{note}\n\n{text}"
    await reply(
        update, context, text, categories_keyboard(categories, subscribed) if categories else None
    )


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: how to use the bot everywhere."""
    _ = (await chat_translator(update, context)).gettext
    lines = [
        _("<b>Commands</b>"),
        *(f"/{name} — {escape(_(description))}" for name, description in COMMANDS),
        "",
        _(
            "<b>Groups</b>: anyone can use /latest and /search; only admins change "
            "subscriptions. In a group with topics, /subscribe inside a topic sends that "
            "category's cards there."
        ),
        _(
            "<b>Channels</b>: add me as an administrator who can post, then in a private "
            "chat with me send <code>/subscribe @yourchannel space science</code>. "
            "<code>/mysubs @yourchannel</code>, <code>/unsubscribe @yourchannel all</code>, "
            "<code>/filter @yourchannel +mars</code>, <code>/settings @yourchannel</code>, "
            "<code>/pause @yourchannel</code>, <code>/timezone @yourchannel Europe/Berlin</code>, "
            "<code>/digest @yourchannel 08:00</code>, <code>/quiet @yourchannel 23:00-07:00</code> "
            "and <code>/language @yourchannel de</code> work the same way. A private "
            "channel has no @name: forward me any of its posts and I'll show its buttons "
            "and its id."
        ),
    ]
    lines += await operator_help(update, context)
    await reply(update, context, "\n".join(lines))


async def whoami(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/whoami: the sender's user id and this chat's id (for [telegram] admins
    and for naming a chat in /subscribe)."""
    chat = update.effective_chat
    message = update.effective_message
    if chat is None or message is None:
        return
    user = update.effective_user
    _ = (await chat_translator(update, context)).gettext
    lines = []
    if user is not None and not _is_stand_in(message):
        lines.append(_("Your user id: <code>{id}</code>").format(id=user.id))
    else:
        # Channel posts and anonymous group admins carry no user at all.
        lines.append(
            _(
                "This was posted on behalf of a chat, so I can't see who you are; "
                "send /whoami in a private chat with me for your user id."
            )
        )
    if chat.type != ChatType.PRIVATE:
        lines.append(_("This chat's id: <code>{id}</code>").format(id=chat.id))
    await reply(update, context, "\n".join(lines))


async def health(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/health: feed status, for the operators listed in the config."""
    bot = services(context)
    user = update.effective_user
    message = update.effective_message
    anonymous = user is None or (message is not None and _is_stand_in(message))
    t = await chat_translator(update, context)
    _ = t.gettext
    if anonymous or user is None or user.id not in bot.runtime.config.telegram.admins:
        if anonymous or user is None:
            text = _(
                "/health is for the bot's operators. To become one, add your user id "
                "(send /whoami in a private chat with me) to <code>admins</code> under "
                "<code>[telegram]</code> in the bot's config.toml and reload it (SIGHUP) or restart it."
            )
        else:
            text = _(
                "/health is for the bot's operators. To become one, add your user id "
                "<code>{id}</code> to <code>admins</code> under <code>[telegram]</code> "
                "in the bot's config.toml and reload it (SIGHUP) or restart it."
            )
        await reply(update, context, text.format(id=user.id if user else ""))
        return
    feeds = await bot.runtime.storage.feeds.feed_health()
    counts = await bot.runtime.storage.outbox.delivery_counts()
    suspended = await bot.runtime.storage.chats.suspended_chats()
    failing = [f for f in feeds if f.error_count or f.disabled]
    lines = [
        t.ngettext(
            "<b>{count} feed</b>, {failing} failing; cards: {cards}",
            "<b>{count} feeds</b>, {failing} failing; cards: {cards}",
            len(feeds),
        ).format(
            count=len(feeds),
            failing=len(failing),
            cards=", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
    ]
    items = []
    for feed in failing[:30]:
        state = (
            _("disabled")
            if feed.disabled
            else t.ngettext("{count} error", "{count} errors", feed.error_count).format(
                count=feed.error_count
            )
        )
        name = escape(cut_at_word(feed.title or feed.url, 150))
        items.append(f"• {name} — {state}: {escape(cut_at_word(feed.last_error or '', 200))}")
    for chat in suspended[:30]:
        name = escape(cut_at_word(f"@{chat.username}" if chat.username else chat.title or "", 100))
        items.append(
            t.ngettext(
                "• chat <code>{id}</code> {name} — suspended, {count} card waits: {reason}",
                "• chat <code>{id}</code> {name} — suspended, {count} cards wait: {reason}",
                chat.pending,
            ).format(
                id=chat.id,
                name=name,
                count=chat.pending,
                reason=escape(cut_at_word(chat.reason, 200)),
            )
        )
    # Whole lines only, each piece cut as plain text before it is escaped:
    # cutting the finished HTML ended inside an entity ("&am") or mid-line.
    # Stop well below Telegram's 4096-character limit.
    room = 3900 - len(lines[0])
    shown = 0
    for line in items:
        if len(line) + 1 > room:
            break
        lines.append(line)
        room -= len(line) + 1
        shown += 1
    hidden = len(failing) + len(suspended) - shown
    if hidden > 0:
        lines.append(_("… and {count} more").format(count=hidden))
    await reply(update, context, "\n".join(lines))
