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
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import cast

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
            return await _in_daemon_thread(_parse, body, url, content_type)
        loop = asyncio.get_running_loop()
        executor = self._pool()
        try:
            return await loop.run_in_executor(executor, _parse, body, url, content_type)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): start a new pool next time
            # and report this feed as failed rather than stopping the round.
            log.error("parse: a worker process died while parsing %s; restarting the pool", url)
            self._discard(executor, kill=False)
            raise ParseError("parse: worker process died") from None
        except asyncio.CancelledError:
            # Given up on (the parse deadline, a shutdown): a running worker
            # cannot be interrupted, and one stuck for hours would hold its
            # slot and make close() wait for it. Stop the pool's workers; the
            # next parse starts a new pool. Parses running alongside fail
            # with "worker process died" and are retried next round.
            log.warning("parse: gave up parsing %s; restarting the worker processes", url)
            self._discard(executor, kill=True)
            raise

    def _discard(self, executor: Executor, *, kill: bool) -> None:
        if kill and isinstance(executor, ProcessPoolExecutor):
            # Python 3.14 has ProcessPoolExecutor.terminate_workers(); before
            # it, the worker processes are only reachable as _processes.
            processes: dict[int, multiprocessing.process.BaseProcess] = (
                getattr(executor, "_processes", None) or {}
            )
            for process in list(processes.values()):
                process.terminate()
        executor.shutdown(wait=not kill, cancel_futures=True)
        if self._executor is executor:  # not a newer pool started meanwhile
            self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


async def _in_daemon_thread(
    function: Callable[[bytes, str, str | None], ParsedFeed],
    body: bytes,
    url: str,
    content_type: str | None,
) -> ParsedFeed:
    """``asyncio.to_thread`` in a daemon thread of its own: a thread cannot be
    stopped, so a parse given up on runs to its end in the background, and
    it must not hold up the process's exit (executor threads are joined at
    exit, daemon threads are not)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[ParsedFeed] = loop.create_future()

    def settle(result: ParsedFeed | None, error: BaseException | None) -> None:
        if future.done():
            return  # given up on meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(ParsedFeed, result))

    def work() -> None:
        result, error = None, None
        try:
            result = function(body, url, content_type)
        except BaseException as caught:  # handed to the awaiting task
            error = caught
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the event loop is closed: nobody waits for this parse any more

    threading.Thread(target=work, name="newsbot-parse", daemon=True).start()
    return await future
