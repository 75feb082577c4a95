"""Telegram handlers: parse the arguments, call a service, reply. Thin.

Every reply is HTML with all user and feed text escaped. A handler never lets
bad input escape as an exception: unknown categories, too many arguments,
empty searches and forged button data get a short answer or are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import (
    Chat,
    ChatFullInfo,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.config import CategoryConfig
from bot.deliver import Sender
from bot.i18n import N_, Translator
from bot.render import escape, render_list
from bot.runtime import Runtime
from bot.services import resolve_categories
from bot.telegram.alerts import OperatorAlerts
from bot.telegram.args import (
    MAX_ARGUMENTS,
    LatestArgs,
    Toggle,
    parse_latest,
    parse_search_data,
    parse_toggle,
    search_data,
    split_target,
    toggle_data,
    unknown_categories_message,
)
from bot.telegram.permissions import PermissionChecker, Verdict, bot_may_post
from bot.telegram.topics import subscriptions_by_topic, topic_label, topic_of
from bot.telegram.translation import chat_translator, chat_zone
from bot.text import cut_at_word

log = logging.getLogger(__name__)

SEARCH_PAGE = 5
# A command posted in a channel and its answer are deleted after this long,
# when the bot may delete messages there: every subscriber sees them.
CHANNEL_CLEANUP_SECONDS = 30.0
MAX_MESSAGE_LENGTH = 4096  # Telegram's limit, in UTF-16 code units
ALERT_LIMIT = 200
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# Descriptions in English, translated where shown (/help, the command menu
# of each language).
COMMANDS: list[tuple[str, str]] = [
    ("start", N_("What this bot does, and pick categories")),
    ("categories", N_("All categories and this week's article counts")),
    ("subscribe", N_("Subscribe: /subscribe space science")),
    ("unsubscribe", N_("Unsubscribe: /unsubscribe space, or all")),
    ("mysubs", N_("What this chat receives")),
    ("filter", N_("Keyword filters: /filter +mars -rumor, or clear")),
    ("digest", N_("One digest message at set times: /digest 08:00 18:00, or off")),
    ("quiet", N_("Hold cards at night: /quiet 23:00-07:00, or off")),
    ("latest", N_("Newest headlines: /latest [category] [N]")),
    ("search", N_("Search headlines: /search words")),
    ("link", N_("Follow links, a QR code and a web button: /link space")),
    ("settings", N_("Card options, time zone, pause: buttons for each")),
    ("pause", N_("No new cards until /resume")),
    ("resume", N_("New cards again after /pause")),
    ("timezone", N_("Times in your zone: /timezone Europe/Berlin")),
    ("language", N_("The bot's language here: /language de")),
    ("whoami", N_("Your user id and this chat's id")),
    ("health", N_("Feed status, for the bot's operators")),
    ("reload", N_("Read the config file again, for the bot's operators")),
    ("help", N_("How to use the bot, in chats, groups and channels")),
]


@dataclass
class BotServices:
    """What handlers need, stored in ``application.bot_data``."""

    runtime: Runtime
    sender: Sender
    permissions: PermissionChecker
    alerts: OperatorAlerts


def services(context: ContextTypes.DEFAULT_TYPE) -> BotServices:
    found = context.bot_data["services"]
    assert isinstance(found, BotServices)
    return found


async def reply(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    news: bool = False,
) -> None:
    """Answer the message being handled. In a channel every subscriber reads
    the answer, so unless it is ``news`` (headlines an admin asked for on
    purpose) it says how to configure from a private chat instead, and, when
    the bot may delete messages there, the command and the answer go away
    after ``CHANNEL_CLEANUP_SECONDS``."""
    message = update.effective_message
    if message is None:
        return
    chat_id = message.chat.id
    tidy = False
    if update.channel_post is not None and not news:
        tidy = context.job_queue is not None and await services(context).permissions.bot_can_delete(
            chat_id
        )
        text = _with_channel_note(text, chat_id, tidy, await chat_translator(update, context))
    try:
        sent = await message.reply_text(
            text, reply_markup=markup, link_preview_options=NO_PREVIEW, do_quote=False
        )
    except (BadRequest, Forbidden) as error:
        # The bot may read a chat it cannot write to: a channel admin without
        # the "Post messages" right, a restricted group member. Nobody can be
        # told; anything else is our own mistake and goes to the error handler.
        if isinstance(error, BadRequest) and "rights" not in error.message.lower():
            raise
        log.info("telegram: cannot answer in chat %s: %s", chat_id, error)
        return
    if tidy and context.job_queue is not None:
        context.job_queue.run_once(
            _delete_messages,
            when=CHANNEL_CLEANUP_SECONDS,
            data=(chat_id, [message.message_id, sent.message_id]),
            name=f"tidy-channel-{chat_id}-{sent.message_id}",
        )


def _with_channel_note(text: str, chat_id: int, tidy: bool, t: Translator) -> str:
    _ = t.gettext
    seconds = f"{CHANNEL_CLEANUP_SECONDS:g}"
    if tidy:
        note = _(
            "<i>I'll delete this and your command in {seconds} s. Next time, configure "
            "from a private chat with me: <code>/subscribe {chat_id} …</code></i>"
        ).format(seconds=seconds, chat_id=chat_id)
    else:
        note = _(
            "<i>Every subscriber sees this: configure from a private chat with me "
            "(<code>/subscribe {chat_id} …</code>), or let me delete messages here.</i>"
        ).format(chat_id=chat_id)
    combined = f"{text}\n\n{note}"
    # The answer itself matters more than the note: never push it past the limit.
    return combined if len(combined.encode("utf-16-le")) // 2 <= MAX_MESSAGE_LENGTH else text


async def _delete_messages(context: ContextTypes.DEFAULT_TYPE) -> None:
    """A JobQueue job: delete a channel command and its answer."""
    job = context.job
    if job is None or not isinstance(job.data, tuple):
        return
    chat_id, message_ids = job.data
    for message_id in message_ids:
        try:
            await context.bot.delete_message(chat_id, message_id)
        except TelegramError as error:
            # Already deleted by an admin, or the right was taken back meanwhile.
            log.info("telegram: cannot delete message %s in %s: %s", message_id, chat_id, error)


def _alert(text: str) -> str:
    """A callback answer: Telegram refuses more than 200 characters (a channel
    title alone may have 128)."""
    return cut_at_word(text, ALERT_LIMIT)


def _args(context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    return list(context.args or [])


async def _remember_chat(bot: BotServices, chat: Chat | ChatFullInfo) -> None:
    await bot.runtime.storage.chats.upsert_chat(
        chat.id, chat.type, chat.title or chat.full_name, chat.username, bot.runtime.clock.now()
    )


def _titles(categories: Sequence[CategoryConfig]) -> str:
    return ", ".join(escape(c.title) for c in categories)


def categories_keyboard(
    categories: Sequence[CategoryConfig], subscribed: Sequence[str], target: int | None = None
) -> InlineKeyboardMarkup:
    rows = []
    row: list[InlineKeyboardButton] = []
    for category in categories:
        # "✓ Space" unsubscribes, "Space" subscribes: the button carries what
        # its label promises, so an old keyboard never does the opposite.
        following = category.id in subscribed
        mark = "✓ " if following else ""
        data = toggle_data(category.id, target, subscribe=not following)
        row.append(InlineKeyboardButton(f"{mark}{category.title}", callback_data=data))
        if len(row) == 2:
            rows.append(row)
            row = []
    if row:
        rows.append(row)
    return InlineKeyboardMarkup(rows)


# -- commands ------------------------------------------------------------


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
    from bot.telegram.feed_handlers import operator_help  # it imports this module

    lines += await operator_help(update, context)
    await reply(update, context, "\n".join(lines))


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


async def latest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/latest [category] [N]: the newest headlines."""
    bot = services(context)
    parsed = parse_latest(_args(context), bot.runtime.news.categories)
    t = await chat_translator(update, context)
    _ = t.gettext
    if not isinstance(parsed, LatestArgs):
        await reply(update, context, escape(parsed.text(t)))
        return
    category = parsed.category
    chat = update.effective_chat
    articles, filtered = await bot.runtime.news.latest_for_chat(
        chat.id if chat else 0, category.id if category else None, parsed.limit
    )
    if not articles:
        if category and filtered:
            empty = _("No recent headlines in {category} pass this chat's filters (see /filter).")
        elif filtered:
            empty = _("No recent headlines pass this chat's filters (see /filter).")
        elif category:
            empty = _("No headlines in {category} yet.")
        else:
            empty = _("No headlines yet.")
        await reply(
            update, context, escape(empty.format(category=category.title if category else ""))
        )
        return
    if category:
        heading = _("Latest in {category} (filtered)") if filtered else _("Latest in {category}")
    else:
        heading = _("Latest headlines (filtered)") if filtered else _("Latest headlines")
    heading = heading.format(category=category.title if category else "")
    await reply(
        update,
        context,
        render_list(heading, articles, t=t, zone=await chat_zone(update, context)),
        news=True,
    )


async def search(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/search words: best matches, with a button for more."""
    query = " ".join(_args(context)).strip()
    if not query:
        _ = (await chat_translator(update, context)).gettext
        await reply(
            update, context, _("What should I look for? Try <code>/search mars rover</code>.")
        )
        return
    await _send_search_page(update, context, query, 0, edit=False)


async def _send_search_page(
    update: Update, context: ContextTypes.DEFAULT_TYPE, query: str, offset: int, *, edit: bool
) -> None:
    bot = services(context)
    t = await chat_translator(update, context)
    _ = t.gettext
    # One extra row tells whether a "More" button is worth showing.
    found = await bot.runtime.news.search(query, SEARCH_PAGE + 1, offset)
    shown = found[:SEARCH_PAGE]
    short = query if len(query) <= 60 else query[:60] + "…"
    if not shown:
        text = escape(
            _('Nothing found for "{query}".').format(query=short)
            if offset == 0
            else _("No more results.")
        )
        markup = None
    else:
        heading = _('Results for "{query}"').format(query=short)
        text = render_list(
            heading, shown, first_number=offset + 1, t=t, zone=await chat_zone(update, context)
        )
        markup = None
        if len(found) > SEARCH_PAGE:
            key = await bot.runtime.storage.state.remember_search(query, bot.runtime.clock.now())
            data = search_data(key, offset + SEARCH_PAGE)
            markup = InlineKeyboardMarkup([[InlineKeyboardButton(_("More ›"), callback_data=data)]])
    message = update.effective_message
    if edit and message is not None:
        try:
            await message.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
        except BadRequest as error:
            # A double tap on "More" asks twice for the page the message shows.
            if "not modified" not in error.message.lower():
                raise
    else:
        await reply(update, context, text, markup, news=bool(shown))


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


# -- buttons -------------------------------------------------------------


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Inline buttons: category toggles and search paging. Data is never trusted."""
    query = update.callback_query
    if query is None:
        return
    data = query.data or ""
    bot = services(context)
    _ = (await chat_translator(update, context)).gettext
    toggle = parse_toggle(data)
    if toggle is not None:
        await _toggle(update, context, bot, toggle)
        return
    page = parse_search_data(data)
    if page is not None:
        text = page.words
        if page.key is not None:
            text = await bot.runtime.storage.state.recall_search(page.key)
        if text is None:
            await query.answer(_("This search has expired. Send /search again."))
            return
        await query.answer()
        await _send_search_page(update, context, text, page.offset, edit=True)
        return
    await query.answer(_("This button has expired."))


async def _toggle(
    update: Update, context: ContextTypes.DEFAULT_TYPE, bot: BotServices, toggle: Toggle
) -> None:
    query = update.callback_query
    assert query is not None
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


# -- chat membership -----------------------------------------------------


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


# -- helpers -------------------------------------------------------------


def _chat_name(chat: Chat | ChatFullInfo) -> str:
    if chat.username:
        return f"@{chat.username}"
    return chat.title or chat.full_name or str(chat.id)


def _is_stand_in(message: Message) -> bool:
    """Sent on behalf of a chat (a channel post, an anonymous group admin, a
    linked channel): ``from`` is then a placeholder bot, not the person."""
    return message.sender_chat is not None


def _names_this_chat(reference: str | int, here: Chat) -> bool:
    if reference == here.id:
        return True
    # Usernames are case-insensitive, and a chat without one has no @name (a
    # plain f"@{here.username}" once made "@None" name every such chat).
    return (
        isinstance(reference, str)
        and here.username is not None
        and reference.casefold() == f"@{here.username}".casefold()
    )


async def _target_chat(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    args: list[str],
    *,
    changing: bool = True,
) -> tuple[Chat | ChatFullInfo, list[str]] | None:
    """The chat a subscription command is about, after checking the sender may
    change it (or, for another chat, see it); replies and returns None otherwise."""
    bot = services(context)
    here = update.effective_chat
    message = update.effective_message
    if here is None or message is None:
        return None
    reference, rest = split_target(args)
    t = await chat_translator(update, context)
    sender_chat_id = message.sender_chat.id if message.sender_chat else None
    user_id = update.effective_user.id if update.effective_user else None
    if reference is None or _names_this_chat(reference, here):
        # Anyone in a chat may see its own subscriptions: /start and
        # /categories show them to every member anyway.
        verdict = (
            await bot.permissions.can_manage(here, user_id, sender_chat_id)
            if changing
            else Verdict(True)
        )
        if not verdict.allowed:
            await reply(update, context, escape(verdict.explained(t)))
            return None
        await _remember_chat(bot, here)
        return here, rest
    if here.type != ChatType.PRIVATE:
        await reply(update, context, t.gettext("Configure channels from a private chat with me."))
        return None
    target = await _remote_chat(update, context, reference, user_id, str(reference))
    return None if target is None else (target, rest)


async def _remote_chat(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    reference: str | int,
    user_id: int | None,
    shown: str,
) -> ChatFullInfo | None:
    """Another chat, named from a private chat (by @name, id or a forwarded
    post), after checking that the user manages it and the bot may post
    there; replies and returns None otherwise. ``shown`` names it to the user."""
    bot = services(context)
    t = await chat_translator(update, context)
    _ = t.gettext
    try:
        target = await context.bot.get_chat(reference)
    except (BadRequest, Forbidden):
        await reply(
            update,
            context,
            escape(
                _(
                    "I can't find {chat}. Add me to the channel as an administrator "
                    "who can post messages, then try again."
                ).format(chat=shown)
            ),
        )
        return None
    if target.type not in (ChatType.CHANNEL, ChatType.GROUP, ChatType.SUPERGROUP):
        await reply(update, context, _("You can configure only channels and groups you manage."))
        return None
    verdict = (
        await bot.permissions.can_manage_channel(target, user_id)
        if target.type == ChatType.CHANNEL
        else await bot.permissions.can_manage(target, user_id)
    )
    if not verdict.allowed:
        await reply(update, context, escape(verdict.explained(t)))
        return None
    await _remember_chat(bot, target)
    return target
