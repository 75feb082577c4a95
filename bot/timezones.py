"""Time zones of chats: parsing what a user types, and the zone a chat's
times are shown and scheduled in. Pure.

IANA names come from ``zoneinfo``; the ``tzdata`` package is a dependency so
that slim images without /usr/share/zoneinfo know them too.
"""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_OFFSET = re.compile(r"(?:UTC|GMT)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


class UnknownTimezone(ValueError):
    pass


def parse_timezone(text: str) -> str:
    """The canonical spelling of the zone ``text`` names: an IANA name
    (``Europe/Berlin``, any letter case), ``UTC``, or a fixed offset
    (``UTC+5:30``, ``UTC-3``). UnknownTimezone says why not."""
    cleaned = text.strip()
    if not cleaned:
        raise UnknownTimezone("no time zone given; example: Europe/Berlin or UTC+5:30")
    if cleaned.upper() in {"UTC", "GMT", "Z", "UTC+0", "UTC-0", "GMT+0"}:
        return "UTC"
    offset = _OFFSET.fullmatch(cleaned)
    if offset is not None:
        sign, hours, minutes = offset.group(1), int(offset.group(2)), int(offset.group(3) or 0)
        if hours > 14 or minutes >= 60 or (hours == 14 and minutes):
            raise UnknownTimezone(f"{cleaned}: offsets go from UTC-14:00 to UTC+14:00")
        if hours == 0 and minutes == 0:
            return "UTC"
        return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")
    if len(cleaned) > 64 or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", cleaned):
        raise UnknownTimezone(f"{cleaned[:64]}: not a time zone name; example: Europe/Berlin")
    canonical = _IANA_BY_FOLDED.get(cleaned.casefold())
    if canonical is None:
        raise UnknownTimezone(
            f"{cleaned}: unknown time zone; use an Area/City name such as Europe/Berlin, "
            "or an offset such as UTC+5:30"
        )
    return canonical


def zone(name: str | None, default: str = "UTC") -> tzinfo:
    """The zone of a stored name (``parse_timezone``'s output); ``default``
    for None or a name this machine does not know (never raises)."""
    for candidate in (name, default, "UTC"):
        if candidate is None:
            continue
        found = _zone_or_none(candidate)
        if found is not None:
            return found
    return UTC


def _zone_or_none(name: str) -> tzinfo | None:
    if name == "UTC":
        return UTC
    offset = re.fullmatch(r"UTC([+-])(\d{1,2})(?::(\d{2}))?", name)
    if offset is not None:
        minutes = int(offset.group(2)) * 60 + int(offset.group(3) or 0)
        delta = timedelta(minutes=minutes if offset.group(1) == "+" else -minutes)
        return timezone(delta, name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_IANA_BY_FOLDED = {name.casefold(): name for name in available_timezones()}
