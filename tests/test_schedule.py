"""Next-check decisions: pure functions of the outcome, the clock and a
random source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.schedule import (
    BACKOFF_CAP_SECONDS,
    backoff_seconds,
    next_check_after_failure,
    next_check_after_success,
    parse_max_age,
    parse_retry_after,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0

intervals = st.floats(min_value=1.0, max_value=7 * DAY, allow_nan=False)
error_counts = st.integers(min_value=0, max_value=10_000)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
optional_seconds = st.one_of(st.none(), st.floats(min_value=0.0, max_value=10 * DAY))


def seconds_after(when: datetime) -> float:
    return (when - NOW).total_seconds()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Thu, 01 Jan 2026 12:10:00 GMT", 600.0),
        ("Wed, 31 Dec 2025 00:00:00 GMT", 0.0),  # already past
        ("99999999999", 1e7),  # absurd values are capped
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@given(st.text(max_size=60))
def test_parse_retry_after_never_raises(value: str) -> None:
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or seconds >= 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-age=300", 300.0),
        ("public, max-age=300, must-revalidate", 300.0),
        ('max-age="60"', 60.0),
        ("private, max-age=0", 0.0),
        ("no-cache, max-age=5", None),
        ("no-store", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    assert parse_max_age(value) == expected


def test_success_waits_the_base_interval_without_hints() -> None:
    when = next_check_after_success(NOW, 600, max_interval=DAY, jitter=0.0)
    assert when == NOW + timedelta(seconds=600)


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        ({"retry_after": 1800.0}, 1800.0),
        ({"max_age": 3600.0}, 3600.0),
        ({"ttl": 7200.0}, 7200.0),
        ({"retry_after": 10.0, "max_age": 20.0, "ttl": 30.0}, 600.0),
        ({"max_age": 5 * DAY}, DAY),  # clamped to max_interval
    ],
)
def test_success_takes_the_largest_hint_clamped(hints: dict[str, float], expected: float) -> None:
    when = next_check_after_success(NOW, 600, max_interval=DAY, jitter=0.0, **hints)
    assert seconds_after(when) == expected


def test_success_jitter_adds_up_to_its_fraction() -> None:
    low = next_check_after_success(NOW, 1000, max_interval=DAY, jitter=0.1, rand=lambda: 0.0)
    high = next_check_after_success(NOW, 1000, max_interval=DAY, jitter=0.1, rand=lambda: 0.999)
    assert seconds_after(low) == 1000
    assert 1099 < seconds_after(high) < 1100


@given(intervals, intervals, unit, unit, optional_seconds, optional_seconds, optional_seconds)
def test_success_is_never_sooner_than_the_interval_nor_later_than_the_cap(
    interval: float,
    max_interval: float,
    jitter: float,
    r: float,
    retry_after: float | None,
    max_age: float | None,
    ttl: float | None,
) -> None:
    when = next_check_after_success(
        NOW,
        interval,
        max_interval=max_interval,
        jitter=jitter,
        retry_after=retry_after,
        max_age=max_age,
        ttl=ttl,
        rand=lambda: r,
    )
    delay = seconds_after(when)
    assert delay >= min(interval, max(max_interval, interval)) - 1e-3
    assert delay <= max(max_interval, interval) + 1e-3


def test_backoff_doubles_per_failure() -> None:
    assert [backoff_seconds(600, n) for n in (1, 2, 3, 4)] == [600, 1200, 2400, 4800]


def test_backoff_is_capped_at_a_day() -> None:
    assert backoff_seconds(600, 50) == BACKOFF_CAP_SECONDS == 24 * 3600


@given(intervals, error_counts)
def test_backoff_never_exceeds_24_hours_or_the_interval(interval: float, errors: int) -> None:
    assert 0 < backoff_seconds(interval, errors) <= max(BACKOFF_CAP_SECONDS, interval)


def test_a_failing_feed_is_not_checked_more_often_than_a_healthy_one() -> None:
    two_days = 2 * 24 * 3600.0
    assert backoff_seconds(two_days, 5) == two_days


@given(intervals, st.integers(min_value=0, max_value=200))
def test_backoff_never_shrinks_as_failures_add_up(interval: float, errors: int) -> None:
    assert backoff_seconds(interval, errors + 1) >= backoff_seconds(interval, errors)


@given(intervals, error_counts, unit, unit, optional_seconds)
def test_failure_delay_is_capped_and_honours_retry_after(
    interval: float, errors: int, jitter: float, r: float, retry_after: float | None
) -> None:
    when = next_check_after_failure(
        NOW, interval, errors, jitter=jitter, retry_after=retry_after, rand=lambda: r
    )
    delay = seconds_after(when)
    assert 0 < delay <= max(BACKOFF_CAP_SECONDS, interval) + 1e-3
    if retry_after:
        assert delay >= min(retry_after, BACKOFF_CAP_SECONDS) - 1e-3


def test_failure_waits_for_retry_after_when_it_is_longer_than_the_backoff() -> None:
    when = next_check_after_failure(NOW, 600, 1, jitter=0.0, retry_after=7200)
    assert seconds_after(when) == 7200


def test_failure_backs_off_further_with_each_error() -> None:
    delays = [seconds_after(next_check_after_failure(NOW, 600, n, jitter=0.0)) for n in range(1, 6)]
    assert delays == [600, 1200, 2400, 4800, 9600]
