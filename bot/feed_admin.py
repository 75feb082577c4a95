"""Managing the feeds table at runtime: add, remove, pause, resume, import
and export OPML. Shared by the CLI (and any later front end); no SQL and no
I/O besides storage.

Feeds added here are ``runtime`` feeds: they live in the database only, the
config sync leaves them alone, and they are not trusted like the operator's
config file (see ``bot.fetch``'s address checks for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.clock import Clock
from bot.config import Config
from bot.errors import InputError
from bot.models import FeedHealth
from bot.netguard import literal_address, refusal
from bot.opml import ExportedFeed, ImportPlan, OpmlDocument, export_opml, plan_import
from bot.storage import Storage

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


@dataclass(frozen=True, slots=True)
class AddedFeed:
    feed: FeedHealth
    created: bool  # False: the URL was already listed, nothing changed


class FeedAdmin:
    def __init__(self, config: Config, storage: Storage, clock: Clock) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock

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
