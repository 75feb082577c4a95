"""Retention: what the database keeps, and for how long.

Sent, failed and dropped cards are kept ``[storage] keep_deliveries`` (30
days) for ``/health`` and debugging, then pruned; articles are kept for good
unless ``[storage] keep_articles`` is set (an article a card still waits for
is kept until that card is done). Pruning deletes small batches in short
transactions, so the sender and the poller never wait long for it, and reads
only index ranges: no full-table scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import StorageConfig
from bot.storage import Storage

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class Pruned:
    deliveries: int
    articles: int


async def prune(storage: Storage, config: StorageConfig, now: datetime) -> Pruned:
    deliveries = await _in_batches(
        lambda: storage.outbox.prune_finished(
            now - timedelta(seconds=config.keep_deliveries), BATCH
        )
    )
    articles = 0
    if config.keep_articles is not None:
        cutoff = now - timedelta(seconds=config.keep_articles)
        articles = await _in_batches(lambda: storage.articles.prune_articles(cutoff, BATCH))
    if deliveries or articles:
        log.info("retention: pruned %d finished cards and %d articles", deliveries, articles)
    return Pruned(deliveries, articles)


async def _in_batches(batch: Callable[[], Awaitable[int]]) -> int:
    total = 0
    while True:
        removed = await batch()
        total += removed
        if removed < BATCH:
            return total
        await asyncio.sleep(0)  # let the sender and the handlers in between batches
