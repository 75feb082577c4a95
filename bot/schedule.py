"""When to check a feed next. Pure functions of the outcome, the clock and a
random source, so every rule is tested without a network or a database.

After a success: the largest of the base interval, Retry-After, Cache-Control
max-age and the RSS ttl, plus up to ``jitter`` of it, clamped to
``max_interval``. After a failure: exponential backoff from the base interval,
capped at 24 hours, never sooner than a Retry-After the server asked for.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

BACKOFF_CAP_SECONDS = 24 * 3600.0
_MAX_AGE = re.compile(r"(?:^|[,\s])(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)

Random = Callable[[], float]


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    # isdigit() alone accepts "¹" and "٣", which int() rejects.
    if value.isascii() and value.isdigit():
        return float(min(int(value), 10**7))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def parse_max_age(cache_control: str | None) -> float | None:
    if not cache_control or "no-cache" in cache_control.lower():
        return None
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else None


def next_check_after_success(
    now: datetime,
    interval: float,
    *,
    max_interval: float,
    jitter: float,
    retry_after: float | None = None,
    max_age: float | None = None,
    ttl: float | None = None,
    rand: Random = random.random,
) -> datetime:
    delay = max(interval, retry_after or 0.0, max_age or 0.0, ttl or 0.0)
    delay = min(delay * (1.0 + jitter * rand()), max(max_interval, interval))
    return now + timedelta(seconds=delay)


def backoff_seconds(interval: float, error_count: int) -> float:
    """interval × 2^(errors-1), capped at 24 h (or the interval, if longer: a
    failing feed is never checked more often than a healthy one);
    ``error_count`` counts this failure."""
    exponent = min(max(error_count - 1, 0), 30)
    return min(interval * (2.0**exponent), max(BACKOFF_CAP_SECONDS, interval))


def next_check_after_failure(
    now: datetime,
    interval: float,
    error_count: int,
    *,
    jitter: float,
    retry_after: float | None = None,
    rand: Random = random.random,
) -> datetime:
    cap = max(BACKOFF_CAP_SECONDS, interval)
    delay = min(backoff_seconds(interval, error_count) * (1.0 + jitter * rand()), cap)
    if retry_after:
        delay = max(delay, min(retry_after, BACKOFF_CAP_SECONDS))
    return now + timedelta(seconds=delay)
