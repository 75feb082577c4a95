"""Cut a feed body into its items by a byte scan, without parsing XML. Pure.

A feed that gained one story still sends all thirty, and parsing them is
most of what a polling round costs. ``split_items`` finds each raw
``<item>…</item>`` (RSS) or ``<entry>…</entry>`` (Atom) and digests it
together with everything around the items (the *frame*: the channel's own
elements, the XML declaration, namespaces) and what the parse depends on
besides the bytes (the feed's URL, the Content-Type). The pipeline keeps the
digests of the last parsed body; a new body whose items are mostly known is
parsed as a reduced document, the frame with only the new or changed items
in it (``ItemSplit.reduced``). Because every digest covers the frame, a
changed frame makes every item new, which means a full parse; only the
feed's own dates are left out of it (see ``_VOLATILE``), as they change
with every new item and never change how an item parses.

The scan gives up (``None``: parse the whole body) whenever it could be
wrong: no items, both ``<item>`` and ``<entry>``, items nested, unclosed or
self-closing, prefixed or oddly cased item tags (``<atom:entry>``,
``<Item>``: feedparser reads them as entries too), anything but whitespace
between two items, a DTD with an internal subset (its entities could expand
to markup), and encodings where ``<`` or ``]]>`` might be part of a
multi-byte character (anything but UTF-8, ASCII, ISO-8859-x and
windows-125x; UTF-16 has no ASCII ``<item`` at all). CDATA sections,
comments and processing instructions are skipped over, so an ``<item`` in
their text is never taken for a tag.

``items_to_remember`` and ``reduced_items_to_remember`` then check what the
parser made of the body before its digests are trusted (one entry per item,
no key shared with an item that was cut out, no malformed XML); when a check
fails the caller parses the whole body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# A tag that may open or close an item, or markup whose text must be skipped.
_MARKUP = re.compile(
    rb"<(?:!\[CDATA\[|!--|\?|!DOCTYPE|(/?)((?:[\w.-]+:)?(?i:item|entry))(?=[\s/>]))"
)
_MARKUP_END = {b"<![CDATA[": b"]]>", b"<!--": b"-->", b"<?": b"?>"}
_ITEM_NAMES = (b"item", b"entry")
_WHITESPACE = b" \t\r\n"
_XML_DECLARATION = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
# Encodings in which every byte below 0x80 is the ASCII character itself.
_ASCII_SAFE = re.compile(
    r"(?:utf-?8|us-ascii|ascii|iso[-_]?8859[-_]\d{1,2}|latin-?1|l1|"
    r"(?:windows|cp)-?125\d)",
    re.IGNORECASE,
)
_UTF8_BOM = b"\xef\xbb\xbf"
# Left out of the frame's digest: the feed's own dates, which move with every
# new item (WordPress sets <lastBuildDate> to the newest post's time) and
# never change how an item parses; the parser is still given the body's own
# frame, so they are read as ever. Only elements of plain text without
# attributes: nothing that could open a scope (a namespace, xml:base) or
# reach past its own closing tag.
_VOLATILE = re.compile(
    rb"<(lastBuildDate|pubDate|updated|published|modified|dc:date|dcterms:modified)>"
    rb"[^<]*</\1\s*>"
)


@dataclass(frozen=True, slots=True)
class ItemSplit:
    """A body cut into frame and items. ``spans`` are the items' byte ranges
    in feed order; ``digests`` name each item within this frame."""

    body: bytes
    spans: tuple[tuple[int, int], ...]
    digests: tuple[str, ...]

    def reduced(self, keep: Sequence[int]) -> bytes:
        """The body with only the items at the indices ``keep`` (in feed
        order) left in it: what the parser is given instead of the whole."""
        start, end = self.spans[0][0], self.spans[-1][1]
        kept = b"\n".join(self.body[self.spans[i][0] : self.spans[i][1]] for i in keep)
        return self.body[:start] + kept + self.body[end:]


def split_items(body: bytes, url: str, content_type: str | None) -> ItemSplit | None:
    """The body's items and their digests, or None when the body must be
    parsed whole (see the module's docstring for when)."""
    if not _ascii_safe(body, content_type):
        return None
    spans = _item_spans(body)
    if not spans:
        return None
    frame = hashlib.blake2b(digest_size=16)
    head, tail = body[: spans[0][0]], body[spans[-1][1] :]
    for part in (url.encode(), (content_type or "").encode(), _VOLATILE.sub(b"", head)):
        frame.update(len(part).to_bytes(8, "big") + part)
    frame.update(_VOLATILE.sub(b"", tail))
    digests = []
    for start, end in spans:
        item = frame.copy()
        item.update(b"\0item\0" + body[start:end])
        digests.append(item.hexdigest())
    return ItemSplit(body, tuple(spans), tuple(digests))


def changed_items(split: ItemSplit, known: Mapping[str, str]) -> list[int] | None:
    """The indices of the items not among ``known`` digests (new or
    changed), or None when no item is known: then there is nothing to cut."""
    changed = [i for i, digest in enumerate(split.digests) if digest not in known]
    return changed if len(changed) < len(split.digests) else None


def items_to_remember(split: ItemSplit, keys: Sequence[str], bozo: bool) -> dict[str, str]:
    """Digest → entry key for every item of a body parsed whole into entries
    with ``keys``; empty when the parse does not map one entry to each item
    (then the next body is parsed whole too). Malformed XML is never
    remembered: feedparser's lenient parser reads it differently as a
    whole than in pieces."""
    if bozo or len(keys) != len(split.digests):
        return {}
    return dict(zip(split.digests, keys, strict=True))


def reduced_items_to_remember(
    split: ItemSplit,
    changed: Sequence[int],
    known: Mapping[str, str],
    keys: Sequence[str],
    bozo: bool,
) -> dict[str, str] | None:
    """Digest → entry key for every item of the body, when the reduced
    document of the ``changed`` items parsed into entries with ``keys``
    means what the whole body would have: one entry per changed item, well
    formed, and no key also held by an item that was cut out (the whole
    body would keep only the first of the two). None: parse it whole."""
    if bozo or len(keys) != len(changed):
        return None
    fresh = dict(zip((split.digests[i] for i in changed), keys, strict=True))
    kept = {digest: known[digest] for digest in split.digests if digest not in fresh}
    if not set(keys).isdisjoint(kept.values()):
        return None
    return {d: fresh[d] if d in fresh else kept[d] for d in split.digests}


def _ascii_safe(body: bytes, content_type: str | None) -> bool:
    """Whether ``<``, ``>`` and ``]`` in the body can only be themselves."""
    head = body.removeprefix(_UTF8_BOM)[:512]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in head:
        return False  # UTF-16 or UTF-32
    charsets = []
    declared = _XML_DECLARATION.match(head)
    if declared:
        charsets.append(declared.group(1).decode("ascii"))
    given = _CHARSET.search(content_type or "")
    if given:
        charsets.append(given.group(1))
    return all(_ASCII_SAFE.fullmatch(name) for name in charsets)


def _item_spans(body: bytes) -> list[tuple[int, int]]:
    """The byte ranges of the body's items, or [] when unsure."""
    spans: list[tuple[int, int]] = []
    name: bytes | None = None
    opened = -1  # where the item being read starts; -1 outside items
    position = 0
    while (found := _MARKUP.search(body, position)) is not None:
        start, tag = found.start(), found.group(2)
        if tag is None:  # CDATA, a comment, a processing instruction, a DTD
            opener = found.group(0)
            if opener == b"<!DOCTYPE":
                close = body.find(b">", start)
                if close < 0 or b"[" in body[start:close]:
                    return []
                position = close + 1
                continue
            close = body.find(_MARKUP_END[opener], found.end())
            if close < 0:
                return []
            position = close + len(_MARKUP_END[opener])
            continue
        if tag not in _ITEM_NAMES or (name is not None and tag != name):
            return []  # <atom:entry>, <Item>, or items of both kinds
        name = tag
        tag_end = body.find(b">", found.end())
        if tag_end < 0:
            return []
        if found.group(1):  # a closing tag
            if opened < 0 or body[found.end() : tag_end].strip(_WHITESPACE):
                return []
            spans.append((opened, tag_end + 1))
            opened = -1
        else:
            if opened >= 0 or body[tag_end - 1 : tag_end] == b"/":
                return []  # nested, or an empty <item/>
            if spans and body[spans[-1][1] : start].strip(_WHITESPACE):
                return []  # something else between two items
            opened = start
        position = tag_end + 1
    return spans if opened < 0 else []
