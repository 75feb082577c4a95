"""The outcomes of a round's unchanged feeds (a 304, or the body of the last
parse again), written in batches: one transaction for many feeds.

Most feeds of most rounds are unchanged, and writing each one's outcome as a
transaction of its own cost more CPU than fetching it: three trips to
aiosqlite's thread (BEGIN, UPDATE, COMMIT), or a commit on PostgreSQL. A
batch is one transaction, whatever its size.

A crash costs at most one more fetch of the feeds of an unwritten batch: a
feed stays claimed until its outcome is written, so a process that dies
with a batch unwritten leaves those feeds as they were, due, and once their
claims' lease runs out they are fetched again (a conditional GET: at worst
one more 304). A batch is
written as soon as it holds ``max_feeds`` outcomes, once its first outcome
is ``max_delay`` seconds old, and at once when no feed still being worked on
could join it (the end of a round, a single operator's check), so the end
of a round need not wait for the timer; a round never ends with a batch
unwritten.

Each feed waits for the write of its batch, so its outcome is what it was
when every feed wrote its own: recorded, or failed with the storage error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.errors import StorageError
from bot.models import UnchangedFetch
from bot.storage.protocols import FeedStore

log = logging.getLogger(__name__)

# A batch of 100 is one write per hundred feeds (a fraction of a millisecond
# of SQL); more saves little and holds more outcomes in memory.
MAX_FEEDS = 100
# Long enough to gather the feeds of a busy round, short enough that an
# outcome is on disk well before any claim's lease could run out.
MAX_DELAY = 0.25


class UnchangedOutcomes:
    """The batch of unchanged outcomes not written yet, and the writes in
    progress. ``feeds_started``/``feed_done`` count the feeds that may still
    add one (``Poller`` calls them around each feed)."""

    def __init__(
        self, feeds: FeedStore, *, max_feeds: int = MAX_FEEDS, max_delay: float = MAX_DELAY
    ) -> None:
        self._feeds = feeds
        self._max_feeds = max_feeds
        self._max_delay = max_delay
        self._batch: list[UnchangedFetch] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._in_progress = 0

    def feeds_started(self, count: int) -> None:
        self._in_progress += count

    def feed_done(self) -> None:
        """A feed is done (whatever its outcome): if every feed still in
        progress is waiting for the batch, nothing else can join it."""
        self._in_progress -= 1
        if self._batch and len(self._batch) >= self._in_progress:
            self._write_batch()

    async def record(self, fetch: UnchangedFetch) -> None:
        """Add the feed's outcome to the batch; returns once it is written.
        Raises ``StorageError`` if the batch could not be written."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._batch.append(fetch)
        self._waiting.append(written)
        if len(self._batch) >= self._max_feeds or len(self._batch) >= self._in_progress:
            self._write_batch()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_delay, self._write_batch)
        # Shielded: a feed cancelled while it waits leaves its outcome in the
        # batch (it is written all the same, see ``drain``).
        await asyncio.shield(written)

    def _write_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._batch:
            return
        batch, waiting = self._batch, self._waiting
        self._batch, self._waiting = [], []
        write = asyncio.get_running_loop().create_task(self._write(batch, waiting))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write(
        self, batch: list[UnchangedFetch], waiting: list[asyncio.Future[None]]
    ) -> None:
        try:
            await self._feeds.record_unchanged_fetches(batch)
        except asyncio.CancelledError:
            for written in waiting:
                written.cancel()
            raise
        except Exception as error:
            log.warning("poll: could not record %d unchanged feeds: %s", len(batch), error)
            for written in waiting:
                if not written.done():
                    # Each feed its own error, as if it had written alone.
                    written.set_exception(
                        StorageError(str(error)) if isinstance(error, StorageError) else error
                    )
        else:
            for written in waiting:
                if not written.done():
                    written.set_result(None)

    async def drain(self) -> None:
        """Write the batch now and wait for every write in progress, even if
        the caller is cancelled meanwhile (a cancelled round still records
        the outcomes it has)."""
        self._write_batch()
        if not self._writes:
            return
        writes = asyncio.ensure_future(asyncio.wait(list(self._writes)))
        try:
            await asyncio.shield(writes)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await asyncio.wait([writes])
            raise
