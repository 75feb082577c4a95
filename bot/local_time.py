"""Times as a chat reads them: in the chat's zone, with the zone's
abbreviation, so "18:05 CEST" can never be mistaken for UTC. Pure.

Some IANA zones have no letters of their own (tzdata writes "+04" for
Asia/Dubai); those are shown as "UTC+4", the spelling ``/timezone`` accepts.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

_NUMERIC = re.compile(r"^[+-]\d{2,4}$")


def zone_abbreviation(when: datetime, zone: tzinfo) -> str:
    """The zone's name at ``when``: "CET" or "CEST", "EST" or "EDT", "UTC",
    "UTC+5:30" (daylight saving decided by the instant, not by today)."""
    local = when.astimezone(zone)
    name = local.tzname() or ""
    if name and not _NUMERIC.match(name) and name != "UTC+00:00":
        return name
    return offset_name(local.utcoffset() or timedelta(0))


def offset_name(offset: timedelta) -> str:
    """ "UTC", "UTC+4", "UTC-3:30"."""
    minutes = int(offset.total_seconds() // 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")
