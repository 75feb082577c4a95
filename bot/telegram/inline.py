"""Inline mode: ``@newsbot mars rover`` in any chat offers stories from the
archive; the one picked is posted as the full card.

- an empty query offers the latest headlines;
- a first word naming a category (``space``, ``space mars``; ids and titles
  as ``/subscribe`` takes them) keeps to that category;
- the rest is searched as ``/search`` does (``storage.search``, any text is
  a valid query).

Telegram shows what one answer carries and asks for more with the
``next_offset`` we gave, so pages are ``INLINE_PAGE`` results (an answer may
hold at most 50) up to ``MAX_INLINE_DEPTH`` results deep; the offset is a
decimal number, far below the 64 bytes Telegram allows. Queries arrive only
once inline mode is switched on with @BotFather ``/setinline``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import ContextTypes

from bot.config import CategoryConfig
from bot.i18n import Translator, translator
from bot.models import Article
from bot.render import SOURCE_LIMIT, format_time, render_card
from bot.services import NewsService, resolve_categories
from bot.telegram.handlers import services
from bot.telegram.links import article_link
from bot.telegram.translation import chat_translator, chat_zone
from bot.text import cut_at_word

log = logging.getLogger(__name__)

INLINE_PAGE = 10
MAX_INLINE_DEPTH = 100  # ten pages: past that, a better query helps more
# Short: the archive grows every polling round, and Telegram would otherwise
# keep an answer for 300 s.
CACHE_SECONDS = 30
RESULT_TITLE_LIMIT = 150


@dataclass(frozen=True, slots=True)
class InlineRequest:
    category: CategoryConfig | None
    words: str  # what to search for; empty: the latest headlines
    offset: int


def parse_inline_query(
    text: str, offset: str, categories: Sequence[CategoryConfig]
) -> InlineRequest | None:
    """What an inline query asks for, or None for an offset we never gave
    (nothing to answer then). Pure; never raises."""
    if offset == "":
        start = 0
    elif offset.isascii() and offset.isdigit() and len(offset) <= 4:
        start = int(offset)
    else:
        return None
    if start % INLINE_PAGE or start >= MAX_INLINE_DEPTH:
        return None
    first, _, rest = text.strip().partition(" ")
    if first:
        lookup = resolve_categories([first], categories)
        if len(lookup.found) == 1 and not lookup.unknown:
            return InlineRequest(lookup.found[0], rest.strip(), start)
    return InlineRequest(None, text.strip(), start)


@dataclass(frozen=True, slots=True)
class InlineAnswer:
    results: list[InlineQueryResultArticle]
    # None when there is no further page. Never "": PTB, with Defaults set,
    # sends an empty string as "[]" (it reads one as an empty list), and
    # Telegram would then ask for a page at offset "[]".
    next_offset: str | None


async def find_inline_answer(
    news: NewsService,
    request: InlineRequest,
    category_titles: Mapping[str, str],
    bot_username: str | None,
    t: Translator | None = None,
    zone: tzinfo = UTC,
) -> InlineAnswer:
    """The page of results for ``request``, and the offset of the next one;
    ``t``: the language of the cards' own words (the asking user's)."""
    category_id = request.category.id if request.category else None
    # One extra article tells whether another page exists.
    wanted = INLINE_PAGE + 1
    if request.words:
        found = await news.search(request.words, wanted, request.offset, category_id=category_id)
    else:
        found = await news.latest(category_id, wanted, request.offset)
    page = found[:INLINE_PAGE]
    following = request.offset + INLINE_PAGE
    more = len(found) > INLINE_PAGE and following < MAX_INLINE_DEPTH
    results = [inline_result(a, category_titles, bot_username, t, zone) for a in page]
    return InlineAnswer(results, str(following) if more else None)


def inline_result(
    article: Article,
    category_titles: Mapping[str, str],
    bot_username: str | None,
    t: Translator | None = None,
    zone: tzinfo = UTC,
) -> InlineQueryResultArticle:
    """One offered story; picked, it posts the same card the bot sends
    subscribers, with its Read and Share buttons (links, which work in any
    chat: buttons that call the bot back do not belong in other people's chats)."""
    link = article_link(bot_username, article.id) if bot_username else None
    t = t or translator(None)
    card = render_card(article, category_titles, article_link=link, t=t, zone=zone)
    markup = (
        InlineKeyboardMarkup([[InlineKeyboardButton(b.label, url=b.url) for b in card.buttons]])
        if card.buttons
        else None
    )
    image = article.image_url
    return InlineQueryResultArticle(
        # Article ids are unique within an answer and short (Telegram: 1-64 bytes).
        id=str(article.id),
        title=cut_at_word(article.title, RESULT_TITLE_LIMIT) or t.gettext("(untitled)"),
        description=f"{cut_at_word(article.source, SOURCE_LIMIT)} · {format_time(article.published, t, zone)}",
        thumbnail_url=image if image and image.startswith(("https://", "http://")) else None,
        input_message_content=InputTextMessageContent(
            card.html,
            parse_mode=ParseMode.HTML,
            link_preview_options=LinkPreviewOptions(url=card.preview_url, prefer_large_media=True),
        ),
        reply_markup=markup,
    )


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``@bot words``: stories from the archive, a page at a time."""
    query = update.inline_query
    if query is None:
        return
    started = time.perf_counter()
    bot = services(context)
    news = bot.runtime.news
    request = parse_inline_query(query.query, query.offset, news.categories)
    if request is None:
        await query.answer([], cache_time=CACHE_SECONDS)
        return
    titles = {c.id: c.title for c in news.categories}
    t = await chat_translator(update, context)
    answer = await find_inline_answer(
        news, request, titles, context.bot.username, t, await chat_zone(update, context)
    )
    log.debug(
        "inline: %d results for %r offset %d in %.1f ms",
        len(answer.results),
        query.query,
        request.offset,
        (time.perf_counter() - started) * 1000,
    )
    # Personal: the cards' words are in the asking user's language, so one
    # user's cached answer must not be shown to another.
    await query.answer(
        answer.results,
        cache_time=CACHE_SECONDS,
        next_offset=answer.next_offset,
        is_personal=True,
    )


async def chosen_inline_result(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A story someone posted through inline mode (sent only when inline
    feedback is on, @BotFather ``/setinlinefeedback``): logged, to see what is shared."""
    chosen = update.chosen_inline_result
    if chosen is not None:
        log.info("inline: story %s shared (query %r)", chosen.result_id, chosen.query)
