"""Runs ``bot.parse.parse`` off the event loop, in worker processes.

feedparser is pure Python and holds the GIL, so threads give no speed-up;
processes use every core. With one worker (or one core) a thread is used
instead, which keeps tests and small installs free of extra processes.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from bot.errors import ParseError
from bot.models import ParsedFeed

log = logging.getLogger(__name__)


def _parse(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    """``bot.parse.parse``, imported where it runs: the polling process never
    loads feedparser (about 10 MB and 50 ms of start-up) when workers parse,
    and a poll that finds nothing changed never loads it at all."""
    from bot.parse import parse

    return parse(body, url, content_type)


class ParsePool:
    def __init__(self, workers: int = 0) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:
            # spawn: children never inherit the bot's threads (aiosqlite,
            # httpx) the way fork would. Unlike forkserver it needs no extra
            # server process holding its own copy of the parser (about 30 MB
            # of RSS); each worker imports bot.parse once, in parallel.
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self._executor

    async def parse(self, body: bytes, url: str, content_type: str | None) -> ParsedFeed:
        if self.workers <= 1:
            return await asyncio.to_thread(_parse, body, url, content_type)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool(), _parse, body, url, content_type)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a new pool next time
            # and report this feed as failed rather than stopping the round.
            log.error("parse: a worker process died while parsing %s; restarting the pool", url)
            self.close()
            raise ParseError("parse: worker process died") from None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
