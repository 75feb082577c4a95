"""Headlines on request: /latest, /search and its "More ›" button. Thin:
parse the arguments, ask ``bot.services.NewsService``, reply with a list.

Headlines are news the asker wanted, so in a channel they stay (``reply``
with ``news=True``): no note, no cleanup.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.render import escape, render_list
from bot.telegram.args import LatestArgs, parse_latest, parse_search_data, search_data
from bot.telegram.handlers import NO_PREVIEW, _args, reply, services
from bot.telegram.translation import chat_translator, chat_zone

SEARCH_PAGE = 5


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


def is_search_page(data: object) -> bool:
    """The data of a "More ›" button (the CallbackQueryHandler's pattern)."""
    return isinstance(data, str) and parse_search_data(data) is not None


async def search_page_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """ "More ›" under search results: the next page, in the same message."""
    query = update.callback_query
    page = parse_search_data(query.data or "") if query is not None else None
    if query is None or page is None:
        return
    bot = services(context)
    _ = (await chat_translator(update, context)).gettext
    text = page.words
    if page.key is not None:
        text = await bot.runtime.storage.state.recall_search(page.key)
    if text is None:
        await query.answer(_("This search has expired. Send /search again."))
        return
    await query.answer()
    await _send_search_page(update, context, text, page.offset, edit=True)
