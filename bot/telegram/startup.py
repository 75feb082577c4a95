"""Start-up against Telegram: getMe, retried with backoff while Telegram is
unreachable (no network yet, a container whose route comes up late).

Nothing published meanwhile is missed: on the first failed attempt the
database is opened and feeds are polled with a plain loop until Telegram
answers (the JobQueue, which polls afterwards, runs only with Telegram).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter

from bot.runtime import Runtime

log = logging.getLogger(__name__)

# The first retry after this many seconds, doubling up to the cap.
START_RETRY_FIRST = 2.0
START_RETRY_MAX = 300.0


async def wait_for_telegram(
    bot: Bot,
    open_runtime: Callable[[], Awaitable[Runtime]],
    poll_until: Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Return once Telegram answers getMe, retrying with backoff (capped at
    ``START_RETRY_MAX``) for as long as it takes, one log line per attempt.
    After the first failure, ``poll_until(open_runtime(), stop)`` polls feeds
    until Telegram answers, when ``stop`` is set and its round is let finish.
    A rejected token raises ``InvalidToken`` at once."""
    delay = START_RETRY_FIRST
    attempt = 0
    stop_polling = asyncio.Event()
    polling: asyncio.Task[None] | None = None
    try:
        while True:
            attempt += 1
            try:
                await bot.initialize()  # getMe, which also checks the token
            except BadRequest:
                raise  # a NetworkError in PTB's hierarchy, but Telegram did answer
            except (NetworkError, RetryAfter) as error:
                wait = delay
                if isinstance(error, RetryAfter):
                    wait = max(delay, _seconds(error.retry_after))
                log.warning(
                    "telegram: cannot reach the Bot API (attempt %d): %s; "
                    "polling feeds meanwhile, next try in %gs",
                    attempt,
                    error,
                    wait,
                )
            else:
                if attempt > 1:
                    log.info("telegram: the Bot API answered after %d attempts", attempt)
                return
            if polling is None:
                runtime = await open_runtime()
                polling = asyncio.create_task(
                    poll_until(runtime, stop_polling), name="newsbot-offline-polling"
                )
            await asyncio.sleep(wait)
            delay = min(delay * 2, START_RETRY_MAX)
    finally:
        if polling is not None:
            # Let a running round finish: the JobQueue's first round starts
            # right after this, and two rounds must never overlap.
            stop_polling.set()
            await polling


def _seconds(value: object) -> float:
    """RetryAfter.retry_after: an int today, a timedelta in later PTB versions."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else START_RETRY_MAX
