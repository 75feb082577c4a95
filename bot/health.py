"""The liveness verdict shared by ``newsbot healthcheck`` and ``/healthz``:
healthy while the scheduler touched the heartbeat file recently. The bot
stops touching it when it is alive but useless (token rejected, sent cards
that cannot be recorded), so the file's age covers those too."""

from __future__ import annotations

import time

from bot.config import Config


def heartbeat_verdict(config: Config, now: float | None = None) -> tuple[bool, str]:
    """(healthy, the sentence saying why)."""
    try:
        age = (time.time() if now is None else now) - config.heartbeat_path.stat().st_mtime
    except OSError:
        return False, "unhealthy: no heartbeat yet"
    limit = 3 * config.poll_tick + 60
    if age > limit:
        return False, f"unhealthy: last scheduler tick {age:.0f}s ago (limit {limit:.0f}s)"
    return True, f"healthy: last scheduler tick {age:.0f}s ago"
