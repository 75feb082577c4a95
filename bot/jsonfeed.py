"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1) -> ``ParsedFeed``.

The same values ``bot.parse`` makes of RSS and Atom, with the same text
cleanup and limits; ``bot.parse.parse`` dispatches here. A JSON Feed is
untrusted like any feed body: every field may have any type, arrays may be
huge and nesting deep, and none of that raises anything but ``ParseError``
(a field of the wrong type is treated as absent).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bot.errors import ParseError
from bot.parsed import ParsedEntry, ParsedFeed
from bot.text import (
    absolute_http_url,
    canonical_url,
    collapse_whitespace,
    cut_at_word,
    entry_title_and_key,
    html_to_text,
    strip_plugin_footer,
)

CONTENT_TYPE = "application/feed+json"
VERSION_PREFIX = "https://jsonfeed.org/version/"
MAX_ITEMS = 1000
MAX_TAGS = 50
MAX_AUTHORS = 10
_JSON_TYPES = frozenset({CONTENT_TYPE, "application/json", "text/json"})
_LEADING = b"\xef\xbb\xbf \t\r\n"


def json_feed_document(body: bytes, content_type: str | None) -> Mapping[str, Any] | None:
    """The decoded JSON Feed object when the body is one (declared as
    ``application/feed+json``, or a JSON object whose ``version`` is a
    jsonfeed.org URL); None when the body is not JSON at all (XML goes to
    feedparser). Raises ``ParseError`` for JSON that is malformed or not a
    JSON Feed."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime not in _JSON_TYPES and not body.lstrip(_LEADING).startswith(b"{"):
        return None
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ParseError("parse: malformed JSON Feed: not UTF-8") from None
    except RecursionError:
        raise ParseError("parse: malformed JSON Feed: nested too deeply") from None
    except ValueError as error:  # json.JSONDecodeError, and numbers too long to read
        raise ParseError(f"parse: malformed JSON Feed: {str(error)[:200]}") from None
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise ParseError(f"parse: JSON but not a JSON Feed (no {VERSION_PREFIX}… version)")
    feed: dict[str, Any] = document
    return feed


def parse_json_feed(document: Mapping[str, Any], url: str) -> ParsedFeed:
    version = _text(document.get("version"))[len(VERSION_PREFIX) :]
    site_url = absolute_http_url(_text(document.get("home_page_url")) or None, url)
    site_url = canonical_url(site_url) if site_url else None
    items = document.get("items")
    # An item without authors has the feed's (the spec says so).
    feed_authors = _authors(document)
    entries: list[ParsedEntry] = []
    seen_keys: set[str] = set()
    for raw in items[:MAX_ITEMS] if isinstance(items, list) else ():
        if not isinstance(raw, dict):
            continue
        entry = _entry(raw, site_url or url, url, feed_authors)
        if entry.key in seen_keys:
            continue  # a repeated id: keep the first, as for RSS
        seen_keys.add(entry.key)
        entries.append(entry)
    title = collapse_whitespace(_text(document.get("title")))
    return ParsedFeed(
        title=cut_at_word(title, 200),
        site_url=site_url,
        version="json" + "".join(c for c in version[:8] if c.isdigit()),
        entries=tuple(entries),
        hubs=tuple(_websub_hubs(document.get("hubs"))),
        self_url=_text(document.get("feed_url")).strip() or None,
    )


def _websub_hubs(hubs: Any) -> list[str]:
    """The ``hubs`` of type WebSub (the spec's ``[{"type", "url"}]``), as written."""
    found = []
    for hub in hubs[:10] if isinstance(hubs, list) else ():
        if isinstance(hub, dict) and _text(hub.get("type")).strip().lower() == "websub":
            url = _text(hub.get("url")).strip()
            if url:
                found.append(url)
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _entry(raw: Mapping[str, Any], base: str, feed_url: str, feed_authors: str) -> ParsedEntry:
    item_id = raw.get("id")
    # The spec says a string; feeds in the wild write numbers too.
    if isinstance(item_id, int | float) and not isinstance(item_id, bool):
        item_id = str(item_id)
    guid = _text(item_id).strip()
    link = absolute_http_url(_text(raw.get("url")) or None, base) or absolute_http_url(
        _text(raw.get("external_url")) or None, base
    )
    if link is None and guid:
        link = absolute_http_url(guid)
    url = canonical_url(link or base or feed_url)

    content_html = _text(raw.get("content_html"))
    html_text, html_image = (
        html_to_text(strip_plugin_footer(content_html)) if content_html else ("", None)
    )
    # summary and content_text are plain text: "<engine>" in them is words.
    summary = (
        collapse_whitespace(_text(raw.get("summary")))
        or html_text
        or collapse_whitespace(_text(raw.get("content_text")))
    )
    title, summary, key = entry_title_and_key(
        collapse_whitespace(_text(raw.get("title"))), summary, guid, link
    )

    image = None
    for field in ("image", "banner_image"):
        image = absolute_http_url(_text(raw.get(field)) or None, url)
        if image:
            break
    if image is None and html_image:
        image = absolute_http_url(html_image, url)
    return ParsedEntry(
        key=key,
        url=url,
        title=title,
        summary=summary,
        author=cut_at_word(_authors(raw) or feed_authors, 200) or None,
        published=_date(raw.get("date_published")) or _date(raw.get("date_modified")),
        image_url=image,
        tags=tuple(_tags(raw.get("tags"))),
    )


def _authors(raw: Mapping[str, Any]) -> str:
    """1.1's ``authors`` list, else 1.0's single ``author``."""
    authors = raw.get("authors")
    if not isinstance(authors, list):
        author = raw.get("author")
        authors = [author] if isinstance(author, dict) else []
    names: list[str] = []
    for author in authors[:MAX_AUTHORS]:
        if isinstance(author, dict):
            name = collapse_whitespace(_text(author.get("name")))
            if name and name not in names:
                names.append(name)
    return ", ".join(names)


def _date(value: Any) -> datetime | None:
    """RFC 3339; a time without an offset is read as UTC, like RSS dates."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _tags(value: Any) -> Iterable[str]:
    if not isinstance(value, list):
        return
    seen: set[str] = set()
    for tag in value[: MAX_TAGS * 4]:
        text = collapse_whitespace(_text(tag))
        if text and len(text) <= 200 and text.casefold() not in seen:
            seen.add(text.casefold())
            yield text
            if len(seen) >= MAX_TAGS:
                return
