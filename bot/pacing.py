"""Pacing of the sender: when the next message may go to Telegram.

Pacing happens *before* a send, so Telegram's limits are not hit in the first
place: one global slot every 1/``messages_per_second`` seconds (Telegram
allows about 30 messages/s per bot), and per chat at most one message every
``private_chat_interval`` (about 1/s) or ``group_chat_interval`` for groups
and channels (20 per minute); cards, digests and edits share the budget.
On top of that come the waits Telegram asks for or forces: flood control
(429) pauses the chat it came for, and the whole bot when several chats are
told to wait in a row; while Telegram cannot be reached every send pauses,
with a backoff. Times are monotonic seconds; this module does no I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# This many different chats told to wait in a row, with no success between
# them, means the bot's overall rate was exceeded: then everything pauses.
_GLOBAL_FLOOD_CHATS = 3
_MAX_OUTAGE_PAUSE = 60.0


@dataclass
class Pacer:
    """Global spacing plus per-chat next-allowed times (monotonic seconds),
    and the flood-control and outage pauses that move them."""

    interval: float
    next_slot: float = 0.0
    chat_ready_at: dict[int, float] = field(default_factory=dict)
    # Chats told to wait since the last successful send.
    flooded_chats: set[int] = field(default_factory=set)
    # Consecutive sends that could not reach Telegram (sets the pause),
    # and when the last such pause began.
    network_errors: int = 0
    outage_paused_at: float = float("-inf")

    async def wait_slot(self, interrupt: asyncio.Event) -> None:
        """Sleep until the next global slot, or until ``interrupt`` is set:
        stopping must not wait out a minute-long flood-control pause."""
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(interrupt.wait(), slot - now)

    def space_chat(self, chat_id: int, spacing: float) -> None:
        """A message to the chat is going out now: its next one waits ``spacing``."""
        self.chat_ready_at[chat_id] = time.monotonic() + spacing

    def pause(self, seconds: float) -> None:
        self.next_slot = max(self.next_slot, time.monotonic() + seconds)

    def busy_chats(self) -> set[int]:
        now = time.monotonic()
        for chat_id in [c for c, t in self.chat_ready_at.items() if t <= now]:
            del self.chat_ready_at[chat_id]
        return set(self.chat_ready_at)

    def next_ready(self) -> float | None:
        return min(self.chat_ready_at.values(), default=None)

    def sent(self) -> None:
        """Telegram took a card or a digest: the outage backoff and the run
        of flooded chats start over."""
        self.network_errors = 0
        self.flooded_chats.clear()

    def edited(self) -> None:
        """Telegram made an edit: the run of flooded chats starts over (the
        outage backoff is the sends' own)."""
        self.flooded_chats.clear()

    def told_to_wait(self, chat_id: int, seconds: float) -> None:
        """Flood control for a chat: hold its messages for ``seconds``, and
        the whole bot's when several chats were told to wait in a row."""
        self.flooded_chats.add(chat_id)
        ready = time.monotonic() + seconds
        self.chat_ready_at[chat_id] = max(self.chat_ready_at.get(chat_id, 0.0), ready)
        if len(self.flooded_chats) >= _GLOBAL_FLOOD_CHATS:
            log.warning("deliver: flood control for the whole bot, pausing %.1fs", seconds)
            self.pause(seconds)
        else:
            log.warning("deliver: flood control for chat %s, pausing it %.1fs", chat_id, seconds)

    def unreachable(self, started: float, reason: str) -> float:
        """A send begun at ``started`` could not reach Telegram: every send
        pauses, twice as long as the last time; returns for how long."""
        if started < self.outage_paused_at:
            # Already in flight when the last pause began: the same outage
            # seen again, not a new failure. Counting every one would turn N
            # concurrent timeouts into N doublings: a one-second hiccup with
            # a few sends under way would stall all delivery for a minute.
            return max(0.0, self.next_slot - time.monotonic())
        self.network_errors += 1
        self.outage_paused_at = time.monotonic()
        pause = min(2.0 ** min(self.network_errors, 10), _MAX_OUTAGE_PAUSE)
        self.pause(pause)
        log.warning("deliver: Telegram unreachable (%s); retrying in %.0fs", reason, pause)
        return pause

    def unreachable_for_edit(self) -> None:
        """An edit could not reach Telegram: every send waits as long as the
        next outage pause would, without counting one (sends set the backoff)."""
        self.pause(min(2.0 ** min(self.network_errors + 1, 10), _MAX_OUTAGE_PAUSE))
