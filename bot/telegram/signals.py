"""Signal handling on the bot's event loop: SIGHUP reloads the configuration,
SIGINT and SIGTERM stop the bot (also while it waits for Telegram at start,
before PTB installs handlers of its own)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from bot.errors import ConfigError, StorageError
from bot.reload import ReloadPlan

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def reload_on_hangup(
    loop: asyncio.AbstractEventLoop, reload: Callable[[], Awaitable[ReloadPlan]]
) -> bool:
    """SIGHUP runs ``reload`` and logs what changed or why the file was
    refused; False where signals cannot be handled here (not the main
    thread, or not POSIX)."""
    reloads: set[asyncio.Task[None]] = set()

    async def reload_and_log() -> None:
        try:
            plan = await reload()
        except (ConfigError, StorageError) as error:
            log.error("config: reload refused, the running configuration is kept: %s", error)
            return
        for line in plan.summary():
            log.info("config: reloaded: %s", line)

    def on_hangup() -> None:
        task = loop.create_task(reload_and_log(), name="newsbot-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hangup)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True


def stop_reloading_on_hangup(loop: asyncio.AbstractEventLoop) -> None:
    if not loop.is_closed():
        loop.remove_signal_handler(signal.SIGHUP)


@contextmanager
def on_stop_signals(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], object]
) -> Iterator[None]:
    """``callback`` on SIGINT and SIGTERM while inside; where no handlers can
    be installed (not POSIX), Ctrl-C still raises KeyboardInterrupt."""
    installed = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, callback)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
