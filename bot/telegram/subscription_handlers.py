"""What a chat receives: /categories, /subscribe, /unsubscribe, /mysubs, the
category buttons (✓ Space / Space), and a channel post forwarded to pick its
channel. Thin: check who may, call storage, reply.

Anyone in a chat may see its subscriptions; changing them is for whoever
manages the chat (``bot.telegram.permissions``), checked again on every
button press, whose data is never trusted.
"""

from __future__ import annotations

from telegram import Chat, ChatFullInfo, Message, MessageOriginChannel, MessageOriginChat, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.render import escape
from bot.services import resolve_categories
from bot.telegram.args import MAX_ARGUMENTS, parse_toggle, unknown_categories_message
from bot.telegram.handlers import (
    _alert,
    _args,
    _chat_name,
    _remote_chat,
    _target_chat,
    _titles,
    categories_keyboard,
    reply,
    services,
)
from bot.telegram.topics import subscriptions_by_topic, topic_label, topic_of
from bot.telegram.translation import chat_translator


async def categories_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/categories: every category with this week's count, and subscribe buttons."""
    bot = services(context)
    chat = update.effective_chat
    if chat is None:
        return
    stats = await bot.runtime.news.categories_this_week()
    t = await chat_translator(update, context)
    _ = t.gettext
    if not stats:
        await reply(update, context, _("No categories are configured yet."))
        return
    lines = [_("<b>Categories</b> (articles this week)")]
    for category, count in stats:
        lines.append(f"• {escape(category.title)} — {t.number(count)}  <code>{category.id}</code>")
    subscribed = await bot.runtime.storage.chats.subscriptions(chat.id)
    await reply(
        update, context, "\n".join(lines), categories_keyboard([c for c, _ in stats], subscribed)
    )


async def subscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/subscribe [@channel] [category ...]"""
    await _change_subscriptions(update, context, subscribe=True)


async def unsubscribe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unsubscribe [@channel] [category ... | all]"""
    await _change_subscriptions(update, context, subscribe=False)


async def _change_subscriptions(
    update: Update, context: ContextTypes.DEFAULT_TYPE, *, subscribe: bool
) -> None:
    bot = services(context)
    args = _args(context)
    t = await chat_translator(update, context)
    _ = t.gettext
    if len(args) > MAX_ARGUMENTS:
        await reply(
            update, context, _("Too many arguments. Try <code>/subscribe space science</code>.")
        )
        return
    target = await _target_chat(update, context, args)
    if target is None:
        return
    chat, words = target
    storage = bot.runtime.storage
    categories = bot.runtime.news.categories
    remote = chat.id != (update.effective_chat.id if update.effective_chat else None)
    name = escape(_chat_name(chat))
    if not words:
        subscribed = await storage.chats.subscriptions(chat.id)
        if remote:
            prompt = (
                _("Tap to subscribe or unsubscribe for {chat}:")
                if subscribe
                else _("Tap to unsubscribe for {chat}:")
            ).format(chat=name)
        else:
            prompt = (
                _("Tap to subscribe or unsubscribe:") if subscribe else _("Tap to unsubscribe:")
            )
        await reply(
            update,
            context,
            prompt,
            categories_keyboard(categories, subscribed, chat.id if remote else None),
        )
        return
    now = bot.runtime.clock.now()
    if not subscribe and len(words) == 1 and words[0].lower() == "all":
        removed = await storage.chats.unsubscribe(chat.id, None)
        if remote:
            answer = (
                _("Unsubscribed for {chat} from everything.")
                if removed
                else _("No subscriptions for {chat} to remove.")
            ).format(chat=name)
        else:
            answer = (
                _("Unsubscribed from everything.") if removed else _("No subscriptions to remove.")
            )
        await reply(update, context, answer)
        return
    lookup = resolve_categories(words, categories)
    parts = []
    if lookup.found:
        ids = [c.id for c in lookup.found]
        if subscribe:
            await storage.chats.upsert_chat(
                chat.id,
                chat.type,
                chat.title or chat.full_name,
                chat.username,
                now,
                reactivate=True,
            )
            topic = None if remote else topic_of(update.effective_message, chat)
            added = await storage.chats.subscribe(chat.id, ids, now, topic=topic)
            already = [c for c in lookup.found if c.id not in added]
            if added:
                titles = _titles([c for c in lookup.found if c.id in added])
                if remote:
                    text = _("Subscribed for {chat} to {categories}.")
                elif topic:
                    text = _("Subscribed to {categories} in {topic}.")
                else:
                    text = _("Subscribed to {categories}.")
                parts.append(
                    text.format(
                        chat=name, categories=titles, topic=topic_label(topic) if topic else ""
                    )
                )
            if already:
                parts.append(
                    _("Already subscribed to {categories}.").format(categories=_titles(already))
                )
        else:
            removed = await storage.chats.unsubscribe(chat.id, ids)
            if removed:
                titles = _titles([c for c in lookup.found if c.id in removed])
                text = (
                    _("Unsubscribed for {chat} from {categories}.")
                    if remote
                    else _("Unsubscribed from {categories}.")
                )
                parts.append(text.format(chat=name, categories=titles))
            not_subscribed = [c for c in lookup.found if c.id not in removed]
            if not_subscribed:
                parts.append(
                    _("Wasn't subscribed to {categories}.").format(
                        categories=_titles(not_subscribed)
                    )
                )
    if lookup.unknown or not parts:
        # Words of separators alone ("/subscribe ,") name nothing at all. Never
        # reply with an empty text: PTB's Defaults turn "" into "[]" (it takes
        # an empty string for an empty list of poll options) and Telegram shows that.
        parts.append(escape(unknown_categories_message(lookup.unknown, t)))
    await reply(update, context, " ".join(parts))


async def mysubs(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/mysubs [@channel]: what this chat (or channel) receives."""
    bot = services(context)
    args = _args(context)
    _ = (await chat_translator(update, context)).gettext
    if len(args) > 1:
        await reply(
            update, context, _("Use /mysubs, or /mysubs @channel for a channel you manage.")
        )
        return
    target = await _target_chat(update, context, args, changing=False)
    if target is None:
        return
    chat = target[0]
    ids = await bot.runtime.storage.chats.subscriptions(chat.id)
    found = [c for c in bot.runtime.news.categories if c.id in ids]
    here = update.effective_chat
    this = here is not None and chat.id == here.id
    name = escape(_chat_name(chat))
    if not found:
        text = (
            _("This chat has no subscriptions. Try /subscribe.")
            if this
            else _("{chat} has no subscriptions. Try /subscribe.")
        )
        await reply(update, context, text.format(chat=name))
        return
    if chat.is_forum:
        topics = await bot.runtime.storage.chats.subscription_topics(chat.id)
        listed = subscriptions_by_topic(found, topics)
    else:
        listed = _titles(found)
    text = _("This chat receives: {categories}.") if this else _("{chat} receives: {categories}.")
    await reply(update, context, text.format(chat=name, categories=listed))


def is_toggle(data: object) -> bool:
    """The data of a category button (the CallbackQueryHandler's pattern)."""
    return isinstance(data, str) and parse_toggle(data) is not None


async def toggle_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A category button: subscribe or unsubscribe what its label promises."""
    query = update.callback_query
    toggle = parse_toggle(query.data or "") if query is not None else None
    if query is None or toggle is None:
        return
    bot = services(context)
    t = await chat_translator(update, context)
    _ = t.gettext
    category = bot.runtime.news.category(toggle.category_id)
    if category is None:
        await query.answer(_("That category no longer exists. Send /categories again."))
        return
    chat: Chat | ChatFullInfo | None
    if toggle.chat_id is None:
        chat = update.effective_chat
    else:
        try:
            chat = await context.bot.get_chat(toggle.chat_id)
        except TelegramError:
            await query.answer(_("I can't reach that chat any more."))
            return
    if chat is None:
        await query.answer()
        return
    verdict = await bot.permissions.can_manage(chat, query.from_user.id)
    if not verdict.allowed:
        await query.answer(_alert(verdict.explained(t)), show_alert=True)
        return
    storage = bot.runtime.storage
    now = bot.runtime.clock.now()
    if toggle.subscribe is None:
        note = _(
            "These buttons were out of date; they now show what this chat receives. Tap again."
        )
    elif toggle.subscribe:
        await storage.chats.upsert_chat(
            chat.id, chat.type, chat.title or chat.full_name, chat.username, now, reactivate=True
        )
        topic = topic_of(query.message if isinstance(query.message, Message) else None, chat)
        added = await storage.chats.subscribe(chat.id, [category.id], now, topic=topic)
        note = (
            _("Subscribed to {category}") if added else _("Already subscribed to {category}")
        ).format(category=category.title)
    else:
        removed = await storage.chats.unsubscribe(chat.id, [category.id])
        note = (
            _("Unsubscribed from {category}") if removed else _("Wasn't subscribed to {category}")
        ).format(category=category.title)
    await query.answer(_alert(note))
    subscribed = await storage.chats.subscriptions(chat.id)
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_reply_markup(
                categories_keyboard(bot.runtime.news.categories, subscribed, toggle.chat_id)
            )
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                raise


async def forwarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post forwarded into a private chat: selects its channel, the one way
    to name a private channel, which has no @name and an id nobody knows."""
    message = update.effective_message
    if message is None:
        return
    origin = message.forward_origin
    _ = (await chat_translator(update, context)).gettext
    if isinstance(origin, MessageOriginChat):
        await reply(
            update,
            context,
            _(
                "That was posted in a group. To set up a group, add me to it and send "
                "/subscribe there. To set up a channel, forward me any post from the channel."
            ),
        )
        return
    if not isinstance(origin, MessageOriginChannel):
        await reply(
            update,
            context,
            _(
                "That message comes from a person, not a channel. To set up a channel, "
                "forward me any post from the channel."
            ),
        )
        return
    source = origin.chat
    user_id = update.effective_user.id if update.effective_user else None
    channel = await _remote_chat(
        update,
        context,
        source.id,
        user_id,
        source.title or _("channel {id}").format(id=source.id),
    )
    if channel is None:
        return
    bot = services(context)
    subscribed = await bot.runtime.storage.chats.subscriptions(channel.id)
    text = _(
        "<b>{name}</b> (id <code>{id}</code>). "
        "Tap to subscribe or unsubscribe:\n\n"
        "<code>/mysubs {id}</code> shows what it receives, and "
        "<code>/subscribe {id} …</code> or <code>/unsubscribe {id} all</code> "
        "work with this id too."
    ).format(name=escape(_chat_name(channel)), id=channel.id)
    await reply(
        update,
        context,
        text,
        categories_keyboard(bot.runtime.news.categories, subscribed, channel.id),
    )
