"""Values that travel between pipeline stages, named by where they go.

``FeedForUpdate`` comes out of storage; ``NewArticle`` and
``UnchangedFetch`` go into storage; ``Article`` comes back out of it for
display. All are frozen values (pydantic models, and a plain dataclass for
the one made a thousand times a round); datetimes are aware UTC. What the
parser makes is in ``bot.parsed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class FeedForUpdate(_Value):
    id: int
    url: str  # as configured: the feed's identity
    fetch_url: str  # where to fetch it now (after permanent redirects)
    title: str | None
    name: str | None  # operator's display name from the config
    categories: tuple[str, ...]
    etag: str | None
    last_modified: str | None
    body_hash: str | None
    error_count: int
    ever_fetched: bool  # False until the first successful parse (no-flood rule)
    interval: float | None
    origin: str = "config"  # "config": the operator's file; "runtime": added later, untrusted


@dataclass(frozen=True, slots=True)
class UnchangedFetch:
    """A fetch that brought nothing new (a 304, or the body of the last
    parse again): the feed's new validators and next check time."""

    feed_id: int
    now: datetime
    next_check: datetime
    etag: str | None
    last_modified: str | None
    fetch_url: str | None  # where a permanent redirect moved it; None: as before


class NewArticle(_Value):
    key: str
    url: str
    title: str
    summary: str
    author: str | None
    published: datetime
    image_url: str | None
    categories: tuple[str, ...]
    tags: tuple[str, ...] = ()  # the entry's own, as written: keyword filters read them


class Article(_Value):
    id: int
    feed_id: int
    url: str
    title: str
    summary: str
    author: str | None
    published: datetime
    image_url: str | None
    source: str  # the feed's display name
    categories: tuple[str, ...]
    tags: tuple[str, ...] = ()  # the entry's own


class FeedHealth(_Value):
    id: int
    url: str
    fetch_url: str
    title: str | None
    error_count: int
    last_error: str | None
    disabled: bool
    next_check_at: datetime | None
    last_success_at: datetime | None
    articles: int
    configured: bool = True  # False: dropped from the config, kept for its articles
    last_checked_at: datetime | None = None
    origin: str = "config"  # "config" (the configuration file) or "runtime" (CLI, OPML)
    paused: bool = False  # by the operator; not polled until resumed
    categories: tuple[str, ...] = ()
    name: str | None = None  # the operator's display name (config feeds)
    site_url: str | None = None
