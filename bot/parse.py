"""Parse stage: bytes + response headers -> ``ParsedFeed``.

A pure function of its inputs and the only module that imports feedparser. It
runs in worker processes (see ``bot.parse_pool``), so everything it returns is
plain picklable data and all per-entry cleanup (HTML to text, absolute URLs,
images, dates) happens here, off the event loop.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from bot.errors import ParseError
from bot.jsonfeed import json_feed_document, parse_json_feed
from bot.parse_fast import fast_parse
from bot.parsed import ParsedEntry, ParsedFeed
from bot.text import (
    absolute_http_url,
    canonical_url,
    collapse_whitespace,
    cut_at_word,
    entry_title_and_key,
    first_image,
    html_to_text,
    strip_plugin_footer,
)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
_CHAR_REF = re.compile(rb"&#([xX][0-9a-fA-F]+|[0-9]+);")
_CHAR_REF_RUN = re.compile(rb"(?:&#(?:[xX][0-9a-fA-F]+|[0-9]+);)+")
# A superset of the troublesome references: hex D800-DFFF or 6+ digits,
# decimal 55000-57999 or 7+ digits.
_SUSPECT_CHAR_REF = re.compile(
    rb"&#(?:[xX]0*(?:[dD][89a-fA-F][0-9a-fA-F]{2}|[0-9a-fA-F]{6,})|0*(?:5[5-7][0-9]{3}|[0-9]{7,}));"
)
_MAX_CODE_POINT = 0x10FFFF
_REPLACEMENT = 0xFFFD
_SLASH_DATE = re.compile(
    r"\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*"
)


def parse(body: bytes, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a fetched feed body. Raises ``ParseError`` if it is not a feed.

    Malformed ("bozo") XML is accepted as long as feedparser salvaged a feed:
    it does not raise (once the character references it chokes on are
    repaired), and an HTML page or garbage gives ``version == ''`` with no
    entries, which is what we check (not ``bozo``).

    A JSON Feed (``application/feed+json``, or any JSON body whose
    ``version`` is a jsonfeed.org one) goes to ``bot.jsonfeed`` instead.
    """
    document = json_feed_document(body, content_type)
    if document is not None:
        return parse_json_feed(document, url)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    repaired = _repair_char_refs(body)
    # A plain UTF-8 RSS 2.0 document is read without feedparser, to the same
    # result (bot.parse_fast); anything else goes to feedparser. We strip all
    # markup ourselves, so its sanitizer and in-content URI resolution would
    # be wasted work (about a third of its time).
    data = fast_parse(repaired, url, content_type)
    if data is None:
        data = feedparser.parse(
            repaired,
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    version = data.get("version") or ""
    raw_entries = data.get("entries") or []
    if not version and not raw_entries:
        reason = "empty body" if not body.strip() else "not an RSS, Atom or RDF feed"
        raise ParseError(f"parse: {reason}")
    feed = data.get("feed") or {}
    site_url = absolute_http_url(feed.get("link"), url)
    # Canonical like every entry URL: an entry without a link falls back to
    # it, and storage must recognise that fallback ("https://example.com"
    # vs "https://example.com/") so it never de-duplicates such entries.
    site_url = canonical_url(site_url) if site_url else None
    feed_title, _ = html_to_text(feed.get("title"))
    entries = []
    seen_keys: set[str] = set()
    for raw in raw_entries:
        entry = _parse_entry(raw, site_url or url, url)
        if entry is None or entry.key in seen_keys:
            continue  # a feed that repeats a GUID: keep the first occurrence
        seen_keys.add(entry.key)
        entries.append(entry)
    return ParsedFeed(
        title=cut_at_word(feed_title, 200) if feed_title else "",
        site_url=site_url,
        version=version or "unknown",
        ttl_seconds=_ttl_seconds(feed.get("ttl")),
        bozo=bool(data.get("bozo")),
        entries=tuple(entries),
        hubs=tuple(_links(feed, "hub")),
        self_url=next(iter(_links(feed, "self")), None),
    )


def _links(feed: Mapping[str, Any], rel: str) -> list[str]:
    """The targets of the feed's own ``<link rel=...>`` (Atom, or atom:link
    in an RSS channel), as written."""
    return [
        str(link["href"]).strip()
        for link in feed.get("links") or ()
        if isinstance(link, Mapping)
        and str(link.get("rel") or "").lower() == rel
        and str(link.get("href") or "").strip()
    ]


def _repair_char_refs(body: bytes) -> bytes:
    """Rewrite numeric character references that make feedparser raise
    instead of salvaging the feed: UTF-16 surrogates (emoji written as a pair,
    "&#xD83D;&#xDE00;", by some CMSs) become the real character, lone halves
    and numbers beyond Unicode become U+FFFD."""
    if not _SUSPECT_CHAR_REF.search(body):
        return body  # the common case: one quick scan
    return _CHAR_REF_RUN.sub(_repair_run, body)


def _repair_run(match: re.Match[bytes]) -> bytes:
    codes = []
    for ref in _CHAR_REF.findall(match.group(0)):
        digits, base = (ref[1:], 16) if ref[:1] in b"xX" else (ref, 10)
        # Length first: int() refuses thousands of digits, chr() big numbers.
        codes.append(int(digits, base) if len(digits) <= 8 else _MAX_CODE_POINT + 1)
    if all(c <= _MAX_CODE_POINT and not 0xD800 <= c <= 0xDFFF for c in codes):
        return match.group(0)
    text = "".join(chr(c) if c <= _MAX_CODE_POINT else chr(_REPLACEMENT) for c in codes)
    # A UTF-16 round trip joins surrogate pairs and replaces lone halves.
    text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return "".join(f"&#{ord(c)};" for c in text).encode("ascii")


def _parse_entry(raw: Mapping[str, Any], site_url: str, feed_url: str) -> ParsedEntry | None:
    summary_html = raw.get("summary") or ""
    content_html = ""
    for content in raw.get("content") or ():
        if content.get("value"):
            content_html = content["value"]
            break
    summary, summary_image = html_to_text(strip_plugin_footer(summary_html or content_html))
    title = _plain_title(raw)
    guid = (raw.get("id") or raw.get("guid") or "").strip()

    link = absolute_http_url(raw.get("link"), site_url)
    if link is None and guid:
        link = absolute_http_url(guid)
    if link is None:
        for enclosure in raw.get("enclosures") or ():
            link = absolute_http_url(enclosure.get("href"), site_url)
            if link:
                break
    url = canonical_url(link or site_url or feed_url)

    title, summary, key = entry_title_and_key(title, summary, guid, link)

    author, _ = html_to_text(raw.get("author"))
    image = _image_url(raw, url)
    if image is None:
        # The content's first image only matters when nothing better was
        # found, so its HTML (often the biggest part of a feed) is only read
        # then, and only when it holds an <img> tag at all.
        candidate = summary_image
        if not candidate and content_html and content_html != summary_html:
            candidate = first_image(content_html)
        image = absolute_http_url(candidate, url)
    return ParsedEntry(
        key=key,
        url=url,
        title=title,
        summary=summary,
        author=cut_at_word(author, 200) or None,
        published=_entry_time(raw),
        image_url=image,
        tags=tuple(_tags(raw.get("tags") or ())),
    )


def _plain_title(raw: Mapping[str, Any]) -> str:
    """feedparser marks a title text/plain when it holds no known HTML tags;
    then "<engine>" is words, not a tag, and must not be stripped."""
    detail = raw.get("title_detail") or {}
    if detail.get("type") == "text/plain":
        return collapse_whitespace(raw.get("title") or "")
    return html_to_text(raw.get("title"))[0]


def _image_url(raw: Mapping[str, Any], base: str) -> str | None:
    """media:content (images only), media:thumbnail, then an image enclosure."""
    for media in raw.get("media_content") or ():
        medium = (media.get("medium") or "").lower()
        mime = (media.get("type") or "").lower()
        href = media.get("url") or ""
        looks_like_image = href.lower().split("?")[0].endswith(_IMAGE_SUFFIXES)
        if (
            medium == "image"
            or mime.startswith("image/")
            or (not medium and not mime and looks_like_image)
        ):
            found = absolute_http_url(href, base)
            if found:
                return found
    for thumbnail in raw.get("media_thumbnail") or ():
        found = absolute_http_url(thumbnail.get("url"), base)
        if found:
            return found
    for enclosure in raw.get("enclosures") or ():
        if (enclosure.get("type") or "").lower().startswith("image/"):
            found = absolute_http_url(enclosure.get("href"), base)
            if found:
                return found
    return None


def _entry_time(raw: Mapping[str, Any]) -> datetime | None:
    for field in ("published", "updated", "created"):
        slashed = _slash_date(raw.get(field))
        if slashed:
            return slashed
        parsed = raw.get(f"{field}_parsed")
        if parsed:
            try:
                # feedparser normalises to UTC struct_time.
                return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
            except (OverflowError, ValueError, OSError, TypeError):
                continue
    return None


def _slash_date(value: Any) -> datetime | None:
    """``2020/1/10 14:33:00`` (Chinese forum feeds), read as UTC like any
    zone-less date. feedparser turns every such date into November 1st."""
    match = _SLASH_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _tags(raw_tags: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    seen = set()
    for tag in raw_tags:
        term, _ = html_to_text(tag.get("term") or tag.get("label"))
        # Some feeds pack several tags into one term: "Space, NASA".
        for part in term.split(",") if "," in term else (term,):
            part = part.strip()
            if part and part.casefold() not in seen and len(part) <= 200:
                seen.add(part.casefold())
                yield part


def _ttl_seconds(value: Any) -> float | None:
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        return None
    return minutes * 60 if 0 < minutes < 60 * 24 * 365 else None
