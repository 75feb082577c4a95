"""The presses of the operators' feed buttons (``fd:`` data, see
``bot.telegram.feed_buttons``): /feeds paging, a feed's Check now, Pause,
Resume and Remove, and the Add, category, pick, Import and Cancel buttons of
/addfeed and OPML previews. The data is never trusted and the operator is
checked again on every press: a forwarded keyboard gives nobody else a way in.
"""

from __future__ import annotations

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot.errors import NewsbotError
from bot.feed_admin import FeedAdmin
from bot.i18n import Translator
from bot.render import escape
from bot.telegram.feed_buttons import FeedButton, feed_data, parse_button
from bot.telegram.feed_pending import pending_store
from bot.telegram.feed_views import (
    PAGE_SIZE,
    details_markup,
    details_text,
    edit_in_place,
    found_markup,
    found_text,
    page_markup,
    page_text,
    removed_text,
)
from bot.telegram.handlers import BotServices, services
from bot.telegram.translation import chat_translator
from bot.text import cut_at_word


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every ``fd:`` button. The data is never trusted and the operator is
    checked again on every press."""
    query = update.callback_query
    if query is None:
        return
    bot = services(context)
    tr = await chat_translator(update, context)
    _ = tr.gettext
    if query.from_user.id not in bot.runtime.config.telegram.admins:
        await query.answer(_("Only the bot's operators can use these buttons."))
        return
    pressed = parse_button(query.data or "")
    if pressed is None:
        await query.answer(_("This button has expired."))
        return
    admin = FeedAdmin.for_runtime(bot.runtime)
    try:
        if pressed.action == "pg":
            await query.answer()
            page = await admin.page(pressed.number, PAGE_SIZE)
            await edit_in_place(query.message, page_text(tr, page), page_markup(tr, page))
        elif pressed.action in ("f", "chk", "pau", "res", "rm", "rmy"):
            await _feed_button(bot, tr, query, admin, pressed)
        else:
            await _token_button(bot, tr, context, query, admin, pressed)
    except NewsbotError as error:
        await query.answer(cut_at_word(str(error), 200), show_alert=True)


async def _feed_button(
    bot: BotServices,
    tr: Translator,
    query: CallbackQuery,
    admin: FeedAdmin,
    pressed: FeedButton,
) -> None:
    _ = tr.gettext
    wanted = str(pressed.number)
    note = ""
    # A feed that is gone is said so before the press is answered otherwise.
    current = await admin.find(wanted)
    if pressed.action == "rm":
        feed = (await admin.details(wanted)).feed
        await query.answer()
        markup = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        _("Yes, remove it"), callback_data=feed_data("rmy", feed.id)
                    ),
                    InlineKeyboardButton(_("Keep it"), callback_data=feed_data("f", feed.id)),
                ]
            ]
        )
        text = escape(
            _("Remove feed {id} ({name})? It is no longer polled; its articles are kept.").format(
                id=feed.id, name=cut_at_word(feed.name or feed.title or feed.url, 150)
            )
        )
        await edit_in_place(query.message, text, markup)
        return
    if pressed.action == "rmy":
        feed = await admin.remove(wanted)
        await query.answer(_("Removed."))
        await edit_in_place(query.message, removed_text(tr, feed), None)
        return
    if pressed.action == "chk":
        if not current.configured:
            await query.answer(_("This feed was removed; nothing to check."), show_alert=True)
            return
        await query.answer(_("Checking…"))
        feed, outcome = await admin.check(wanted)
        if outcome is None:
            note = _("It is being fetched right now; try again in a moment.")
        elif outcome.status == "failed":
            note = _("Check failed: {error}").format(error=outcome.error or "")
        elif outcome.status == "new":
            note = tr.ngettext(
                "Checked: {n} new article.", "Checked: {n} new articles.", outcome.new_articles
            ).format(n=outcome.new_articles)
        else:
            note = _("Checked: nothing new.")
    elif pressed.action == "pau":
        await admin.pause(wanted)
        await query.answer(_("Paused."))
        note = _("Paused: not polled until resumed.")
    elif pressed.action == "res":
        await admin.resume(wanted)
        await query.answer(_("Resumed."))
        note = _("Resumed: polled at the next tick.")
    else:
        await query.answer()
    line = await admin.details(wanted)
    await edit_in_place(
        query.message, details_text(bot, tr, line, note), details_markup(tr, line.feed)
    )


async def _token_button(
    bot: BotServices,
    tr: Translator,
    context: ContextTypes.DEFAULT_TYPE,
    query: CallbackQuery,
    admin: FeedAdmin,
    pressed: FeedButton,
) -> None:
    _ = tr.gettext
    store = pending_store(context)
    pending = store.get(pressed.token)
    if pending is None:
        await query.answer(_("This button has expired. Send the command again."))
        return
    if pressed.action == "no":
        store.drop(pressed.token)
        await query.answer()
        await edit_in_place(query.message, escape(_("Cancelled.")), None)
        return
    if pressed.action == "imp":
        if pending.document is None:
            await query.answer(_("This button has expired."))
            return
        plan = await admin.plan_import(pending.document, None)
        added = await admin.apply_import(plan)
        store.drop(pressed.token)
        await query.answer()
        text = tr.ngettext(
            "Imported {n} feed from {name}: polled at the next tick.",
            "Imported {n} feeds from {name}: polled at the next tick.",
            added,
        ).format(n=added, name=pending.file_name)
        await edit_in_place(query.message, escape(text), None)
        return
    if pressed.action == "pick":
        if not 0 <= pressed.number < len(pending.found):
            await query.answer(_("This button has expired."))
            return
        pending.chosen = pressed.number
        found = pending.found[pressed.number]
        await query.answer()
        listed = await admin.listed(found.url)
        if listed is not None:
            store.drop(pressed.token)
            text = _("That feed is already listed as feed {id}.").format(id=listed.id)
            await edit_in_place(query.message, escape(text), None)
            return
        await edit_in_place(
            query.message,
            found_text(bot, tr, pending, found),
            found_markup(bot, tr, pressed.token, pending, found),
        )
        return
    # "add" or "cat"
    if pending.chosen is None or not pending.found:
        await query.answer(_("This button has expired."))
        return
    found = pending.found[pending.chosen]
    categories = pending.categories
    if pressed.action == "cat":
        categories = admin.checked_categories([pressed.category])
    outcome = await admin.add(found.url, categories)
    store.drop(pressed.token)
    await query.answer()
    feed = outcome.feed
    if not outcome.created:
        text = _("That feed is already listed as feed {id}.").format(id=feed.id)
    else:
        text = _("Added feed {id} ({name}): polled at the next tick.").format(
            id=feed.id, name=found.title
        )
    markup = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("Show it"), callback_data=feed_data("f", feed.id))]]
    )
    await edit_in_place(query.message, escape(text), markup)
