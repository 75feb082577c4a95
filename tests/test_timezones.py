"""Chat time zones: what a user may type, and the zone it stands for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Config
from bot.timezones import UnknownTimezone, parse_timezone, zone


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("  America/New_York ", "America/New_York"),
        ("UTC", "UTC"),
        ("gmt", "UTC"),
        ("UTC+5:30", "UTC+5:30"),
        ("UTC+05:30", "UTC+5:30"),
        ("utc-3", "UTC-3"),
        ("UTC+0", "UTC"),
        ("UTC+14", "UTC+14"),
    ],
)
def test_a_typed_zone_is_stored_in_one_spelling(typed: str, stored: str) -> None:
    assert parse_timezone(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "no time zone"),
        ("Mars/Olympus", "unknown time zone"),
        ("UTC+15", "offsets go from"),
        ("UTC+5:75", "offsets go from"),
        ("../../etc/passwd", "not a time zone name"),
        ("Europe/Berlin; DROP", "not a time zone name"),
    ],
)
def test_an_unknown_zone_is_refused_with_its_reason(typed: str, reason: str) -> None:
    with pytest.raises(UnknownTimezone, match=reason):
        parse_timezone(typed)


def test_a_stored_zone_gives_its_offsets_and_abbreviations() -> None:
    summer = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert summer.astimezone(zone("Europe/Berlin")).tzname() == "CEST"
    assert summer.astimezone(zone("UTC+5:30")).utcoffset() == timedelta(hours=5, minutes=30)
    assert summer.astimezone(zone("UTC-3")).utcoffset() == timedelta(hours=-3)
    assert zone(None) is UTC
    assert summer.astimezone(zone(None, "Asia/Kolkata")).tzname() == "IST"
    # A name this machine does not know (a stored value from elsewhere) is
    # the default, never an error in the middle of a delivery.
    assert zone("Nowhere/Special", "UTC+1").utcoffset(None) == timedelta(hours=1)


@given(st.text(max_size=80))
def test_any_typed_text_is_a_zone_or_a_reason(typed: str) -> None:
    try:
        stored = parse_timezone(typed)
    except UnknownTimezone as error:
        assert str(error)
    else:
        assert zone(stored) is not None
        assert parse_timezone(stored) == stored


def test_the_default_zone_is_checked_with_the_config() -> None:
    assert (
        Config.model_validate(
            {"telegram": {"default_timezone": "asia/kolkata"}}
        ).telegram.default_timezone
        == "Asia/Kolkata"
    )
    with pytest.raises(ValueError, match="unknown time zone"):
        Config.model_validate({"telegram": {"default_timezone": "Atlantis/Capital"}})
