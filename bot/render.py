"""Render stage: articles -> Telegram HTML. Pure functions, no Telegram types.

Rules (Bot API, HTML parse mode): only a few tags are allowed, and every other
``<``, ``>`` and ``&`` must be escaped. Text is cut *before* it is escaped and
wrapped in tags, so a cut never lands inside an entity or a tag. Every message
stays far below the 4096-character limit by construction: the pieces have
fixed maxima (title 250, summary 300, source 80, hashtags) that add up to
well under 1000 characters.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.i18n import Translator, translator
from bot.models import Article
from bot.text import cut_at_word, cut_html

TITLE_LIMIT = 250
SUMMARY_LIMIT = 300
SOURCE_LIMIT = 80
LIST_TITLE_LIMIT = 160
MESSAGE_LIMIT = 4096
SHARE_TEXT_LIMIT = 200
BUTTON_URL_LIMIT = 2000
CAPTION_LIMIT = 1024  # a photo's caption, counted after the HTML is parsed


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Card:
    html: str  # for parse_mode=HTML
    # The same card without markup, for when Telegram rejects the HTML: the
    # article's link is written out, in case the buttons are rejected too.
    plain: str
    preview_url: str  # the link preview shows the article's image
    buttons: tuple[Button, ...]
    # How the chat wants it (its ChatSettings): a photo card when the feed
    # gave an image (caption: the card's HTML cut to CAPTION_LIMIT),
    # the link preview off or above the text, sent without a sound.
    photo_url: str | None = None
    caption: str = ""
    link_preview: bool = True
    preview_above_text: bool = False
    silent: bool = False


def escape(text: str) -> str:
    """Escape for Telegram HTML text: only &, < and > need it outside attributes."""
    return html.escape(text, quote=False)


def escape_attribute(text: str) -> str:
    return html.escape(text, quote=True)


def format_time(when: datetime, t: Translator | None = None, zone: tzinfo = UTC) -> str:
    """A card's time, in ``zone`` with its abbreviation, as ``t``'s language
    writes it."""
    return (t or translator(None)).date_time(when, zone)


def hashtags(category_ids: Sequence[str]) -> str:
    return " ".join(f"#{c}" for c in category_ids)


def share_url(
    article: Article, article_link: str | None = None, t: Translator | None = None
) -> str:
    """A t.me share link that opens Telegram's "send to chat" with the story.
    With ``article_link`` (the bot's deep link to this story) the shared text
    carries it too, so whoever receives the story can find the bot."""
    text = cut_at_word(article.title, SHARE_TEXT_LIMIT)
    if article_link:
        follow = (t or translator(None)).gettext("Follow on Telegram: {link}")
        text = f"{text}\n\n{follow.format(link=article_link)}"
    return f"https://t.me/share/url?url={quote(article.url, safe='')}&text={quote(text, safe='')}"


def render_card(
    article: Article,
    known_categories: Mapping[str, str] | None = None,
    *,
    article_link: str | None = None,
    settings: ChatSettings = DEFAULT_SETTINGS,
    t: Translator | None = None,
    zone: tzinfo = UTC,
) -> Card:
    """The headline card: bold title, summary, source and time, hashtags, and
    Read / Share buttons. ``known_categories`` (id -> title) filters hashtags
    to categories that still exist; ``article_link`` goes into the shared text.
    ``settings`` are the chat's (summary, photo, preview, silent); its time
    is shown in ``zone``; ``t`` translates the card's own words (default:
    English) and writes its time."""
    t = t or translator(None)
    _ = t.gettext
    title = cut_at_word(article.title, TITLE_LIMIT)
    summary = cut_at_word(article.summary, SUMMARY_LIMIT) if settings.summary else ""
    if summary and summary.casefold() == title.casefold():
        summary = ""  # feeds without descriptions often repeat the title
    source = cut_at_word(article.source, SOURCE_LIMIT)
    categories = [
        c for c in article.categories if known_categories is None or c in known_categories
    ]
    tags = hashtags(categories)
    meta = f"{source} · {format_time(article.published, t, zone)}"

    html_parts = [f"<b>{escape(title)}</b>"]
    plain_parts = [title]
    if summary:
        html_parts.append(escape(summary))
        plain_parts.append(summary)
    html_parts.append(f"<i>{escape(meta)}</i>" + (f"\n{escape(tags)}" if tags else ""))
    plain_parts.append(meta + (f"\n{tags}" if tags else ""))
    plain_parts.append(article.url)

    buttons: list[Button] = []
    if len(article.url) <= BUTTON_URL_LIMIT:
        buttons.append(Button(_("Read"), article.url))
        share = share_url(article, article_link, t)
        if len(share) <= BUTTON_URL_LIMIT:
            buttons.append(Button(_("Share"), share))
    card_html = "\n\n".join(html_parts)
    card_plain = "\n\n".join(plain_parts)
    photo = article.image_url if settings.photo and _fetchable(article.image_url) else None
    return Card(
        html=card_html,
        plain=card_plain,
        preview_url=article.url,
        buttons=tuple(buttons),
        photo_url=photo,
        caption=cut_html(card_html, CAPTION_LIMIT) if photo else "",
        link_preview=settings.link_preview,
        preview_above_text=settings.preview_above_text,
        silent=settings.silent,
    )


def _fetchable(url: str | None) -> bool:
    """Telegram fetches a photo by URL only over http(s)."""
    return bool(url) and str(url).lower().startswith(("https://", "http://"))


def render_headline(
    article: Article,
    number: int | None = None,
    *,
    t: Translator | None = None,
    zone: tzinfo = UTC,
) -> str:
    """One compact line for lists: linked title, source, time."""
    title = cut_at_word(article.title, LIST_TITLE_LIMIT)
    source = cut_at_word(article.source, SOURCE_LIMIT)
    prefix = f"{number}. " if number is not None else "• "
    link = f'<a href="{escape_attribute(article.url)}">{escape(title)}</a>'
    when = (t or translator(None)).date_time(article.published, zone, year=False)
    return f"{prefix}{link}\n    <i>{escape(source)} · {when}</i>"


def render_list(
    heading: str,
    articles: Sequence[Article],
    first_number: int = 1,
    *,
    t: Translator | None = None,
    zone: tzinfo = UTC,
) -> str:
    """A heading and numbered headlines (times in ``zone``), kept under the
    message limit."""
    lines = [f"<b>{escape(heading)}</b>"]
    length = len(heading)
    for index, article in enumerate(articles, start=first_number):
        line = render_headline(article, index, t=t, zone=zone)
        # Counted on the HTML, which is longer than the parsed text: safe side.
        if length + len(line) + 2 > MESSAGE_LIMIT - 100:
            break
        lines.append(line)
        length += len(line) + 2
    return "\n\n".join(lines)
