"""What the parser makes: ``ParsedFeed`` and its ``ParsedEntry``s.

Plain frozen dataclasses, not pydantic models like the rest of
``bot.models``: the parse workers (``bot.parse_pool``) build them, and a
worker that never imports pydantic is about 7 MB smaller, twice over with
two workers. The parser checks its own output, so there is nothing for a
validator to do here. Datetimes are aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    key: str  # stable per feed: guid, else link, else hash of title+summary
    url: str  # absolute http(s), canonical
    title: str  # plain text, never empty
    summary: str  # plain text, cut at a word boundary
    author: str | None = None
    published: datetime | None = None  # published, else updated; None if the feed has neither
    image_url: str | None = None
    tags: tuple[str, ...] = ()  # the entry's own <category>/Atom terms, as written


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    site_url: str | None
    version: str  # feedparser's format name, e.g. "rss20", "atom10"
    ttl_seconds: float | None = None  # RSS <ttl>, a hint of how often to poll
    bozo: bool = False  # malformed XML that was salvaged
    entries: tuple[ParsedEntry, ...] = ()
    # WebSub (bot.websub): the hubs the feed names (rel="hub") and its own URL (rel="self").
    hubs: tuple[str, ...] = ()
    self_url: str | None = None
