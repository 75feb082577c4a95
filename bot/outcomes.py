"""Writing what became of a send (sent, put back, failed, dropped, edited),
for the sender and the digest and edit senders.

Recording an outcome can fail too (disk full, a lock held past the busy
timeout). The outcome is then kept and written again with backoff while the
chat's next message waits, and no new one is sent until storage works
again: a card Telegram accepted is never sent twice because of our own
trouble. The spell of trouble is logged once, at its start and its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from bot.errors import StorageError

log = logging.getLogger(__name__)

_MAX_STORAGE_RETRY = 30.0


class OutcomeWriter:
    def __init__(self) -> None:
        # Set while storage fails (an outcome cannot be written, or a read
        # failed): no new card goes out, and the health check fails.
        self.storage_trouble = False
        self._trouble_since = 0.0
        # Outcomes being written again right now: while any waits, storage
        # has not recovered, whatever a read in between says.
        self.failing_writes = 0

    async def write(
        self,
        row_id: int,
        outcome: str,
        write: Callable[[], Awaitable[object]],
        stopping: asyncio.Event,
    ) -> None:
        """Write an outcome of row ``row_id``, again and again with backoff if
        storage fails: the chat counts as busy meanwhile (the caller is its
        in-flight send), so its card is not handed out again, and no new card
        goes out anywhere until the write succeeds. ``stopping`` gives up:
        the card stays pending and may be sent once more after the restart,
        which at-least-once allows."""
        delay = 0.5
        failing = False
        try:
            while True:
                try:
                    await write()
                except StorageError as error:
                    if not failing:
                        failing = True
                        self.failing_writes += 1
                    self.failed(error, f"record that card {row_id} {outcome}")
                else:
                    if failing:
                        failing = False
                        self.failing_writes -= 1
                    if not self.failing_writes:
                        self.recovered()
                    return
                if stopping.is_set():
                    log.error(
                        "deliver: stopping without recording that card %d %s; "
                        "it may be sent again after the restart",
                        row_id,
                        outcome,
                    )
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, _MAX_STORAGE_RETRY)
        finally:
            if failing:
                self.failing_writes -= 1

    def failed(self, error: StorageError, doing: str) -> None:
        # Once per spell of trouble, not once per card or per pacing slot.
        if not self.storage_trouble:
            self.storage_trouble = True
            self._trouble_since = time.monotonic()
            log.error("deliver: cannot %s (%s); sending is held until storage works", doing, error)

    def recovered(self) -> None:
        if self.storage_trouble:
            self.storage_trouble = False
            log.warning(
                "deliver: storage works again after %.0fs; sending resumes",
                time.monotonic() - self._trouble_since,
            )
