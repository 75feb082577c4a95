"""Runs ``bot.parse.parse`` off the event loop, in worker processes, each
parse with a deadline; the poller's parses also categorize their entries
there (``parse_and_categorize``), so the polling process only stores.

feedparser is pure Python and holds the GIL, so threads give no speed-up;
processes use every core. With one worker (or one usable CPU) a thread is
used instead, which keeps tests and small installs free of extra processes.

A parse that runs past its deadline costs only its own worker: pebble's
process pool stops that one process and starts a fresh one, while the other
workers carry on with their parses and the queued ones (the standard
library's ProcessPoolExecutor can only be torn down as a whole, failing
every parse in it).
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from bot.errors import ParseError
from bot.parsed import ParsedFeed

if TYPE_CHECKING:
    from pebble import ProcessPool

    from bot.categorize import Categorizer
    from bot.config import PollingConfig

log = logging.getLogger(__name__)

Parser = Callable[[bytes, str, str | None], ParsedFeed]
# Each entry's categories, in the order of the parsed feed's entries.
EntryCategories = tuple[tuple[str, ...], ...]
_Result = TypeVar("_Result")


def _parse(body: bytes, url: str, content_type: str | None) -> ParsedFeed:
    """``bot.parse.parse``, imported where it runs: the polling process never
    loads feedparser (about 10 MB and 50 ms of start-up) when workers parse,
    and a poll that finds nothing changed never loads it at all."""
    from bot.parse import parse

    return parse(body, url, content_type)


def _parse_and_categorize(
    parser: Parser,
    categorizer: Categorizer,
    feed_categories: tuple[str, ...],
    body: bytes,
    url: str,
    content_type: str | None,
) -> tuple[ParsedFeed, EntryCategories]:
    """A parse, then each entry's categories, in the same worker: the
    keyword rules read every title and summary, CPU the polling process
    (which stores every feed) is better off without."""
    parsed = parser(body, url, content_type)
    categories = tuple(
        categorizer.categorize(feed_categories, entry.tags, entry.title, entry.summary)
        for entry in parsed.entries
    )
    return parsed, categories


def _load_parser() -> None:
    """Worker start-up: import the parser before the first task, so its
    import time never counts against a feed's parse deadline."""
    import bot.parse  # noqa: F401


class ParsePool:
    def __init__(self, workers: int, timeout: float, parser: Parser = _parse) -> None:
        """``workers`` parses at a time (1: a thread, no processes); each one
        is given up on after ``timeout`` seconds. ``parser`` must be a
        module-level function, so worker processes can import it."""
        self.workers = max(1, workers)
        self.timeout = timeout
        self._parser = parser
        self._processes: ProcessPool | None = None
        self._pending: set[Future[Any]] = set()

    @classmethod
    def for_config(cls, config: PollingConfig, parser: Parser | None = None) -> ParsePool:
        """A pool of ``parse_workers`` workers, or when that is 0, one per CPU
        this process may use, at most ``max_parse_workers``."""
        workers = config.parse_workers or min(usable_cpus(), config.max_parse_workers)
        return cls(workers, config.parse_timeout, parser or _parse)

    async def parse(self, body: bytes, url: str, content_type: str | None) -> ParsedFeed:
        """The parsed feed; ``ParseError`` when it is not a feed, when the
        parse outlasts the deadline, or when its worker died."""
        return await self._run(url, self._parser, body, url, content_type)

    async def parse_and_categorize(
        self,
        body: bytes,
        url: str,
        content_type: str | None,
        categorizer: Categorizer,
        feed_categories: Sequence[str],
    ) -> tuple[ParsedFeed, EntryCategories]:
        """``parse``, and what ``categorizer.categorize`` gives each of its
        entries in a feed configured with ``feed_categories``, worked out
        where the feed was parsed."""
        return await self._run(
            url,
            _parse_and_categorize,
            self._parser,
            categorizer,
            tuple(feed_categories),
            body,
            url,
            content_type,
        )

    async def _run(self, url: str, function: Callable[..., _Result], *args: Any) -> _Result:
        if self.workers <= 1:
            try:
                async with asyncio.timeout(self.timeout):
                    return await _in_daemon_thread(function, *args)
            except TimeoutError:
                raise self._gave_up(url) from None
        return await self._in_process(url, function, *args)

    async def _in_process(self, url: str, function: Callable[..., _Result], *args: Any) -> _Result:
        pool = self._pool()
        from pebble import ProcessExpired  # loaded with the pool

        try:
            future = pool.schedule(function, args=args, timeout=self.timeout)
        except RuntimeError:  # the pool broke (a worker could not start): a new one
            self._discard(pool)
            pool = self._pool()
            future = pool.schedule(function, args=args, timeout=self.timeout)
        self._pending.add(future)
        try:
            # Cancelling the awaiting task (a shutdown) cancels the future,
            # and pebble stops the worker that was running it.
            return cast(_Result, await asyncio.wrap_future(future))
        except TimeoutError:
            raise self._gave_up(url) from None
        except BrokenProcessPool:
            log.error("parse: the worker processes broke while parsing %s; restarting them", url)
            self._discard(pool)
            raise ParseError("parse: worker process died") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this feed was given up on by its caller
            # The pool cancelled it (close() during a round): a failed parse,
            # not a cancelled round.
            raise ParseError("parse: the parser was stopped") from None
        except ProcessExpired as error:
            # The worker was killed (out of memory, a crash in a C
            # extension); pebble has already started one in its place.
            log.error("parse: a worker process died while parsing %s: %s", url, error)
            raise ParseError("parse: worker process died") from None
        finally:
            self._pending.discard(future)

    def _gave_up(self, url: str) -> ParseError:
        log.warning("parse: gave up parsing %s after %gs", url, self.timeout)
        return ParseError(f"parse: gave up after {self.timeout:g}s")

    def _pool(self) -> ProcessPool:
        if self._processes is None:
            # Imported here: a bot with one worker never loads pebble.
            from pebble import ProcessPool

            # spawn: children never inherit the bot's threads (aiosqlite,
            # httpx) the way fork would. Unlike forkserver it needs no extra
            # server process holding its own copy of the parser (about 30 MB
            # of RSS); each worker imports bot.parse once, in parallel.
            self._processes = ProcessPool(
                max_workers=self.workers,
                initializer=_load_parser,
                context=multiprocessing.get_context("spawn"),
            )
        return self._processes

    def _discard(self, pool: ProcessPool) -> None:
        pool.stop()  # type: ignore[no-untyped-call]
        pool.join()
        if self._processes is pool:  # not a newer pool started meanwhile
            self._processes = None

    def close(self) -> None:
        """Stop the workers at once: a parse still running is cancelled (its
        caller gets ``ParseError``), not waited for."""
        for future in list(self._pending):
            future.cancel()
        if self._processes is not None:
            self._discard(self._processes)


async def _in_daemon_thread(function: Callable[..., _Result], *args: Any) -> _Result:
    """``asyncio.to_thread`` in a daemon thread of its own: a thread cannot be
    stopped, so a parse given up on runs to its end in the background, and
    it must not hold up the process's exit (executor threads are joined at
    exit, daemon threads are not)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_Result] = loop.create_future()

    def settle(result: _Result | None, error: BaseException | None) -> None:
        if future.done():
            return  # given up on meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(cast(_Result, result))

    def work() -> None:
        result, error = None, None
        try:
            result = function(*args)
        except BaseException as caught:  # handed to the awaiting task
            error = caught
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the event loop is closed: nobody waits for this parse any more

    threading.Thread(target=work, name="newsbot-parse", daemon=True).start()
    return await future


# -- how many CPUs this process may use -------------------------------------------


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on (its affinity mask), lowered to its
    cgroup's CPU quota: a container limited to 2 CPUs on a 64-core host
    sees 64 in ``os.cpu_count()``."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        affinity = os.cpu_count() or 1
    try:
        own_cgroups = Path("/proc/self/cgroup").read_text()
    except OSError:
        own_cgroups = ""
    return cpus_allowed(affinity, cgroup_root, own_cgroups)


def cpus_allowed(affinity: int, cgroup_root: Path, own_cgroups: str) -> int:
    """``affinity`` CPUs, or fewer when a CPU quota under ``cgroup_root``
    says so; ``own_cgroups`` is the text of /proc/self/cgroup. At least 1.

    cgroup v2: ``cpu.max`` ("200000 100000" = 2 CPUs, "max 100000" = no
    limit) in the process's cgroup and every one above it. cgroup v1:
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = no limit) in the cpu
    controller's hierarchy. A quota of 1.5 CPUs allows two busy workers."""
    quotas: list[float] = []
    for line in own_cgroups.splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        relative = path.strip().lstrip("/")
        if controllers == "":  # v2: one unified hierarchy
            quotas += _quotas_up_to_root(cgroup_root, relative, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                quotas += _quotas_up_to_root(cgroup_root / mount, relative, _v1_quota)
    if not own_cgroups.strip():  # no /proc/self/cgroup: look at the root only
        quotas += [q for q in (_v2_quota(cgroup_root), _v1_quota(cgroup_root / "cpu")) if q]
    limit = min(quotas, default=None)
    allowed = affinity if limit is None else min(affinity, math.ceil(limit))
    return max(1, allowed)


def _quotas_up_to_root(
    root: Path, relative: str, read: Callable[[Path], float | None]
) -> list[float]:
    """The quotas of a cgroup and of each one above it. Inside a container
    the process's own path is often not mounted (only its root is): the
    paths that do not exist are skipped."""
    quotas = []
    folder = root / relative if relative else root
    while True:
        quota = read(folder)
        if quota is not None:
            quotas.append(quota)
        if folder == root or root not in folder.parents:
            return quotas
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    parts = text.split() if text else []
    if len(parts) != 2 or parts[0] == "max":
        return None
    return _ratio(parts[0], parts[1])


def _v1_quota(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota is None or period is None or quota.strip().startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        value = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
