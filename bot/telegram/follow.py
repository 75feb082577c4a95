"""Follow links: deep links that open the bot and subscribe a chat, the
story a shared card links to, and ``/link`` that hands them to a site owner.

- ``t.me/<bot>?start=sub-space-science`` opens a private chat with
  ``/start sub-space-science``: the bot names the categories and subscribes
  after one tap on its button (a link can be opened by accident; a tap is
  the user's own choice).
- ``t.me/<bot>?startgroup=sub-space`` lets the user pick a group; Telegram
  adds the bot and sends ``/start sub-space`` there from the user, who must
  be one of its admins (``PermissionChecker.can_manage``).
- ``t.me/<bot>?start=a-123`` shows stored story 123 (the Share button's link).
- ``/link [category …]`` gives those links, the follow link's QR code and an
  HTML button to paste into a web page; the channel link asks Telegram for
  the "Post messages" right, and the channel is then set up from a private
  chat (``/subscribe @channel …``): Telegram sends nothing into a channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden
from telegram.ext import ContextTypes

from bot.card_messages import send_card
from bot.config import CategoryConfig
from bot.render import escape, render_card
from bot.services import resolve_categories
from bot.telegram.about_handlers import welcome
from bot.telegram.args import MAX_ARGUMENTS, unknown_categories_message
from bot.telegram.handlers import BotServices, categories_keyboard, reply, services
from bot.telegram.links import (
    ArticlePayload,
    BadPayload,
    FollowPayload,
    article_link,
    bot_link,
    channel_link,
    follow_button_html,
    follow_payload,
    follow_qr_png,
    group_link,
    parse_start_payload,
    start_link,
)
from bot.telegram.translation import chat_translator, chat_zone

log = logging.getLogger(__name__)

# The confirming button's callback data: this prefix and the category ids
# joined by "-" as in the payload. A payload has at most 60 characters after
# "sub-", so the data stays within Telegram's 64 bytes.
CONFIRM_PREFIX = "fo:"
CONFIRM_PATTERN = r"^fo:"


def _titles(categories: Sequence[CategoryConfig]) -> str:
    return ", ".join(escape(c.title) for c in categories)


def _known(bot: BotServices, ids: Sequence[str]) -> tuple[list[CategoryConfig], list[str]]:
    found, missing = [], []
    for category_id in ids:
        category = bot.runtime.news.category(category_id)
        if category is None:
            missing.append(category_id)
        elif category not in found:
            found.append(category)
    return found, missing


async def start_with_payload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start PAYLOAD: what a deep link asks for."""
    args = list(context.args or [])
    payload = parse_start_payload(args[0] if len(args) == 1 else " ".join(args))
    if isinstance(payload, FollowPayload):
        await _follow(update, context, payload)
    elif isinstance(payload, ArticlePayload):
        await _show_article(update, context, payload.article_id)
    else:
        await _bad_link(update, context, payload)


async def _bad_link(
    update: Update, context: ContextTypes.DEFAULT_TYPE, payload: BadPayload
) -> None:
    log.info("telegram: /start with an unknown payload %r", payload.payload[:80])
    _ = (await chat_translator(update, context)).gettext
    await welcome(
        update,
        context,
        _("<i>That link doesn't lead anywhere I know (it may have been cut short).</i>"),
    )


async def _follow(
    update: Update, context: ContextTypes.DEFAULT_TYPE, payload: FollowPayload
) -> None:
    bot = services(context)
    chat = update.effective_chat
    message = update.effective_message
    if chat is None or message is None:
        return
    t = await chat_translator(update, context)
    _ = t.gettext
    found, missing = _known(bot, payload.category_ids)
    if not found:
        text = _(
            "The categories in this link no longer exist here. Tap the ones you'd like to follow:"
        )
        subscribed = await bot.runtime.storage.chats.subscriptions(chat.id)
        await reply(
            update, context, text, categories_keyboard(bot.runtime.news.categories, subscribed)
        )
        return
    gone = (
        "\n\n" + _("(No longer here: {categories}.)").format(categories=escape(", ".join(missing)))
        if missing
        else ""
    )
    if chat.type == ChatType.PRIVATE:
        data = CONFIRM_PREFIX + "-".join(c.id for c in found)
        markup = InlineKeyboardMarkup([[InlineKeyboardButton(_("✓ Follow"), callback_data=data)]])
        question = _(
            "<b>Follow {categories}?</b>\n\nNew stories arrive here as cards. "
            "/mysubs shows what you follow, /unsubscribe stops it."
        ).format(categories=_titles(found))
        await reply(update, context, question + gone, markup)
        return
    # A group the user picked from a ?startgroup= link (or anyone typing the
    # command): only its admins change what it receives.
    sender_chat_id = message.sender_chat.id if message.sender_chat else None
    user_id = update.effective_user.id if update.effective_user else None
    verdict = await bot.permissions.can_manage(chat, user_id, sender_chat_id)
    if not verdict.allowed:
        await reply(update, context, escape(verdict.explained(t)))
        return
    added = await _subscribe(bot, chat.id, chat.type, chat.title, chat.username, found)
    text = (
        _("This chat now receives {categories}. /mysubs shows it, /unsubscribe stops it.")
        if added
        else _("This chat already receives {categories}. /mysubs shows it, /unsubscribe stops it.")
    ).format(categories=_titles(found))
    await reply(update, context, text + gone)


async def _subscribe(
    bot: BotServices,
    chat_id: int,
    chat_type: str,
    title: str | None,
    username: str | None,
    categories: Sequence[CategoryConfig],
) -> list[str]:
    storage = bot.runtime.storage
    now = bot.runtime.clock.now()
    await storage.chats.upsert_chat(chat_id, chat_type, title, username, now, reactivate=True)
    return await storage.chats.subscribe(chat_id, [c.id for c in categories], now)


async def confirm_follow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "✓ Follow" button under a follow link's question. Data is never trusted."""
    query = update.callback_query
    if query is None:
        return
    bot = services(context)
    t = await chat_translator(update, context)
    _ = t.gettext
    message = query.message
    chat = message.chat if isinstance(message, Message) else None
    ids = (query.data or "").removeprefix(CONFIRM_PREFIX).split("-")
    found = _known(bot, ids)[0]
    if chat is None or not found:
        await query.answer(_("This button has expired. Open the link again."))
        return
    verdict = await bot.permissions.can_manage(chat, query.from_user.id)
    if not verdict.allowed:
        await query.answer(verdict.explained(t)[:200], show_alert=True)
        return
    added = await _subscribe(
        bot, chat.id, chat.type, chat.title or chat.full_name, chat.username, found
    )
    await query.answer(_("Subscribed") if added else _("Already subscribed"))
    assert isinstance(message, Message)
    try:
        await message.edit_text(
            _(
                "✓ You now follow {categories}. /mysubs shows what you follow, "
                "/unsubscribe stops it."
            ).format(categories=_titles(found))
        )
    except BadRequest as error:
        # A double tap: the message already says so.
        if "not modified" not in error.message.lower():
            raise


async def _show_article(
    update: Update, context: ContextTypes.DEFAULT_TYPE, article_id: int
) -> None:
    bot = services(context)
    chat = update.effective_chat
    if chat is None:
        return
    t = await chat_translator(update, context)
    _ = t.gettext
    article = await bot.runtime.news.article(article_id)
    if article is None:
        await reply(
            update,
            context,
            _(
                "That story is no longer in my archive. /latest shows the newest ones, "
                "/search finds older ones."
            ),
        )
        return
    username = context.bot.username
    titles = {c.id: c.title for c in bot.runtime.news.categories}
    card = render_card(
        article,
        titles,
        article_link=article_link(username, article.id),
        t=t,
        zone=await chat_zone(update, context),
    )
    await send_card(context.bot.send_message, chat.id, card)
    found = _known(bot, article.categories)[0]
    if chat.type == ChatType.PRIVATE and found:
        subscribed = await bot.runtime.storage.chats.subscriptions(chat.id)
        await reply(
            update,
            context,
            _("More like this: tap to follow."),
            categories_keyboard(found, subscribed),
        )


async def link_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/link [category …]: follow links, a QR code and a web button for a site."""
    bot = services(context)
    message = update.effective_message
    if message is None:
        return
    args = list(context.args or [])
    t = await chat_translator(update, context)
    _ = t.gettext
    if len(args) > MAX_ARGUMENTS:
        await reply(update, context, _("Too many arguments. Try <code>/link space science</code>."))
        return
    username = context.bot.username
    found: list[CategoryConfig] = []
    if args:
        lookup = resolve_categories(args, bot.runtime.news.categories)
        if lookup.unknown or not lookup.found:
            await reply(update, context, escape(unknown_categories_message(lookup.unknown, t)))
            return
        found = lookup.found
    payload = follow_payload([c.id for c in found]) if found else None
    if found and payload is None:
        await reply(
            update,
            context,
            _(
                "That's too many categories for one link (Telegram allows 64 characters). "
                "Name fewer, or make one link per category."
            ),
        )
        return
    follow = start_link(username, payload) if payload else bot_link(username)
    what = _titles(found) if found else _("the categories they pick")
    lines = [
        _("<b>Links to follow {categories} on Telegram</b>").format(categories=what),
        "",
        _("Private chat (one tap to confirm): {link}").format(link=escape(follow)),
    ]
    if payload:
        lines.append(
            _("A group (its admin picks it): {link}").format(
                link=escape(group_link(username, payload))
            )
        )
    lines += [
        _("A channel: {link}, then {command} here").format(
            link=escape(channel_link(username)),
            command="<code>/subscribe @yourchannel "
            f"{escape(' '.join(c.id for c in found) or 'space')}</code>",
        ),
        "",
        _("A button for your web page:"),
        f'<pre><code class="language-html">{escape(follow_button_html(follow, t))}</code></pre>',
    ]
    try:
        await message.reply_photo(
            follow_qr_png(follow),
            caption=_("Scan to follow {categories} on Telegram: {link}").format(
                categories=what, link=escape(follow)
            ),
            filename="follow-on-telegram.png",
            do_quote=False,
        )
    except Forbidden as error:
        # As for any answer (handlers.reply): a chat the bot may read but
        # not post in. The links below say the same without the picture.
        log.info("telegram: cannot send the QR code to %s: %s", message.chat.id, error)
    await reply(update, context, "\n".join(lines))
