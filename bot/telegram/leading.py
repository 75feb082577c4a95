"""The work only one process may do at a time, among all that share a
PostgreSQL database: sending cards (the active sender) and long-polling
Telegram's updates (Telegram answers a second poller 409 Conflict).

Each is held with an advisory lock whose session is the proof of life: a
standby process contends for it every ``LEADERSHIP_RETRY`` seconds and takes
over when the holder dies. On SQLite the bot is the one process, which always
holds both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from telegram import Update
from telegram.ext import Updater

from bot.deliver import Sender
from bot.errors import StorageError
from bot.roles import AdvisoryLock, Leadership, SoleProcess
from bot.runtime import Runtime
from bot.storage.db import PostgresDatabase

log = logging.getLogger(__name__)

# How often a standby process contends for a role only one may hold, and how
# often the holder checks that its session (and with it the role) is alive.
LEADERSHIP_RETRY = 2.0
LEADERSHIP_CHECK = 5.0


def leadership_of(runtime: Runtime, key: int, what: str) -> Leadership:
    """What only one process may hold: on PostgreSQL an advisory lock,
    on SQLite (one process) always this process."""
    db = runtime.storage.db
    return AdvisoryLock(db, key, what) if isinstance(db, PostgresDatabase) else SoleProcess()


async def send_while_leading(
    leadership: Leadership,
    runtime: Runtime,
    sender: Sender,
    *,
    stopping: Callable[[], bool],
    sending: asyncio.Event,
) -> None:
    """Send cards while this process is the active sender; stand by while
    another one is, and take over when it dies (its lock goes with its
    session). ``sending`` is set while this process sends; ``stopping``
    says the bot is shutting down."""
    try:
        while not stopping():
            if not await leadership.try_acquire():
                await asyncio.sleep(LEADERSHIP_RETRY)
                continue
            sending.set()
            try:
                freed = await runtime.storage.outbox.take_over_claims(sender.worker)
                freed += await runtime.storage.edits.take_over_edit_claims(sender.worker)
            except StorageError as error:
                # Their leases will run out and free them all the same.
                log.warning("deliver: could not take over claimed cards: %s", error)
            else:
                if freed:
                    log.info("deliver: took over %d cards a stopped sender claimed", freed)
            watch = asyncio.create_task(_stop_when_lost(leadership, sender))
            try:
                await sender.run()
            finally:
                watch.cancel()
                sending.clear()
            if not stopping() and not sender.token_rejected:
                log.warning("deliver: no longer the active sender; standing by")
                sender.resume()
            elif sender.token_rejected:
                return
    finally:
        await leadership.release()


async def read_updates_while_leading(
    leadership: Leadership, updater: Updater, poll_interval: float
) -> None:
    """Long-poll while this process is the one reader of updates; the others
    wait for the lock of the one that polls."""
    try:
        while True:
            if not await leadership.try_acquire():
                await asyncio.sleep(LEADERSHIP_RETRY)
                continue
            await updater.start_polling(
                poll_interval=poll_interval, allowed_updates=Update.ALL_TYPES
            )
            await until_lost(leadership)
            log.warning("telegram: no longer the reader of updates; standing by")
            await updater.stop()
    finally:
        await leadership.release()


async def _stop_when_lost(leadership: Leadership, sender: Sender) -> None:
    await until_lost(leadership)
    await sender.stop()


async def until_lost(leadership: Leadership) -> None:
    """Return when the session that holds ``leadership`` is gone."""
    while True:
        await asyncio.sleep(LEADERSHIP_CHECK)
        if not await leadership.still_held():
            return
