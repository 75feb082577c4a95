"""A fast path for the common feed: well-formed UTF-8 RSS 2.0.

feedparser is most of a poll's CPU (its SAX callbacks, element dispatch and
a URL join on every element). For a document that is well-formed XML in
UTF-8 (or ASCII), with ``<rss version="2.*">`` at its root and only the
elements listed here, this module reads it with expat through defusedxml and
builds the same mapping feedparser would (the keys ``bot.parse`` reads), so
the articles are the same as feedparser's; ``tests/test_parse_fast.py``
compares both over the whole real-feed corpus.

Anything else returns None and goes to feedparser: malformed XML (it
salvages), other encodings (its detection and the HTTP charset rules), Atom,
RDF and old RSS versions, ``xml:base``, and any element whose meaning in
feedparser is not reproduced here (iTunes, Dublin Core titles, media
titles and descriptions, ...). feedparser's own element handlers decide
which names matter: an element it has no handler for only adds keys
``bot.parse`` never reads.

Security as with feedparser's own expat: defusedxml refuses entity
declarations (no "billion laughs"), external entities and DTD fetches are
never resolved, nothing touches the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin

_NS_PREFIX = {uri.lower(): prefix for uri, prefix in _FeedParserMixin.namespaces.items()}
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
_ATOM = "http://www.w3.org/2005/Atom"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"

_DECLARED_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_APPLICATION_XML = (
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
)
_TEXT_XML = ("text/xml", "text/xml-external-parsed-entity")
_XMLNS = re.compile(rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']([^"']*)["']""")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")

# Item elements read here (prefix as feedparser names namespaces, "" for
# none), and those feedparser handles in ways that never reach bot.parse.
_ITEM_READ = {
    ("", "title"),
    ("", "link"),
    ("", "guid"),
    ("", "description"),
    ("", "pubdate"),
    ("", "author"),
    ("", "category"),
    ("", "enclosure"),
    ("content", "encoded"),
    ("dc", "creator"),
    ("dc", "date"),
    ("dc", "subject"),
    ("media", "content"),
    ("media", "thumbnail"),
    ("media", "title"),
    ("media", "description"),
    ("atom", "updated"),
    ("atom", "published"),
}
_ITEM_INERT = {
    ("", "comments"),
    ("", "source"),
    ("media", "group"),
    ("media", "credit"),
    ("media", "rating"),
    ("media", "restriction"),
    ("media", "license"),
    ("media", "player"),
    ("media", "copyright"),
    ("media", "hash"),
    ("atom", "link"),  # rel="alternate" inside an item is checked below
}
# Channel elements whose handlers only fill feed keys bot.parse never reads.
_CHANNEL_TEXT = {"title", "link", "ttl"}


def _names_with_handlers() -> frozenset[str]:
    """Every ``prefix_local`` (or ``local``) feedparser has a start or end
    handler for: such an element may change what it returns."""
    names = set()
    for attribute in dir(_FeedParserMixin):
        for marker in ("_start_", "_end_"):
            if attribute.startswith(marker):
                names.add(attribute[len(marker) :])
    return frozenset(names)


_HANDLED = _names_with_handlers()
_HANDLED_LOCALS = frozenset(name.rpartition("_")[2] for name in _HANDLED)


def _fix_text(text: str) -> str:
    """What feedparser does to every element's text in a UTF-8 document:
    strip it, undo UTF-8 read as Latin-1 once, map C1 controls to the
    Windows-1252 characters they stand for."""
    text = text.strip()
    try:
        text = text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return text.translate(_cp1252)


class _Unusual(Exception):
    """Something feedparser would read differently: let it parse."""


def _split(tag: str, prefixes: dict[str, str]) -> tuple[str, str]:
    """``{uri}local`` -> (feedparser's prefix, lowercased local name).

    The namespaces feedparser reads as plain RSS/Atom names (Atom's among
    them) are ("atom", local). A namespace it does not know it names by the
    document's own prefix (``prefixes``, from the xmlns declarations), as it
    does: "media" bound to a misspelt URI is still Media RSS to it. An
    unknown namespace without one clear prefix is ("?", local)."""
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        lowered = uri.lower()
        prefix = _NS_PREFIX.get(lowered)
        if prefix is None:
            return prefixes.get(lowered, "?"), local.lower()
        return (prefix or "atom"), local.lower()
    return "", tag.lower()


def _document_prefixes(body: bytes) -> dict[str, str]:
    """Namespace URI (lowercased) -> the one prefix the document binds it to
    ("?" when it binds it to several)."""
    prefixes: dict[str, str] = {}
    for prefix, uri in _XMLNS.findall(body):
        key = uri.decode("utf-8", "replace").lower()
        name = prefix.decode("ascii", "replace").lower()
        prefixes[key] = name if prefixes.get(key, name) == name else "?"
    return prefixes


def _text(element: Element) -> str:
    if len(element):
        raise _Unusual("markup inside a text element")
    return _fix_text(element.text or "")


def _attributes(element: Element) -> dict[str, str]:
    attributes = {}
    for name, value in element.attrib.items():
        if name[:1] == "{":
            raise _Unusual("a namespaced attribute")
        name = name.lower()
        attributes[name] = value.lower() if name in ("rel", "type") else value
    return attributes


def _check_element(prefix: str, local: str, allowed: set[tuple[str, str]]) -> None:
    if (prefix, local) in allowed:
        return
    if prefix == "?":
        # An unknown namespace: feedparser names it by the document's prefix,
        # which ElementTree does not keep; only a name no handler has is safe.
        if local in _HANDLED_LOCALS:
            raise _Unusual(f"unknown namespace element {local}")
        return
    if (f"{prefix}_{local}" if prefix and prefix != "atom" else local) in _HANDLED:
        raise _Unusual(f"element {prefix}:{local}")


def fast_parse(body: bytes, url: str, content_type: str | None) -> dict[str, Any] | None:
    """feedparser's result (the keys ``bot.parse`` reads) for a plain UTF-8
    RSS 2.0 document, or None when feedparser must parse it."""
    bozo = _utf8_document(body, content_type)
    if bozo is None:
        return None
    try:
        root = SafeElementTree.fromstring(body, forbid_dtd=False)
    except (SafeElementTree.ParseError, DefusedXmlException, ValueError):
        return None
    if root.tag != "rss" or not root.get("version", "").startswith("2."):
        return None
    base = url if url.lower().startswith(("http://", "https://")) else ""
    try:
        for element in root.iter():
            if _XML_BASE in element.attrib or "base" in element.attrib:
                raise _Unusual("xml:base")
        channels = [child for child in root if child.tag == "channel"]
        if len(channels) != 1 or len(root) != 1:
            raise _Unusual("not one channel")
        channel = channels[0]
        prefixes = _document_prefixes(body)
        feed, items = _channel(channel, base, prefixes)
        if sum(1 for _ in root.iter("item")) != len(items):
            raise _Unusual("items outside the channel")
        entries = [_item(item, base, prefixes) for item in items]
    except _Unusual:
        return None
    return {"version": "rss20", "feed": feed, "entries": entries, "bozo": bozo}


def _utf8_document(body: bytes, content_type: str | None) -> bool | None:
    """Whether feedparser would read ``body`` as UTF-8 (RFC 3023 as it
    applies it), and then whether it flags it (bozo); None when it would
    read it otherwise or this module cannot tell."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None  # UTF-16 or UTF-32
    declared = _DECLARED_ENCODING.match(body.removeprefix(b"\xef\xbb\xbf"))
    declared_utf8 = bool(declared) and declared.group(1).lower() == b"utf-8"  # type: ignore[union-attr]
    if declared and not declared_utf8:
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if content_type is None:
        # Headers without a Content-Type: flagged, and read as the
        # declared encoding or else as ISO-8859-1.
        return True if declared_utf8 else None
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    charset = _CHARSET.search(parameters)
    if charset and charset.group(1).lower() != "utf-8":
        return None
    if media_type in _APPLICATION_XML or (
        media_type.startswith("application/") and media_type.endswith("+xml")
    ):
        return False
    if media_type in _TEXT_XML or (media_type.startswith("text/") and media_type.endswith("+xml")):
        # Without a charset RFC 3023 says US-ASCII: a non-ASCII body is
        # flagged, then read as the UTF-8 it declares.
        return not charset and not body.isascii()
    return None


def _channel(
    channel: Element, base: str, prefixes: dict[str, str]
) -> tuple[dict[str, Any], list[Element]]:
    feed: dict[str, Any] = {}
    items: list[Element] = []
    for child in channel:
        if not isinstance(child.tag, str):
            continue
        prefix, local = _split(child.tag, prefixes)
        if (prefix, local) == ("", "item"):
            items.append(child)
            continue
        if items and local in ("title", "link"):
            raise _Unusual("channel title or link after the items")
        if prefix == "" and local in _CHANNEL_TEXT:
            text = _text(child)
            if local == "title":
                if text and "title" not in feed:
                    feed["title"] = text
            elif local == "link":
                feed["link"] = _LINK_ENTITY.sub(r"&\g<1>", _urljoin(base, text) if text else "")
            else:
                feed["ttl"] = text
        elif (prefix, local) == ("atom", "link"):
            attributes = _attributes(child)
            rel = attributes.get("rel", "alternate")
            if "href" not in attributes:
                raise _Unusual("an Atom link without href")
            # Every channel link, as feedparser lists them: rel="hub" and
            # rel="self" name the feed's WebSub hub and topic (bot.websub).
            link = {"rel": rel, "href": _urljoin(base, attributes["href"])}
            if "type" in attributes:
                link["type"] = attributes["type"]
            feed.setdefault("links", []).append(link)
            if (
                rel == "alternate"
                and attributes.get("type", "text/html") == "text/html"
                and "href" in attributes
            ):
                feed["link"] = _urljoin(base, attributes["href"])
        elif local in ("title", "link"):
            raise _Unusual(f"channel {prefix}:{local}")  # dc:title, media:title, ...
        # Everything below a channel element that is not an item (image,
        # textInput, ...) stays in that element's own context in feedparser,
        # except text elements inside an unknown wrapper.
        if prefix not in ("",) or local not in ("image", "textinput", "cloud"):
            for inner in child.iter():
                if (
                    inner is not child
                    and isinstance(inner.tag, str)
                    and _split(inner.tag, prefixes)[1] in ("title", "link", "item")
                ):
                    raise _Unusual("title or link nested in a channel element")
    return feed, items


def _item(item: Element, base: str, prefixes: dict[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    allowed = _ITEM_READ | _ITEM_INERT
    link: str | None = None
    permalink: str | None = None
    descriptions = 0
    media_title = False
    tags: list[dict[str, Any]] = []
    enclosures: list[dict[str, Any]] = []
    media_content: list[dict[str, Any]] = []
    media_thumbnail: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for element in item.iter():
        if element is item or not isinstance(element.tag, str):
            continue
        prefix, local = _split(element.tag, prefixes)
        _check_element(prefix, local, allowed)
        key = (prefix, local)
        if key in (("media", "group"), ("media", "content")):
            if key == ("media", "content"):
                media_content.append(_attributes(element))
            continue
        # Only media elements may nest (in media:group, media:content).
        if (
            element not in item
            and key != ("media", "thumbnail")
            and not (prefix == "media" and key in allowed)
        ):
            raise _Unusual("an element nested in an item element")
        handle = _ITEM_HANDLERS.get(key)
        if key == ("media", "title"):
            # Counts as the title only where the item has none of its own.
            media_title = True
        elif key == ("media", "description"):
            # feedparser takes a second description, while there is no
            # content yet, as the item's content.
            if "summary" not in entry or content:
                raise _Unusual("a media description standing for the summary")
            content.append({"type": "text/plain", "value": _text(element)})
        elif key == ("", "title"):
            text = _text(element)
            if "title" not in entry or (not entry["title"] and text):
                entry["title"] = text
        elif key == ("", "link"):
            text = _text(element)
            if text:
                text = _urljoin(base, text)
            link = _LINK_ENTITY.sub(r"&\g<1>", text.replace("&amp;", "&"))
        elif key == ("", "guid"):
            text = _text(element)
            is_link = element.get("isPermaLink", element.get("ispermalink", "true")) == "true"
            if is_link and text:
                text = _urljoin(base, text)
            entry["id"] = text
            if is_link and permalink is None and link is None:
                permalink = text
        elif key == ("", "description"):
            descriptions += 1
            if descriptions > 1 or content:
                raise _Unusual("a second description, or one after the content")
            entry["summary"] = _text(element)
        elif key == ("content", "encoded"):
            value = _text(element)
            content.append({"type": "text/html", "value": value})
            entry.setdefault("summary", value)
        elif key in (("", "category"), ("dc", "subject")):
            term = _text(element)
            if term:
                tags.append({"term": term, "scheme": element.get("domain"), "label": None})
        elif key == ("", "enclosure"):
            attributes = _attributes(element)
            if "url" in attributes and "href" not in attributes:
                attributes["href"] = attributes.pop("url")
            enclosures.append(attributes)
        elif key == ("media", "thumbnail"):
            attributes = _attributes(element)
            if "url" not in attributes:
                text = _text(element)
                if text:
                    attributes["url"] = text
            media_thumbnail.append(attributes)
        elif handle is not None:
            handle(entry, _text(element))
        elif key == ("atom", "link"):
            attributes = _attributes(element)
            if attributes.get("rel", "alternate") == "alternate" or "href" not in attributes:
                raise _Unusual("an Atom link standing for the item's link")
        elif key == ("", "source") and len(element):
            raise _Unusual("markup inside source")
    if media_title and not entry.get("title"):
        raise _Unusual("a media title standing for the title")
    if link is not None:
        entry["link"] = link
    elif permalink is not None:
        entry["link"] = permalink
    if "title" in entry:
        looks_html = _FeedParserMixin.looks_like_html(entry["title"])
        entry["title_detail"] = {"type": "text/html" if looks_html else "text/plain"}
    if tags:
        entry["tags"] = tags
    if enclosures:
        entry["enclosures"] = enclosures
    if media_content:
        entry["media_content"] = media_content
    if media_thumbnail:
        entry["media_thumbnail"] = media_thumbnail
    if content:
        entry["content"] = content
    return entry


def _dated(field: str) -> Callable[[dict[str, Any], str], None]:
    def save(entry: dict[str, Any], text: str) -> None:
        entry[field] = text
        entry[f"{field}_parsed"] = _parse_date(text)

    return save


def _author(entry: dict[str, Any], text: str) -> None:
    entry["author"] = text


_ITEM_HANDLERS: dict[tuple[str, str], Callable[[dict[str, Any], str], None]] = {
    ("", "pubdate"): _dated("published"),
    ("dc", "date"): _dated("updated"),
    ("atom", "updated"): _dated("updated"),
    ("atom", "published"): _dated("published"),
    ("", "author"): _author,
    ("dc", "creator"): _author,
}
