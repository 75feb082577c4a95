"""Managing the feeds table at runtime: discover, add, remove, pause,
resume, check, list, import and export OPML. Shared by the CLI and the
operators' Telegram commands (``bot.telegram.feed_handlers``); no SQL, and no
I/O besides storage and, for discovery and checks, the runtime's fetcher and
poller.

Feeds added here are ``runtime`` feeds: they live in the database only, the
config sync leaves them alone, and they are not trusted like the operator's
config file (see ``bot.fetch``'s address checks for them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from bot.categorize import Categorizer
from bot.clock import Clock
from bot.config import Config
from bot.discover import DiscoveryError, Fetched, FoundFeed, discover
from bot.errors import InputError
from bot.fetch import Fetcher
from bot.models import FeedHealth
from bot.netguard import literal_address, refusal
from bot.opml import ExportedFeed, ImportPlan, OpmlDocument, export_opml, plan_import
from bot.parse_pool import ParsePool
from bot.parsed import ParsedFeed
from bot.pipeline import FeedOutcome, Poller
from bot.runtime import Runtime
from bot.storage import Storage

WEEK = timedelta(days=7)
DISCOVERY_SECONDS = 60.0  # for all the candidates of one URL

MAX_URL_LENGTH = 2000


def checked_feed_url(value: str) -> str:
    """An http(s) URL with a host, or ``InputError`` naming the problem."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise InputError(f"not a valid URL: {value[:200]!r}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InputError(f"not an http(s) URL: {value[:200]!r}")
    if len(value) > MAX_URL_LENGTH:
        raise InputError(f"URL longer than {MAX_URL_LENGTH} characters")
    return value


def feed_state(feed: FeedHealth) -> str:
    """removed, disabled, paused, failing, ok, or new (never fetched yet)."""
    if not feed.configured:
        return "removed"  # dropped from the config or removed; its articles are kept
    if feed.disabled:
        return "disabled"
    if feed.paused:
        return "paused"
    if feed.error_count:
        return "failing"
    return "ok" if feed.last_checked_at else "new"


@dataclass(frozen=True, slots=True)
class AddedFeed:
    feed: FeedHealth
    created: bool  # False: the URL was already listed, nothing changed


@dataclass(frozen=True, slots=True)
class FeedLine:
    feed: FeedHealth
    week_articles: int  # published in the last seven days


@dataclass(frozen=True, slots=True)
class FeedPage:
    lines: tuple[FeedLine, ...]
    number: int  # from 0, clamped to the pages there are
    pages: int  # at least 1
    total: int


@dataclass(frozen=True, slots=True)
class Discovery:
    found: tuple[FoundFeed, ...]
    listed: dict[str, FeedHealth]  # the found URLs that are already listed


class FeedAdmin:
    """``fetcher``, ``parse_pool`` and ``poller`` are needed only by
    discovery and checks (see ``for_runtime``); the rest is storage alone."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        clock: Clock,
        *,
        fetcher: Fetcher | None = None,
        parse_pool: ParsePool | None = None,
        poller: Poller | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock
        self._fetcher = fetcher
        self._parse_pool = parse_pool
        self._poller = poller

    @classmethod
    def for_runtime(cls, runtime: Runtime) -> FeedAdmin:
        """Discovery fetches like the poller fetches a runtime feed: through
        the public-only client unless ``[security] allow_private_addresses``."""
        fetcher = Fetcher(runtime.http, runtime.config.polling, runtime.untrusted_http)
        return cls(
            runtime.config,
            runtime.storage,
            runtime.clock,
            fetcher=fetcher,
            parse_pool=runtime.parse_pool,
            poller=runtime.poller,
        )

    def checked_categories(self, category_ids: Sequence[str]) -> tuple[str, ...]:
        known = {c.id for c in self.config.categories}
        chosen: list[str] = []
        for category_id in category_ids:
            if category_id not in known:
                names = ", ".join(sorted(known)) or "none defined"
                raise InputError(f"unknown category {category_id!r} (known: {names})")
            if category_id not in chosen:
                chosen.append(category_id)
        return tuple(chosen)

    async def find(self, wanted: str) -> FeedHealth:
        """A feed by id, by its URL or by the URL it moved to."""
        wanted = wanted.strip()
        feeds = await self.storage.feeds.all_feeds()
        if wanted.isdigit():
            found = next((f for f in feeds if f.id == int(wanted)), None)
        else:
            found = next((f for f in feeds if wanted in (f.url, f.fetch_url)), None)
        if found is None:
            raise InputError(f"no feed {wanted!r} in the database (see `newsbot feeds list`)")
        return found

    async def listed(self, url: str) -> FeedHealth | None:
        """The listed feed with this URL (or that moved to it), if any."""
        url = url.strip()
        for feed in await self.storage.feeds.all_feeds():
            if feed.configured and url in (feed.url, feed.fetch_url):
                return feed
        return None

    async def discover(self, url: str) -> Discovery:
        """The feeds at ``url`` (a feed, or a site's page naming its feeds),
        each fetched and parsed; ``DiscoveryError`` when there is none."""
        url = checked_feed_url(url)
        self._refuse_literal_private_address(url)
        fetcher, parse_pool = self._fetcher, self._parse_pool
        if fetcher is None or parse_pool is None:
            raise InputError("discovery needs the bot's fetcher (FeedAdmin.for_runtime)")

        async def fetch(candidate: str) -> Fetched:
            result = await fetcher.fetch(
                candidate, etag=None, last_modified=None, now=self.clock.now(), trusted=False
            )
            return Fetched(result.final_url, result.body, result.content_type)

        async def parse(body: bytes, where: str, content_type: str | None) -> ParsedFeed:
            return await parse_pool.parse(body, where, content_type)

        try:
            # An operator waits for the answer: the candidates together get a
            # bounded time, not each one.
            async with asyncio.timeout(DISCOVERY_SECONDS):
                found = await discover(url, fetch, parse, Categorizer(self.config.categories))
        except TimeoutError:
            raise DiscoveryError(
                f"looking for feeds at {url[:200]} took longer than {DISCOVERY_SECONDS:g} s"
            ) from None
        listed: dict[str, FeedHealth] = {}
        for feed in await self.storage.feeds.all_feeds():
            if feed.configured:
                for candidate in found:
                    if candidate.url in (feed.url, feed.fetch_url):
                        listed[candidate.url] = feed
        return Discovery(found, listed)

    async def check(self, wanted: str) -> tuple[FeedHealth, FeedOutcome | None]:
        """Fetch, parse and store one listed feed now, as a round would;
        the outcome is None when another poller is fetching it right now."""
        if self._poller is None:
            raise InputError("checking a feed needs the bot's poller (FeedAdmin.for_runtime)")
        feed = await self.find(wanted)
        if not feed.configured:
            raise InputError(f"feed {feed.id} is not listed (removed); nothing to check")
        return feed, await self._poller.check_feed(feed.id)

    async def page(self, number: int, size: int) -> FeedPage:
        """One page of the listed feeds, by id, with this week's article counts."""
        feeds = [f for f in await self.storage.feeds.all_feeds() if f.configured]
        feeds.sort(key=lambda f: f.id)
        pages = max(1, math.ceil(len(feeds) / size))
        number = min(max(number, 0), pages - 1)
        shown = feeds[number * size : (number + 1) * size]
        counts = await self.storage.articles.feed_counts(self.clock.now() - WEEK)
        lines = tuple(FeedLine(f, counts.get(f.id, 0)) for f in shown)
        return FeedPage(lines, number, pages, len(feeds))

    async def details(self, wanted: str) -> FeedLine:
        feed = await self.find(wanted)
        counts = await self.storage.articles.feed_counts(self.clock.now() - WEEK)
        return FeedLine(feed, counts.get(feed.id, 0))

    async def add(self, url: str, category_ids: Sequence[str]) -> AddedFeed:
        url = checked_feed_url(url)
        categories = self.checked_categories(category_ids)
        self._refuse_literal_private_address(url)
        added = await self.storage.feeds.add_runtime_feeds([(url, categories)], self.clock.now())
        return AddedFeed(await self.find(url), created=bool(added))

    def _refuse_literal_private_address(self, url: str) -> None:
        """A URL whose host is a non-public address by itself would only ever
        fail to fetch (``bot.netguard``): say so now. Names are resolved and
        checked at each fetch."""
        if self.config.security.allow_private_addresses:
            return
        address = literal_address(urlsplit(url).hostname or "")
        reason = refusal(address) if address is not None else None
        if reason is not None:
            raise InputError(
                f"{url[:200]} is {address}, {reason}: feeds added at runtime must be public "
                "(see [security] allow_private_addresses)"
            )

    async def remove(self, wanted: str) -> FeedHealth:
        feed = await self.find(wanted)
        if feed.origin == "config" and feed.configured:
            raise InputError(
                f"feed {feed.id} is in the configuration file; remove it there "
                "(or `newsbot feeds pause` it)"
            )
        if not feed.configured:
            raise InputError(f"feed {feed.id} was already removed")
        await self.storage.feeds.remove_runtime_feed(feed.id)
        return feed

    async def pause(self, wanted: str) -> FeedHealth:
        feed = await self.find(wanted)
        await self.storage.feeds.pause_feed(feed.id)
        return feed

    async def resume(self, wanted: str) -> FeedHealth:
        feed = await self.find(wanted)
        await self.storage.feeds.resume_feed(feed.id, self.clock.now())
        return feed

    async def plan_import(self, document: OpmlDocument, default_category: str | None) -> ImportPlan:
        if default_category is not None:
            self.checked_categories([default_category])
        present: set[str] = set()
        for feed in await self.storage.feeds.all_feeds():
            if feed.configured:
                present.update((feed.url, feed.fetch_url))
        return plan_import(document, self.config.categories, present, default_category)

    async def apply_import(self, plan: ImportPlan) -> int:
        """Add the plan's new feeds in one transaction; how many were added."""
        added = await self.storage.feeds.add_runtime_feeds(
            [(f.url, f.categories) for f in plan.new], self.clock.now()
        )
        return len(added)

    async def export(self) -> bytes:
        """Every listed feed (paused ones too) as OPML 2.0."""
        feeds = [
            ExportedFeed(
                url=f.url,
                title=f.name or f.title,
                html_url=f.site_url,
                categories=f.categories,
            )
            for f in await self.storage.feeds.all_feeds()
            if f.configured
        ]
        return export_opml(feeds, self.config.categories, self.clock.now())
