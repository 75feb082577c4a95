"""Opens and closes the long-lived parts (database, HTTP client, parse
workers) in one place, for the commands that poll: the bot and ``poll --once``.

Opening a runtime makes the feeds table follow the configuration, so it is
only for them; commands that only read open the database alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot.clock import Clock, SystemClock
from bot.config import Config, load_config
from bot.fetch import NO_NETWORK, FeedClient, Fetcher, Network, make_client, make_public_only_client
from bot.netguard import Resolver, system_resolver
from bot.parse_pool import ParsePool, Parser
from bot.pipeline import Poller
from bot.reload import CurrentConfig, ReloadPlan, plan_reload
from bot.services import NewsService
from bot.storage import Storage, open_storage

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    current: CurrentConfig  # the one owner of the configuration in use (see bot.reload)
    clock: Clock
    storage: Storage
    http: FeedClient
    untrusted_http: FeedClient | None  # runtime feeds, public addresses only
    parse_pool: ParsePool
    poller: Poller
    news: NewsService
    fetcher: Fetcher
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def config(self) -> Config:
        return self.current.config

    @classmethod
    async def open(
        cls,
        config: Config | CurrentConfig,
        *,
        clock: Clock | None = None,
        network: Network = NO_NETWORK,
        rand: Callable[[], float] | None = None,
        parser: Parser | None = None,
        sync_feeds: bool = True,
        resolver: Resolver = system_resolver,
    ) -> Runtime:
        """``sync_feeds=False`` for a command that polls one feed on the
        operator's say-so and must leave the feeds table alone. A
        ``CurrentConfig`` is shared: reloads through either side are seen by
        both. ``network`` and ``resolver`` stand in for the machine's (tests)."""
        current = CurrentConfig.of(config)
        config = current.config
        clock = clock or SystemClock()
        storage = await open_storage(config.storage)
        try:
            if sync_feeds:
                await storage.feeds.sync_feeds(config.feeds, clock.now())
            for feed in await storage.feeds.disabled_feeds():
                log.warning(
                    "feeds: %s stays disabled (%s); re-enable with `newsbot feeds resume %d`",
                    feed.url,
                    feed.last_error or "disabled",
                    feed.id,
                )
        except BaseException:
            await storage.close()
            raise
        http = make_client(config.polling, network)
        untrusted_http = (
            None
            if config.security.allow_private_addresses
            else make_public_only_client(config.polling, resolver, network)
        )
        parse_pool = ParsePool.for_config(config.polling, parser)
        fetcher = Fetcher(http, config.polling, untrusted_http)
        poller = (
            Poller(current, storage, fetcher, parse_pool, clock, rand)
            if rand
            else Poller(current, storage, fetcher, parse_pool, clock)
        )
        news = NewsService(current, storage, clock)
        return cls(current, clock, storage, http, untrusted_http, parse_pool, poller, news, fetcher)

    async def reload(self, path: str | Path) -> ReloadPlan:
        """Read the configuration file again and run with it from now on:
        the feeds table follows its feeds (as ``newsbot feeds sync`` does),
        then the new configuration replaces the running one whole.

        Raises ``ConfigError`` for a file that does not validate and
        ``StorageError`` when the feeds cannot be synced; either way the
        running configuration stays as it was."""
        async with self._reloading:  # a SIGHUP and a /reload at once: one after the other
            loaded = load_config(path)
            plan = plan_reload(self.config, loaded)
            await self.storage.feeds.sync_feeds(plan.config.feeds, self.clock.now())
            self.current.replace(plan.config)
            return plan

    async def close(self) -> None:
        try:
            await self.fetcher.aclose()
            await self.http.aclose()
            if self.untrusted_http is not None:
                await self.untrusted_http.aclose()
            self.parse_pool.close()
        finally:
            await self.storage.close()
