"""One polling round, top to bottom:

    claim_due_feeds | fetch | (304 or same body hash: outcome batched, done)
        | cut known items (bot.items) | parse and categorize (a parse worker)
        | store_articles (decide | route | write, one transaction)

A body that only gained or changed a few items is parsed for those items
alone: the items of the last parsed body are remembered by digest, and the
parser is given the body without the ones it already saw (whenever the cut
could change what the parse means, the whole body is parsed).

``store_articles`` writes the feed's new state, the unseen articles, their
search index entries and their outbox rows in one transaction. The outcomes
of unchanged feeds are written many to a transaction
(``bot.unchanged_outcomes``). Every feed is handled on its own: a failure is
recorded in that feed's row (error count, last error, backoff) and the round
goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.categorize import Categorizer
from bot.clock import Clock
from bot.config import Config, FeedConfig
from bot.errors import FetchError, ParseError, StorageError
from bot.fetch import Fetcher, FetchResult
from bot.fetch_options import NO_OPTIONS, FetchOptions, options_of
from bot.items import (
    changed_items,
    items_to_remember,
    reduced_items_to_remember,
    split_items,
)
from bot.models import FeedForUpdate, NewArticle, UnchangedFetch
from bot.parse_pool import EntryCategories, ParsePool
from bot.parsed import ParsedFeed
from bot.reload import CurrentConfig
from bot.roles import worker_name
from bot.schedule import next_check_after_failure, next_check_after_success
from bot.storage import Storage
from bot.unchanged_outcomes import MAX_DELAY, MAX_FEEDS, UnchangedOutcomes
from bot.websub import SECRET_BYTES, FeedHub, discover

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
    # Failures in a row before this fetch, and whether it disabled the feed
    # (410): what operator alerts compare (see bot.alerts).
    errors_before: int = 0
    disabled: bool = False


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
    """Runs polling rounds; at most one at a time.

    Slots: a feed first waits for its host's fetch slot (``per_host_concurrency``),
    then for one of the round's ``concurrency`` slots, which it keeps while its
    body is parsed and stored; the host slot is given back once the body is
    in. A feed that waits for its host never holds a round slot, so many
    feeds on one slow host cannot keep the others waiting.

    ``stop()`` ends polling at a feed boundary: feeds whose articles are being
    stored finish, every other feed of the round is left as it was (still
    due, no failure recorded) and polled by the next start.
    """

    def __init__(
        self,
        config: Config | CurrentConfig,
        storage: Storage,
        fetcher: Fetcher,
        parse_pool: ParsePool,
        clock: Clock,
        rand: Callable[[], float] = random.random,
        *,
        cut_known_items: bool = True,
        unchanged_batch: int = MAX_FEEDS,
        unchanged_delay: float = MAX_DELAY,
    ) -> None:
        """``cut_known_items=False`` parses every changed body whole: the
        reference that cutting known items out is checked against.
        ``unchanged_batch`` and ``unchanged_delay`` bound a batch of
        unchanged feeds' outcomes (see ``bot.unchanged_outcomes``).

        With a ``CurrentConfig`` the poller follows reloads: each round reads
        the configuration it holds then (categories, intervals, per-feed
        options); the slots and leases are sized once, at start."""
        self._current = CurrentConfig.of(config)
        config = self._current.config
        self._cut_known_items = cut_known_items
        self._storage = storage
        self._fetcher = fetcher
        self._parse_pool = parse_pool
        self._clock = clock
        self._rand = rand
        self._categorizer = Categorizer(config.categories)
        self._feed_configs: dict[str, FeedConfig] = {f.url: f for f in config.feeds}
        self._feed_options: dict[str, FetchOptions] = {}
        self._rules_for = config
        self._round_lock = asyncio.Lock()
        # Names this poller on the feeds it claims (several may share a database).
        self.worker = worker_name("poller")
        # A claimed feed returns to the others if this poller has not
        # recorded it by then (it died): longer than any fetch and parse.
        self._claim_lease = config.polling.total_timeout + config.polling.parse_timeout + 60
        self._slots = asyncio.Semaphore(config.polling.concurrency)
        self._host_slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.polling.per_host_concurrency)
        )
        self._stopping = False
        self._unchanged = UnchangedOutcomes(
            storage.feeds, max_feeds=unchanged_batch, max_delay=unchanged_delay
        )
        # WebSub: hubs are noted only when the bot can be called back, and
        # the feeds a hub pushes to are polled at the fallback interval.
        self._push_enabled = config.websub_callback_base is not None
        self._hubs: dict[int, FeedHub] = {}
        # Called when a feed names a hub it did not name before.
        self.on_hub_noted: Callable[[], None] | None = None
        # Feed tasks in a fetch or a parse (stop() cancels them; never one
        # that is storing: a feed's new state and articles go in together),
        # and those holding a round slot.
        self._cut_short: set[asyncio.Task[Any]] = set()
        self._slot_holders: set[asyncio.Task[Any]] = set()

    @property
    def _config(self) -> Config:
        return self._current.config

    def _follow_config(self) -> None:
        """Category rules and per-feed options for the configuration in use
        (it may have been reloaded since the last round)."""
        config = self._config
        if config is not self._rules_for:
            self._categorizer = Categorizer(config.categories)
            self._feed_configs = {f.url: f for f in config.feeds}
            self._feed_options = {}
            self._rules_for = config

    def _options(self, feed: FeedForUpdate) -> FetchOptions:
        """The operator's options for a config feed; none for the others."""
        if feed.origin != "config":
            return NO_OPTIONS
        options = self._feed_options.get(feed.url)
        if options is None:
            configured = self._feed_configs.get(feed.url)
            options = NO_OPTIONS if configured is None else options_of(configured)
            self._feed_options[feed.url] = options
        return options

    def _deliver_limit(self, feed: FeedForUpdate) -> int:
        configured = self._feed_configs.get(feed.url) if feed.origin == "config" else None
        if configured is not None and configured.max_new_per_round is not None:
            return configured.max_new_per_round
        return self._config.delivery.max_new_per_feed

    @property
    def running(self) -> bool:
        return self._round_lock.locked()

    async def run_round(self, *, all_feeds: bool = False) -> RoundReport | None:
        """Poll every due feed (every enabled feed with ``all_feeds``).
        Returns None if a round is already running or polling was stopped."""
        if self._round_lock.locked() or self._stopping:
            return None
        async with self._round_lock:
            self._follow_config()
            started = time.perf_counter()
            now = self._clock.now()
            feeds = await self._storage.feeds.claim_due_feeds(
                now + _FOREVER if all_feeds else now, self.worker, self._claim_lease
            )
            await self._read_pushed_feeds(now)
            self._unchanged.feeds_started(len(feeds))
            try:
                # A TaskGroup, not gather(): if the round itself is cancelled,
                # it ends only after every feed task has, so no feed is still
                # being worked on when the next round may start.
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._guarded_update(feed)) for feed in feeds]
            finally:
                # Every feed has waited for its outcome's write, unless the
                # round was cancelled: then the outcomes it has are written now.
                await self._unchanged.drain()
            outcomes = [
                outcome for task in tasks if not task.cancelled() and (outcome := task.result())
            ]
            if len(outcomes) < len(feeds):
                # Abandoned by stop(): give their claims back, so that another
                # poller (or the next start) takes them now, not when the
                # lease runs out.
                done = {o.feed_id for o in outcomes}
                await self._release([f.id for f in feeds if f.id not in done])
            report = RoundReport(outcomes, time.perf_counter() - started)
            if feeds:
                stopped = f" stopped_early={len(feeds) - len(outcomes)}" if self._stopping else ""
                log.info(
                    "poll: round done %s%s",
                    " ".join(f"{k}={v}" for k, v in report.summary().items()),
                    stopped,
                )
            return report

    async def check_feed(self, feed_id: int) -> FeedOutcome | None:
        """Fetch one listed feed now through the whole pipeline, due or not
        (an operator's check); its outcome is recorded like a round's. None
        if there is no such feed or another poller is fetching it."""
        feed = await self._storage.feeds.claim_feed(
            feed_id, self._clock.now(), self.worker, self._claim_lease
        )
        if feed is None:
            return None
        self._follow_config()
        self._unchanged.feeds_started(1)
        try:
            await self._read_pushed_feeds(self._clock.now())
        except BaseException:
            self._unchanged.feed_done()
            raise
        return await self._guarded_update(feed)

    async def _read_pushed_feeds(self, now: datetime) -> None:
        if not self._push_enabled:
            return
        try:
            self._hubs = await self._storage.websub.feeds_with_hubs(now)
        except StorageError as error:
            # Polled at their own interval meanwhile: more often, never less.
            log.warning("poll: cannot read the feeds hubs push to: %s", error)
            self._hubs = {}

    def _interval(self, feed: FeedForUpdate) -> float:
        interval = feed.interval or self._config.polling.interval
        hub = self._hubs.get(feed.id)
        if hub is not None and hub.pushing:
            # A hub pushes its changes: polling is only the safety net.
            return max(interval, self._config.websub.fallback_interval)
        return interval

    async def _release(self, feed_ids: list[int]) -> None:
        try:
            await self._storage.feeds.release_feeds(feed_ids, self.worker)
        except StorageError as error:
            log.warning("poll: could not give back %d feeds: %s", len(feed_ids), error)

    async def stop(self) -> None:
        """Stop polling for good (a shutdown): no feed starts any more, the
        fetches and parses in progress are abandoned, and the articles
        being stored are stored. Returns once the running round has ended."""
        self._stopping = True
        for task in self._cut_short:
            task.cancel()
        async with self._round_lock:
            pass  # the running round, if any, has ended

    async def _guarded_update(self, feed: FeedForUpdate) -> FeedOutcome | None:
        """The feed's outcome; None when it was abandoned by stop()."""
        try:
            return await self._update_and_report(feed)
        finally:
            self._unchanged.feed_done()

    async def _update_and_report(self, feed: FeedForUpdate) -> FeedOutcome | None:
        if self._stopping:
            return None  # not started: still due, polled by the next start
        started = time.perf_counter()
        try:
            outcome = await self.update_feed(feed)
        except asyncio.CancelledError:
            if not self._stopping:
                raise  # the round itself is being cancelled
            # Abandoned mid-fetch or mid-parse: nothing was stored, so the
            # feed is still due and no failure counts against it.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return None
        except Exception as error:  # a bug or storage trouble: keep the round going
            log.exception("poll: feed %s failed unexpectedly", feed.url)
            outcome = FeedOutcome(feed.id, feed.url, "failed", error=f"internal: {error}")
            try:
                await self._record_failure(feed, f"internal: {type(error).__name__}", None)
            except Exception:
                log.exception("poll: could not record the failure of %s", feed.url)
        finally:
            self._give_back_round_slot()
        return FeedOutcome(
            outcome.feed_id,
            outcome.url,
            outcome.status,
            outcome.new_articles,
            outcome.deliveries,
            outcome.error,
            time.perf_counter() - started,
            feed.error_count,
            outcome.disabled,
        )

    @contextmanager
    def _abandonable(self) -> Iterator[None]:
        """A step that stop() cuts short: a fetch or a parse, before anything
        of the feed is stored."""
        task = asyncio.current_task()
        assert task is not None  # a round's feeds run as tasks
        if self._stopping:
            raise asyncio.CancelledError("polling is stopping")  # as if stop() had cut it
        self._cut_short.add(task)
        try:
            yield
        finally:
            self._cut_short.discard(task)

    async def _fetch(self, feed: FeedForUpdate, now: datetime) -> FetchResult:
        """The feed's host slot first, then a round slot (kept until the feed
        is done, see ``_give_back_round_slot``), then the fetch; the host slot
        is given back as soon as the body is in."""
        host = self._host_slots[(urlsplit(feed.fetch_url).hostname or "").lower()]
        task = asyncio.current_task()
        assert task is not None  # a round's feeds run as tasks
        with self._abandonable():
            async with host:
                await self._slots.acquire()
                self._slot_holders.add(task)
                return await self._fetcher.fetch(
                    feed.fetch_url,
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                    now=now,
                    # Feeds added at runtime are not the operator's: public addresses only.
                    trusted=feed.origin == "config",
                    options=self._options(feed),
                )

    def _give_back_round_slot(self) -> None:
        task = asyncio.current_task()
        if task in self._slot_holders:
            self._slot_holders.discard(task)
            self._slots.release()

    async def update_feed(self, feed: FeedForUpdate) -> FeedOutcome:
        now = self._clock.now()
        interval = self._interval(feed)
        try:
            fetched = await self._fetch(feed, now)
        except FetchError as error:
            await self._record_failure(feed, str(error), error.retry_after, error.permanent)
            return FeedOutcome(
                feed.id, feed.url, "failed", error=str(error), disabled=error.permanent
            )

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
            # The round slot goes back first: the feed only waits for the
            # write of its batch, which the others' fetches fill.
            self._give_back_round_slot()
            await self._unchanged.record(
                UnchangedFetch(
                    feed.id,
                    now=now,
                    next_check=next_check,
                    etag=fetched.etag,
                    last_modified=fetched.last_modified,
                    fetch_url=fetched.permanent_url,
                )
            )
            status: Status = "not_modified" if fetched.not_modified else "unchanged"
            return FeedOutcome(feed.id, feed.url, status)

        try:
            parsed, categories, items = await self._parse_new_items(feed, fetched)
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
        stored = await self._storage.articles.store_articles(
            feed,
            self._articles(parsed, categories, now),
            now=now,
            next_check=next_check,
            feed_title=parsed.title,
            site_url=parsed.site_url,
            body_hash=body_hash or "",
            etag=fetched.etag,
            last_modified=fetched.last_modified,
            fetch_url=fetched.permanent_url,
            deliver_limit=self._deliver_limit(feed),
            items=items,
            edit_window=self._config.delivery.edit_window,
        )
        await self._note_hub(feed, fetched, parsed, now)
        return FeedOutcome(feed.id, feed.url, "new", stored.new_articles, stored.deliveries)

    async def _note_hub(
        self, feed: FeedForUpdate, fetched: FetchResult, parsed: ParsedFeed, now: datetime
    ) -> None:
        """Remember the WebSub hub the feed names (or that it names none any
        more); the subscriber job (bot.websub_subscriber) does the rest."""
        if not self._push_enabled:
            return
        links = discover(fetched.link_header, parsed.hubs, parsed.self_url, fetched.final_url)
        known = self._hubs.get(feed.id)
        if known is None and links is None:
            return  # the common case: no hub, and none before
        if (
            known is not None
            and links is not None
            and (known.hub, known.topic) == (links.hub, links.topic)
        ):
            return  # subscribed to already (the subscriber job renews it)
        try:
            if links is None:
                await self._storage.websub.forget_hub(feed.id, now)
                return
            noted = await self._storage.websub.note_hub(
                feed.id,
                links.hub,
                links.topic,
                secret=secrets.token_hex(SECRET_BYTES),
                trusted=feed.origin == "config",
                now=now,
            )
        except StorageError as error:
            # The articles are stored; the hub is noted with the next new body.
            log.warning("poll: cannot note the hub of %s: %s", feed.url, error)
            return
        if noted:
            log.info("websub: feed %s names hub %s (topic %s)", feed.url, links.hub, links.topic)
            if self.on_hub_noted is not None:
                self.on_hub_noted()

    async def store_pushed(
        self, feed_id: int, body: bytes, content_type: str | None
    ) -> FeedOutcome | None:
        """A body a WebSub hub pushed for a feed: parsed, categorized and
        stored exactly like a fetched one (the decider drops the entries
        already stored, ``max_new_per_feed`` caps the cards). The feed's
        validators and body hash stay those of its last fetch, so the next
        poll still recognises an unchanged body. None if the feed is not
        polled any more. Raises ``ParseError`` for a body that is no feed."""
        feed = await self._storage.feeds.feed_for_update(feed_id)
        if feed is None:
            return None
        started = time.perf_counter()
        parsed, categories = await self._parse_pool.parse_and_categorize(
            body, feed.fetch_url, content_type, self._categorizer, feed.categories
        )
        now = self._clock.now()
        # Pushed to: polled again only at the fallback interval from now.
        interval = max(
            feed.interval or self._config.polling.interval, self._config.websub.fallback_interval
        )
        next_check = next_check_after_success(
            now,
            interval,
            max_interval=max(self._config.polling.max_interval, interval),
            jitter=self._config.polling.jitter,
            rand=self._rand,
        )
        stored = await self._storage.articles.store_articles(
            feed,
            self._articles(parsed, categories, now),
            now=now,
            next_check=next_check,
            feed_title=parsed.title or feed.title or "",
            site_url=parsed.site_url,
            body_hash=feed.body_hash or "",
            etag=feed.etag,
            last_modified=feed.last_modified,
            fetch_url=None,
            deliver_limit=self._deliver_limit(feed),
            edit_window=self._config.delivery.edit_window,
            pushed=True,
        )
        return FeedOutcome(
            feed.id,
            feed.url,
            "new",
            stored.new_articles,
            stored.deliveries,
            seconds=time.perf_counter() - started,
        )

    async def _parse_new_items(
        self, feed: FeedForUpdate, fetched: FetchResult
    ) -> tuple[ParsedFeed, EntryCategories, dict[str, str]]:
        """The parsed body, its entries' categories and its items to
        remember (digest -> entry key).

        When the body's frame is unchanged and some of its items are the
        last parsed body's, only the new and changed items are parsed: the
        entries left out are stored already, exactly as the whole body would
        give them, so storing the rest stores what the whole would."""
        split = (
            split_items(fetched.body, fetched.final_url, fetched.content_type)
            if self._cut_known_items
            else None
        )
        if split is not None and feed.ever_fetched:
            known = await self._storage.feeds.known_items(feed.id)
            changed = changed_items(split, known)
            if changed is not None:
                try:
                    reduced, categories = await self._parse(feed, fetched, split.reduced(changed))
                except ParseError:
                    pass  # the whole body decides: it may well parse
                else:
                    keys = [entry.key for entry in reduced.entries]
                    remembered = reduced_items_to_remember(
                        split, changed, known, keys, reduced.bozo
                    )
                    if remembered is not None:
                        return reduced, categories, remembered
        parsed, categories = await self._parse(feed, fetched, fetched.body)
        if split is None:
            return parsed, categories, {}
        keys = [entry.key for entry in parsed.entries]
        return parsed, categories, items_to_remember(split, keys, parsed.bozo)

    async def _parse(
        self, feed: FeedForUpdate, fetched: FetchResult, body: bytes
    ) -> tuple[ParsedFeed, EntryCategories]:
        # The pool gives up on a parse after parse_timeout (a pathological
        # body can keep feedparser busy for hours) and raises ParseError.
        # The entries are categorized where they were parsed: the polling
        # process, which stores every feed, keeps its CPU for that.
        with self._abandonable():
            return await self._parse_pool.parse_and_categorize(
                body,
                fetched.final_url,
                fetched.content_type,
                self._categorizer,
                feed.categories,
            )

    def _articles(
        self, parsed: ParsedFeed, categories: EntryCategories, now: datetime
    ) -> list[NewArticle]:
        articles = []
        for entry, entry_categories in zip(parsed.entries, categories, strict=True):
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
                    categories=entry_categories,
                    tags=entry.tags,
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
        await self._storage.feeds.record_failure(
            feed.id, now=now, error=error, next_check=next_check, disable=permanent
        )
