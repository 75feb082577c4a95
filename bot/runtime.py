"""Opens and closes the long-lived parts (database, HTTP client, parse
workers) in one place, for the commands that poll: the bot and ``poll --once``.

Opening a runtime makes the feeds table follow the configuration, so it is
only for them; commands that only read open the database alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.fetch import Fetcher, make_client, make_public_only_client
from bot.netguard import Resolver, system_resolver
from bot.parse_pool import ParsePool, Parser
from bot.pipeline import Poller
from bot.services import NewsService
from bot.storage import Storage, open_storage

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    clock: Clock
    storage: Storage
    http: httpx.AsyncClient
    untrusted_http: httpx.AsyncClient | None  # runtime feeds, public addresses only
    parse_pool: ParsePool
    poller: Poller
    news: NewsService

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rand: Callable[[], float] | None = None,
        parser: Parser | None = None,
        sync_feeds: bool = True,
        resolver: Resolver = system_resolver,
    ) -> Runtime:
        """``sync_feeds=False`` for a command that polls one feed on the
        operator's say-so and must leave the feeds table alone."""
        clock = clock or SystemClock()
        storage = await open_storage(config.storage)
        try:
            if sync_feeds:
                await storage.feeds.sync_feeds(config.feeds, clock.now())
            for feed in await storage.feeds.feed_health():
                if feed.disabled:
                    log.warning(
                        "feeds: %s stays disabled (%s); re-enable with `newsbot feeds resume %d`",
                        feed.url,
                        feed.last_error or "disabled",
                        feed.id,
                    )
        except BaseException:
            await storage.close()
            raise
        http = make_client(config.polling, transport)
        untrusted_http = (
            None
            if config.security.allow_private_addresses
            else make_public_only_client(config.polling, resolver, transport)
        )
        parse_pool = ParsePool.for_config(config.polling, parser)
        fetcher = Fetcher(http, config.polling, untrusted_http)
        poller = (
            Poller(config, storage, fetcher, parse_pool, clock, rand)
            if rand
            else Poller(config, storage, fetcher, parse_pool, clock)
        )
        news = NewsService(config, storage, clock)
        return cls(config, clock, storage, http, untrusted_http, parse_pool, poller, news)

    async def close(self) -> None:
        try:
            await self.http.aclose()
            if self.untrusted_http is not None:
                await self.untrusted_http.aclose()
            self.parse_pool.close()
        finally:
            await self.storage.close()
