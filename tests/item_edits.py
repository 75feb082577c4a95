"""Edits of a real feed body the way publishers make them: a story added at
the top, one story's title corrected, stories dropped and reordered. Byte
edits of the raw items, so the rest of the body stays exactly as served."""

from __future__ import annotations

import re

_ITEM = re.compile(rb"<(item|entry)[\s>].*?</\1\s*>", re.DOTALL)
_IDENTITY = re.compile(rb"(<(link|guid|id)\b[^>]*>)(.*?)(</\2>)", re.DOTALL)
_HREF = re.compile(rb"(<link\b[^>]*?\bhref=[\"']https?://[^/\"']+)")
_ABOUT = re.compile(rb"(<item\b[^>]*?\brdf:about=[\"']https?://[^/\"']+)")  # RSS 1.0 ids
_TITLE = re.compile(rb"(<title\b[^>]*>)(\s*(?:<!\[CDATA\[)?)")
_HOST = re.compile(rb"(https?://[^/\s<\"'\]]+)")


def item_spans(body: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in _ITEM.finditer(body)]


def _fresh_identity(match: re.Match[bytes]) -> bytes:
    opening, _, text, closing = match.groups()
    if _HOST.search(text):
        text = _HOST.sub(rb"\1/fresh", text, count=1)
    else:
        text = re.sub(rb"^(\s*(?:<!\[CDATA\[)?)", rb"\1fresh-", text, count=1)
    return opening + text + closing


def fresh_copy(item: bytes) -> bytes:
    """Another story shaped like ``item``: new id, new link, new title."""
    item = _IDENTITY.sub(_fresh_identity, item)
    item = _HREF.sub(rb"\1/fresh", item)
    item = _ABOUT.sub(rb"\1/fresh", item)
    return _TITLE.sub(rb"\1\2Fresh: ", item, count=1)


_FEED_DATE = re.compile(rb"(<(lastBuildDate|pubDate|updated|dc:date)>)([^<]*)(</\2>)")


def _new_date(match: re.Match[bytes]) -> bytes:
    opening, _, old, closing = match.groups()
    new = b"2026-03-01T11:59:00Z" if b"T" in old else b"Sun, 01 Mar 2026 11:59:00 GMT"
    return opening + new + closing


def add_item_at_top(body: bytes) -> bytes:
    """A story added on top, and the feed's own dates moved to its time, as
    publishers do."""
    spans = item_spans(body)
    start, end = spans[0]
    head = _FEED_DATE.sub(_new_date, body[:start])
    return head + fresh_copy(body[start:end]) + b"\n" + body[start:]


def retitle_item(body: bytes, index: int) -> bytes:
    """The title of the item at ``index`` corrected by its publisher."""
    spans = item_spans(body)
    start, end = spans[min(index, len(spans) - 1)]
    corrected = _TITLE.sub(rb"\1\2Corrected: ", body[start:end], count=1)
    return body[:start] + corrected + body[end:]


def reorder_and_drop_last(body: bytes) -> bytes:
    """The items in reverse order, the last (oldest) one gone."""
    spans = item_spans(body)
    kept = [body[s:e] for s, e in reversed(spans[:-1])]
    return body[: spans[0][0]] + b"\n".join(kept) + body[spans[-1][1] :]
