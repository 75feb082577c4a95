"""One polling round, top to bottom:

    due_feeds | fetch | (304 or same body hash: done) | parse | categorize | store_articles

``store_articles`` writes the feed's new state, the unseen articles, their
search index entries and their outbox rows in one transaction. Every feed is
handled on its own: a failure is recorded in that feed's row (error count,
last error, backoff) and the round goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.categorize import Categorizer
from bot.clock import Clock
from bot.config import Config
from bot.errors import FetchError, ParseError
from bot.fetch import Fetcher, FetchResult
from bot.models import FeedForUpdate, NewArticle, ParsedFeed
from bot.parse_pool import ParsePool
from bot.schedule import next_check_after_failure, next_check_after_success
from bot.storage import Storage

log = logging.getLogger(__name__)

_FOREVER = timedelta(days=365 * 100)

Status = Literal["new", "unchanged", "not_modified", "failed"]


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    feed_id: int
    url: str
    status: Status
    new_articles: int = 0
    deliveries: int = 0
    error: str | None = None
    seconds: float = 0.0


@dataclass(slots=True)
class RoundReport:
    outcomes: list[FeedOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def new_articles(self) -> int:
        return sum(o.new_articles for o in self.outcomes)

    @property
    def deliveries(self) -> int:
        return sum(o.deliveries for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        return {
            "feeds": len(self.outcomes),
            "fetched": self.count("new") + self.count("unchanged"),
            "not_modified": self.count("not_modified"),
            "unchanged": self.count("unchanged"),
            "failed": self.count("failed"),
            "new_articles": self.new_articles,
            "deliveries": self.deliveries,
            "seconds": round(self.seconds, 3),
        }


class Poller:
    """Runs polling rounds; at most one at a time."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        fetcher: Fetcher,
        parse_pool: ParsePool,
        clock: Clock,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config
        self._storage = storage
        self._fetcher = fetcher
        self._parse_pool = parse_pool
        self._clock = clock
        self._rand = rand
        self._categorizer = Categorizer(config.categories)
        self._round_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.polling.concurrency)

    @property
    def running(self) -> bool:
        return self._round_lock.locked()

    async def run_round(self, *, all_feeds: bool = False) -> RoundReport | None:
        """Poll every due feed (every enabled feed with ``all_feeds``).
        Returns None if a round is already running."""
        if self._round_lock.locked():
            return None
        async with self._round_lock:
            started = time.perf_counter()
            now = self._clock.now()
            feeds = await self._storage.due_feeds(now + _FOREVER if all_feeds else now)
            outcomes = await asyncio.gather(*(self._guarded_update(feed) for feed in feeds))
            report = RoundReport(list(outcomes), time.perf_counter() - started)
            if feeds:
                log.info(
                    "poll: round done %s", " ".join(f"{k}={v}" for k, v in report.summary().items())
                )
            return report

    async def _guarded_update(self, feed: FeedForUpdate) -> FeedOutcome:
        async with self._slots:
            started = time.perf_counter()
            try:
                outcome = await self.update_feed(feed)
            except Exception as error:  # a bug or storage trouble: keep the round going
                log.exception("poll: feed %s failed unexpectedly", feed.url)
                outcome = FeedOutcome(feed.id, feed.url, "failed", error=f"internal: {error}")
                try:
                    await self._record_failure(feed, f"internal: {type(error).__name__}", None)
                except Exception:
                    log.exception("poll: could not record the failure of %s", feed.url)
            return FeedOutcome(
                outcome.feed_id,
                outcome.url,
                outcome.status,
                outcome.new_articles,
                outcome.deliveries,
                outcome.error,
                time.perf_counter() - started,
            )

    async def update_feed(self, feed: FeedForUpdate) -> FeedOutcome:
        now = self._clock.now()
        interval = feed.interval or self._config.polling.interval
        try:
            fetched = await self._fetcher.fetch(
                feed.fetch_url, etag=feed.etag, last_modified=feed.last_modified, now=now
            )
        except FetchError as error:
            await self._record_failure(feed, str(error), error.retry_after, error.permanent)
            return FeedOutcome(feed.id, feed.url, "failed", error=str(error))

        next_check = next_check_after_success(
            now,
            interval,
            max_interval=self._config.polling.max_interval,
            jitter=self._config.polling.jitter,
            retry_after=fetched.retry_after,
            max_age=fetched.max_age,
            rand=self._rand,
        )
        body_hash = hashlib.sha256(fetched.body).hexdigest() if not fetched.not_modified else None
        if fetched.not_modified or body_hash == feed.body_hash:
            # Many servers ignore conditional GET; an identical body is not parsed again.
            await self._storage.record_unchanged(
                feed.id,
                now=now,
                next_check=next_check,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                fetch_url=fetched.permanent_url,
            )
            status: Status = "not_modified" if fetched.not_modified else "unchanged"
            return FeedOutcome(feed.id, feed.url, status)

        try:
            parsed = await self._parse(fetched)
        except ParseError as error:
            await self._record_failure(feed, str(error), None)
            return FeedOutcome(feed.id, feed.url, "failed", error=str(error))

        if parsed.ttl_seconds:
            next_check = next_check_after_success(
                now,
                interval,
                max_interval=self._config.polling.max_interval,
                jitter=self._config.polling.jitter,
                retry_after=fetched.retry_after,
                max_age=fetched.max_age,
                ttl=parsed.ttl_seconds,
                rand=self._rand,
            )
        stored = await self._storage.store_articles(
            feed,
            self._articles(feed, parsed, now),
            now=now,
            next_check=next_check,
            feed_title=parsed.title,
            site_url=parsed.site_url,
            body_hash=body_hash or "",
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            fetch_url=fetched.permanent_url,
            deliver_limit=self._config.delivery.max_new_per_feed,
        )
        return FeedOutcome(feed.id, feed.url, "new", stored.new_articles, stored.deliveries)

    async def _parse(self, fetched: FetchResult) -> ParsedFeed:
        # A pathological body can keep the parser busy for hours (see
        # PollingConfig.parse_timeout); the round, and every round after it,
        # must not wait for it. The pool stops a worker that is given up on.
        limit = self._config.polling.parse_timeout
        try:
            async with asyncio.timeout(limit):
                return await self._parse_pool.parse(
                    fetched.body, fetched.final_url, fetched.content_type
                )
        except TimeoutError:
            raise ParseError(f"parse: gave up after {limit:g}s") from None

    def _articles(self, feed: FeedForUpdate, parsed: ParsedFeed, now: datetime) -> list[NewArticle]:
        articles = []
        for entry in parsed.entries:
            published = entry.published or now
            if published > now:
                published = now  # a future date would pin the story to the top of /latest
            articles.append(
                NewArticle(
                    key=entry.key,
                    url=entry.url,
                    title=entry.title,
                    summary=entry.summary,
                    author=entry.author,
                    published=published,
                    image_url=entry.image_url,
                    categories=self._categorizer.categorize(
                        feed.categories, entry.tags, entry.title, entry.summary
                    ),
                )
            )
        return articles

    async def _record_failure(
        self,
        feed: FeedForUpdate,
        error: str,
        retry_after: float | None,
        permanent: bool = False,
    ) -> None:
        now = self._clock.now()
        interval = feed.interval or self._config.polling.interval
        next_check = next_check_after_failure(
            now,
            interval,
            feed.error_count + 1,
            jitter=self._config.polling.jitter,
            retry_after=retry_after,
            rand=self._rand,
        )
        log.warning("poll: feed %s failed (%d in a row): %s", feed.url, feed.error_count + 1, error)
        await self._storage.record_failure(
            feed.id, now=now, error=error, next_check=next_check, disable=permanent
        )
