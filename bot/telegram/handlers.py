"""What every Telegram handler shares: the services (``BotServices``), the
one way to answer (``reply``, which also keeps channels tidy), the chat a
command is about (``_target_chat``, with its permission checks), the
category keyboard, and the command list (``COMMANDS``: the menu and /help).

The handlers themselves live by subject: ``about_handlers`` (/start, /help,
/whoami, /health), ``subscription_handlers``, ``headline_handlers``
(/latest, /search), ``membership_handlers``, ``feed_handlers`` and the
other ``*_handlers`` modules. Each is thin: parse the arguments, call a
service, reply. Every reply is HTML with all user and feed text escaped. A
handler never lets bad input escape as an exception: unknown categories, too
many arguments, empty searches and forged button data get a short answer or
are ignored.
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
    Update,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot.config import CategoryConfig
from bot.deliver import Sender
from bot.i18n import N_, Translator
from bot.render import escape
from bot.runtime import Runtime
from bot.telegram.alerts import OperatorAlerts
from bot.telegram.args import split_target, toggle_data
from bot.telegram.permissions import PermissionChecker, Verdict
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word

log = logging.getLogger(__name__)

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
) -> Message | None:
    """Answer the message being handled; the answer sent, or None when the
    bot may not write there. In a channel every subscriber reads
    the answer, so unless it is ``news`` (headlines an admin asked for on
    purpose) it says how to configure from a private chat instead, and, when
    the bot may delete messages there, the command and the answer go away
    after ``CHANNEL_CLEANUP_SECONDS``."""
    message = update.effective_message
    if message is None:
        return None
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
        return None
    if tidy and context.job_queue is not None:
        context.job_queue.run_once(
            _delete_messages,
            when=CHANNEL_CLEANUP_SECONDS,
            data=(chat_id, [message.message_id, sent.message_id]),
            name=f"tidy-channel-{chat_id}-{sent.message_id}",
        )
    return sent


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


async def expired_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Any button no other handler knows: an old keyboard, or forged data."""
    query = update.callback_query
    if query is None:
        return
    _ = (await chat_translator(update, context)).gettext
    await query.answer(_("This button has expired."))


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
