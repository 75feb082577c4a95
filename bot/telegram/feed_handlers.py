"""The operators' feed commands: /addfeed, /removefeed, /feeds, /feed,
/export, and OPML documents sent to the bot. Thin: check the operator, call
``bot.feed_admin`` (the services the CLI uses), reply.

Only the users listed in ``[telegram] admins`` may use them, checked on every
command and on every button press (a forwarded keyboard gives nobody else a
way in); anyone else gets a short refusal. Their buttons are pressed in
``feed_button_handlers``, drawn by ``feed_views``, and what they stand for
waits in ``feed_pending``.
"""

from __future__ import annotations

import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message, Update
from telegram.constants import ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot.errors import NewsbotError
from bot.feed_admin import FeedAdmin, checked_feed_url
from bot.i18n import N_, Translator
from bot.models import FeedHealth
from bot.opml import MAX_OPML_BYTES, parse_opml
from bot.render import escape
from bot.telegram.feed_buttons import feed_data, token_data
from bot.telegram.feed_pending import Pending, pending_store, running_discoveries
from bot.telegram.feed_views import (
    PAGE_SIZE,
    category_titles,
    choice_markup,
    choice_text,
    details_markup,
    details_text,
    found_markup,
    found_text,
    page_markup,
    page_text,
    removed_text,
)
from bot.telegram.handlers import NO_PREVIEW, BotServices, _is_stand_in, reply, services
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word

log = logging.getLogger(__name__)


SHOWN_IMPORTS = 15  # feeds listed one by one in an OPML preview
OPML_SUFFIXES = (".opml", ".xml")
EXPORT_NAME = "newsbot-feeds.opml"

OPERATOR_COMMANDS: list[tuple[str, str]] = [
    ("addfeed", N_("Add a feed or a site: /addfeed URL [category …]")),
    ("removefeed", N_("Stop polling a feed added at runtime: /removefeed ID|URL")),
    ("feeds", N_("Every feed and its state, page by page")),
    ("feed", N_("One feed, with Check now, Pause/Resume, Remove: /feed ID")),
    ("export", N_("All feeds as an OPML file (send one back to import it)")),
]


# -- who may, and in which language -----------------------------------------


def _is_operator(bot: BotServices, update: Update) -> bool:
    user = update.effective_user
    message = update.effective_message
    if user is None or (message is not None and _is_stand_in(message)):
        return False
    return user.id in bot.runtime.config.telegram.admins


async def _operators_only(
    update: Update, context: ContextTypes.DEFAULT_TYPE
) -> tuple[BotServices, Translator] | None:
    """The services and the chat's translator for an operator; None (after
    a short refusal) for anyone else."""
    bot = services(context)
    tr = await chat_translator(update, context)
    if not _is_operator(bot, update):
        await _refuse(update, context, tr)
        return None
    return bot, tr


async def operator_help(update: Update, context: ContextTypes.DEFAULT_TYPE) -> list[str]:
    """The lines /help adds for an operator (none for anyone else)."""
    bot = services(context)
    if not _is_operator(bot, update):
        return []
    _ = (await chat_translator(update, context)).gettext
    return [
        "",
        "<b>" + escape(_("For operators")) + "</b>",
        *(f"/{name} — {escape(_(text))}" for name, text in OPERATOR_COMMANDS),
        escape(_("Send me an OPML file to import its feeds.")),
    ]


async def _refuse(update: Update, context: ContextTypes.DEFAULT_TYPE, tr: Translator) -> None:
    await reply(update, context, escape(tr.gettext("This command is for the bot's operators.")))


def _admin(bot: BotServices) -> FeedAdmin:
    return FeedAdmin.for_runtime(bot.runtime)


# -- commands ----------------------------------------------------------------


async def addfeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addfeed URL [category …]: "Looking…" at once; the discovery then runs
    beside every other chat's updates and turns that message into what it
    found, with Add / Cancel, or into why it found nothing."""
    bot = services(context)
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if not _is_operator(bot, update):
        await _refuse(update, context, tr)
        return
    args = list(context.args or [])
    if not args:
        await reply(update, context, escape(_("Usage: /addfeed URL [category …]")))
        return
    admin = _admin(bot)
    try:
        url = checked_feed_url(args[0])
        categories = admin.checked_categories(args[1:])
        listed = await admin.listed(url)
    except NewsbotError as error:
        await reply(update, context, escape(cut_at_word(str(error), 1500)))
        return
    if listed is not None:
        await reply(update, context, *_already_listed(tr, listed))
        return
    user = update.effective_user
    assert user is not None  # an operator
    discoveries = running_discoveries(context.bot_data)
    if discoveries.running(user.id, url):
        # A second tap of the same command: one lookup, one preview, one Add.
        text = _("I'm already looking for feeds at {url}: the answer is on its way.")
        await reply(update, context, escape(text.format(url=url)))
        return
    # PTB handles updates one at a time, and a discovery may take up to
    # DISCOVERY_SECONDS: as a task of the application it holds up nobody, its
    # errors still reach the error handler, and stop() waits for it.
    task = context.application.create_task(
        _look_for_feeds(update, context, bot, tr, url, categories),
        update=update,
        name=f"addfeed-{user.id}",
    )
    discoveries.track(user.id, url, task)


async def _look_for_feeds(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    bot: BotServices,
    tr: Translator,
    url: str,
    categories: tuple[str, ...],
) -> None:
    """The slow half of /addfeed, in the background."""
    _ = tr.gettext
    looking = await reply(update, context, escape(_("Looking for feeds at {url}…").format(url=url)))
    if looking is None:
        return  # the bot may not write in this chat: nobody to show anything to
    try:
        discovery = await _admin(bot).discover(url)
    except NewsbotError as error:
        await _answer(update, context, looking, escape(cut_at_word(str(error), 1500)))
        return
    if len(discovery.found) == 1 and (listed := discovery.listed.get(discovery.found[0].url)):
        await _answer(update, context, looking, *_already_listed(tr, listed))
        return
    user = update.effective_user
    assert user is not None  # an operator
    pending = Pending(user.id, time.monotonic(), found=discovery.found, categories=categories)
    token = pending_store(context).put(pending)
    if len(discovery.found) > 1:
        await _answer(
            update,
            context,
            looking,
            choice_text(tr, url, discovery.found),
            choice_markup(tr, token, discovery.found),
        )
        return
    pending.chosen = 0
    found = discovery.found[0]
    await _answer(
        update,
        context,
        looking,
        found_text(bot, tr, pending, found),
        found_markup(bot, tr, token, pending, found),
    )


def _already_listed(tr: Translator, listed: FeedHealth) -> tuple[str, InlineKeyboardMarkup]:
    _ = tr.gettext
    return (
        escape(_("That feed is already listed as feed {id}.").format(id=listed.id)),
        InlineKeyboardMarkup(
            [[InlineKeyboardButton(_("Show it"), callback_data=feed_data("f", listed.id))]]
        ),
    )


async def _answer(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    looking: Message,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Turn "Looking…" into the answer; a new message if someone deleted it meanwhile."""
    try:
        await looking.edit_text(text, reply_markup=markup, link_preview_options=NO_PREVIEW)
    except BadRequest as error:
        if "not found" not in error.message.lower():
            raise
        await reply(update, context, text, markup)


async def removefeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/removefeed ID|URL"""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    args = list(context.args or [])
    if len(args) != 1:
        await reply(update, context, escape(tr.gettext("Usage: /removefeed ID|URL")))
        return
    try:
        feed = await _admin(bot).remove(args[0])
    except NewsbotError as error:
        await reply(update, context, escape(str(error)))
        return
    await reply(update, context, removed_text(tr, feed))


async def feeds_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feeds: the first page of feeds."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    page = await _admin(bot).page(0, PAGE_SIZE)
    await reply(update, context, page_text(tr, page), page_markup(tr, page))


async def feed_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feed ID|URL: one feed's details and its buttons."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    args = list(context.args or [])
    if len(args) != 1:
        await reply(update, context, escape(tr.gettext("Usage: /feed ID (see /feeds)")))
        return
    try:
        line = await _admin(bot).details(args[0])
    except NewsbotError as error:
        await reply(update, context, escape(str(error)))
        return
    await reply(update, context, details_text(bot, tr, line), details_markup(tr, line.feed))


async def export_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export: every listed feed as an OPML 2.0 document."""
    gate = await _operators_only(update, context)
    if gate is None:
        return
    bot, tr = gate
    message = update.effective_message
    if message is None:
        return
    data = await _admin(bot).export()
    count = sum(1 for f in await bot.runtime.storage.feeds.all_feeds() if f.configured)
    await message.reply_document(
        InputFile(data, filename=EXPORT_NAME),
        caption=escape(
            tr.ngettext(
                "{n} feed as OPML 2.0. Send it to a bot to import it.",
                "{n} feeds as OPML 2.0. Send it to a bot to import it.",
                count,
            ).format(n=count)
        ),
        do_quote=False,
    )


async def document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An OPML file sent by an operator: a preview, and an Import button."""
    bot = services(context)
    message = update.effective_message
    if message is None or message.document is None:
        return
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if not _is_operator(bot, update):
        # In a group, documents are the members' business; in private, say why not.
        if message.chat.type == ChatType.PRIVATE:
            await reply(update, context, escape(_("I only import feed lists from my operators.")))
        return
    sent = message.document
    name = sent.file_name or ""
    if not name.lower().endswith(OPML_SUFFIXES):
        await reply(
            update, context, escape(_("Send an OPML file (.opml or .xml) to import feeds."))
        )
        return
    if sent.file_size is None or sent.file_size > MAX_OPML_BYTES:
        await reply(
            update,
            context,
            escape(
                _("That file is too big: feed lists are at most {limit} MB.").format(
                    limit=MAX_OPML_BYTES // (1024 * 1024)
                )
            ),
        )
        return
    try:
        file = await sent.get_file()
        data = bytes(await file.download_as_bytearray())
        opml = parse_opml(data)
        plan = await _admin(bot).plan_import(opml, None)
    except (TelegramError, NewsbotError) as error:
        log.info("feeds: OPML document %r refused: %s", name, error)
        reason = str(error) if isinstance(error, NewsbotError) else _("I couldn't download it.")
        await reply(
            update,
            context,
            escape(_("I can't import {name}: {reason}").format(name=name, reason=reason)),
        )
        return
    user = update.effective_user
    assert user is not None
    token = pending_store(context).put(
        Pending(user.id, time.monotonic(), document=opml, file_name=name)
    )
    lines = [
        "<b>"
        + escape(cut_at_word(name, 100))
        + "</b>: "
        + escape(
            _("{total} feeds, {present} already present, {new} to add").format(
                total=plan.total, present=len(plan.present), new=len(plan.new)
            )
        )
    ]
    if plan.skipped:
        lines.append(escape(_("{n} skipped (not http(s) URLs)").format(n=plan.skipped)))
    for planned in plan.new[:SHOWN_IMPORTS]:
        categories = category_titles(bot, planned.categories) or escape(
            _("no category (tags and keywords only)")
        )
        lines.append(f"• {escape(cut_at_word(planned.url, 150))} — {categories}")
    if len(plan.new) > SHOWN_IMPORTS:
        lines.append(escape(_("… and {n} more").format(n=len(plan.new) - SHOWN_IMPORTS)))
    if plan.unmatched:
        lines.append(
            escape(_("Folders matching no category: {names}")).format(
                names=", ".join(escape(cut_at_word(n, 40)) for n in plan.unmatched[:10])
            )
        )
    rows = []
    if plan.new:
        rows.append(InlineKeyboardButton(_("Import"), callback_data=token_data("imp", token)))
    rows.append(InlineKeyboardButton(_("Cancel"), callback_data=token_data("no", token)))
    await reply(update, context, "\n".join(lines), InlineKeyboardMarkup([rows]))
