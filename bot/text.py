"""Pure text helpers: HTML to clean plain text, word-boundary cuts, URLs."""

from __future__ import annotations

import hashlib
import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# What a parser keeps of an entry: RSS/Atom/RDF (bot.parse) and JSON Feed
# (bot.jsonfeed) alike.
SUMMARY_LIMIT = 1000
TITLE_LIMIT = 500
FALLBACK_TITLE_LIMIT = 80
MAX_KEY_LENGTH = 256

_WHITESPACE = re.compile(r"\s+")
# Entities that survive one round of unescaping mean the publisher escaped twice
# (seen in Vox Media titles: "&amp;amp;").
_LEFTOVER_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u2028\u2029\ufeff]")
_BLOCK_TAGS = frozenset(
    (
        "p br div li ul ol h1 h2 h3 h4 h5 h6 tr td th table blockquote pre section "
        "article header footer figure figcaption hr dd dt"
    ).split()
)
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object"})
# Where an <img> tag may start (HTMLParser reads tag names in ASCII only).
_IMG_TAG = re.compile(r"<[iI][mM][gG]")
_UNFINISHED_MARKUP = re.compile(r"<[a-zA-Z/!?]")
# Anything tag-shaped, for the fallback when HTMLParser gives up.
_TAG_SHAPED = re.compile(r"<[a-zA-Z/!?][^>]*>?")
# Boilerplate that WordPress plugins append to every post in a feed (Yoast
# SEO: "The post <a>…</a> appeared first on <a>…</a>."; the RSS Footer
# plugin: "<a>…</a> is a post from: <a>…</a>"). It would take up a card's
# summary saying nothing. Only the plugins' exact shape is matched: links
# where the plugins put them, at the very end of the fragment, so prose that
# merely uses the words stays.
_LINK = r"<a\b[^>]*>(?:(?!</a>).){0,500}</a>"
_PLUGIN_FOOTER = re.compile(
    r"(?:<p\b[^>]*>\s*)?(?:"
    rf"The\s+post\s+{_LINK}\s+(?:appeared\s+first|first\s+appeared)\s+on\s+{_LINK}"
    rf"|{_LINK}\s+is\s+a\s+post\s+from:?\s+{_LINK}"
    r")\s*\.?\s*(?:</p>\s*)?$",
    re.IGNORECASE | re.DOTALL,
)
_FOOTER_TAIL = 3000  # characters at the end of a fragment where a footer can be
_TRACKING_PARAMS = re.compile(r"^(utm_[a-z_]+|fbclid|gclid|dclid|mc_cid|mc_eid|_hsenc|_hsmi)$")


class _TextExtractor(HTMLParser):
    """Collects text and the first usable <img src> of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.first_image: str | None = None
        self._skip_depth = 0

    def _keep_apart(self) -> None:
        # A stray "<" right before a dropped tag ("<<b>word") would otherwise
        # join the next word and read as a new tag ("<word").
        if self.parts and self.parts[-1].endswith("<"):
            self.parts.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._keep_apart()
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")
        elif tag == "img" and self.first_image is None:
            values = dict(attrs)
            src = (values.get("src") or "").strip()
            tiny = values.get("width") in ("0", "1") or values.get("height") in ("0", "1")
            if src and not tiny and not src.startswith("data:"):
                self.first_image = src

    def handle_comment(self, data: str) -> None:
        self._keep_apart()

    def handle_decl(self, decl: str) -> None:
        self._keep_apart()

    def handle_pi(self, data: str) -> None:
        self._keep_apart()

    def unknown_decl(self, data: str) -> None:
        self._keep_apart()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self._keep_apart()
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            self.parts.append(data)

    def close(self) -> None:
        # What is left unparsed at the end is markup cut off mid-way ("Read
        # more <a hre", "<!-- x"): feeds truncate descriptions. HTMLParser
        # would hand it over as text; browsers drop it, and so do we.
        if _UNFINISHED_MARKUP.match(self.rawdata):
            self.rawdata = ""
        super().close()


def html_to_text(fragment: str | None) -> tuple[str, str | None]:
    """Plain text (tags dropped, entities decoded, whitespace collapsed) and the
    first ``<img src>`` of an HTML fragment. Never raises."""
    if not fragment:
        return "", None
    if "<" not in fragment and "&" not in fragment:
        return collapse_whitespace(fragment), None
    # Control characters go first: inside a tag ("<a\x00>") they would stop
    # HTMLParser from seeing the tag, which would then survive as text.
    fragment = _CONTROL.sub(" ", fragment)
    extractor = _TextExtractor()
    try:
        extractor.feed(fragment)
        extractor.close()
    except (AssertionError, ValueError):  # HTMLParser on pathological markup ("<![x[")
        return collapse_whitespace(html.unescape(_TAG_SHAPED.sub(" ", fragment))), None
    text = "".join(extractor.parts)
    if _LEFTOVER_ENTITY.search(text):
        text = html.unescape(text)
    return collapse_whitespace(text), extractor.first_image


def first_image(fragment: str | None) -> str | None:
    """``html_to_text(fragment)[1]``, reading the markup only as far as the
    first usable ``<img src>``: a post's content (often the biggest part of
    a feed) usually opens with its picture.

    The same HTMLParser reads the same markup, fed in pieces that each end
    just after an ``<img`` tag's ``>`` (it is an incremental parser: where
    the input is cut changes nothing it reports). Markup HTMLParser may
    give up on (``<![``, see ``html_to_text``) is read whole, as there an
    image found early would not be the answer."""
    if not fragment or not _IMG_TAG.search(fragment):
        return None
    fragment = _CONTROL.sub(" ", fragment)
    if "<![" in fragment:
        return html_to_text(fragment)[1]
    extractor = _TextExtractor()
    fed = 0
    try:
        while extractor.first_image is None:
            tag = _IMG_TAG.search(fragment, fed)
            end = fragment.find(">", tag.end()) if tag else -1
            if end < 0:
                extractor.feed(fragment[fed:])
                extractor.close()
                break
            extractor.feed(fragment[fed : end + 1])
            fed = end + 1
    except (AssertionError, ValueError):  # as html_to_text: no image
        return None
    return extractor.first_image


def strip_plugin_footer(fragment: str) -> str:
    """``fragment`` (HTML) without a feed plugin's trailing "The post …
    appeared first on …" or "… is a post from …" footer."""
    if "post" not in fragment[-_FOOTER_TAIL:].lower():
        return fragment  # the common case: one quick look
    start = max(0, len(fragment) - _FOOTER_TAIL)
    found = _PLUGIN_FOOTER.search(fragment, start)
    return fragment[: found.start()] if found else fragment


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", _CONTROL.sub(" ", text)).strip()


def cut_at_word(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` shortened to at most ``limit`` characters, cut between words."""
    if len(text) <= limit:
        return text
    if limit <= len(ellipsis):
        return text[:limit]  # no room for a word and the ellipsis
    room = limit - len(ellipsis)
    cut = text[:room]
    space = cut.rfind(" ")
    # Cut at the last space unless the cut already ends a word, or going back
    # to the space throws away most of the text (one huge word).
    if text[room] != " " and space > room // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + ellipsis


def absolute_http_url(candidate: str | None, base: str | None = None) -> str | None:
    """``candidate`` made absolute against ``base``; None unless it is http(s)."""
    if not candidate:
        return None
    candidate = candidate.strip()
    if not candidate or len(candidate) > 4096:
        return None
    try:
        url = urljoin(base, candidate) if base else candidate
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if _WHITESPACE.search(url):
        url = url.replace(" ", "%20").replace("\n", "").replace("\t", "").replace("\r", "")
    return url


def canonical_url(url: str) -> str:
    """The same article's URL written one way: lowercase scheme and host, no
    default port, no tracking parameters (utm_*, fbclid...) and no tracking
    fragment ("#ref=rss"). A plain anchor is kept: some sites publish each
    post as an anchor on a daily page ("2017/06/26.html#a080605"), and
    dropping it would merge a day's posts into one article."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url
    netloc = host
    fragment = "" if "=" in parts.fragment else parts.fragment
    if parts.username:
        return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, fragment))
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        netloc = f"{host}:{port}"
    query = parts.query
    if query and ("utm_" in query or "clid" in query or "mc_" in query or "_hs" in query):
        kept = [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not _TRACKING_PARAMS.match(k)
        ]
        query = urlencode(kept)
    return urlunsplit((scheme, netloc, parts.path or "/", query, fragment))


# -- cutting what Telegram counts --------------------------------------------

# Telegram HTML as the render stage writes it: tags, entities, and text.
_HTML_TOKEN = re.compile(r"(<[^>]*>)|(&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);)|([^<&]+|[<&])")
_TAG_NAME = re.compile(r"</?\s*([a-zA-Z-]+)")


def utf16_length(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _cut_units(text: str, room: int, *, first: bool = True) -> str:
    """The longest start of ``text`` within ``room`` UTF-16 units, cut
    between words unless that throws away most of it (``first``: nothing
    comes before it; else a word cut in half is dropped whole)."""
    kept, used = [], 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if used + width > room:
            break
        kept.append(char)
        used += width
    cut = "".join(kept)
    if len(cut) < len(text) and not text[len(cut)].isspace():
        space = cut.rfind(" ")
        if space > len(cut) // 2 or (space >= 0 and not first):
            cut = cut[:space]
        elif not first:
            cut = ""
    return cut.rstrip(" ,;:.-–—\n")


def cut_text(text: str, limit: int, ellipsis: str = "…") -> str:
    """Plain ``text`` within ``limit`` UTF-16 units, cut between words."""
    if utf16_length(text) <= limit:
        return text
    return _cut_units(text, limit - utf16_length(ellipsis)) + ellipsis


def cut_html(markup: str, limit: int, ellipsis: str = "…") -> str:
    """Telegram HTML whose text (what Telegram counts after parsing the
    tags) is within ``limit`` UTF-16 units: the cut falls between words of
    the text, never inside a tag or an entity, and every tag still open
    there is closed, so the result parses as the original did."""
    tokens = _HTML_TOKEN.findall(markup)
    visible = sum(1 if entity else utf16_length(text) for _, entity, text in tokens)
    if visible <= limit:
        return markup
    budget = limit - utf16_length(ellipsis)
    kept: list[str] = []
    open_tags: list[tuple[str, int]] = []  # name, index of its opening tag in kept
    used = 0
    for tag, entity, text in tokens:
        if tag:
            name_match = _TAG_NAME.match(tag)
            name = name_match.group(1).lower() if name_match else ""
            if tag.startswith("</"):
                for position in range(len(open_tags) - 1, -1, -1):
                    if open_tags[position][0] == name:
                        del open_tags[position:]
                        break
            else:
                open_tags.append((name, len(kept)))
            kept.append(tag)
            continue
        if entity:
            if used + 1 > budget:
                break
            kept.append(entity)
            used += 1
            continue
        width = utf16_length(text)
        if used + width <= budget:
            kept.append(text)
            used += width
            continue
        kept.append(_cut_units(text, budget - used, first=used == 0))
        break
    # Tags opened right before the cut would wrap nothing, and blanks before
    # the ellipsis only push it away from the text: drop both.
    while kept:
        if open_tags and open_tags[-1][1] == len(kept) - 1:
            open_tags.pop()
        elif kept[-1].startswith("<") or kept[-1].strip():
            break
        kept.pop()
    closing = "".join(f"</{name}>" for name, _ in reversed(open_tags))
    return "".join(kept).rstrip() + ellipsis + closing


def entry_title_and_key(
    title: str, summary: str, guid: str, link: str | None
) -> tuple[str, str, str]:
    """An entry's shown title and summary, each within its limit, and its
    key, whatever format it came in: the guid, else its link, else a hash of
    what it says (a key past MAX_KEY_LENGTH is hashed too). An entry without
    a title takes the start of its summary."""
    summary = cut_at_word(summary, SUMMARY_LIMIT)
    if title:
        title = cut_at_word(title, TITLE_LIMIT)
    elif summary:
        title = cut_at_word(summary, FALLBACK_TITLE_LIMIT)
    else:
        title = "Untitled"
    key = guid or (canonical_url(link) if link else "")
    if not key:
        key = "hash:" + hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest()
    elif len(key) > MAX_KEY_LENGTH:
        key = "hash:" + hashlib.sha256(key.encode()).hexdigest()
    return title, summary, key
