"""Delivery shaped by each chat: digest times, quiet hours and the burst cap.
Pure: plain data and ``now`` in, decisions and Telegram HTML out.

How a card travels when a chat shaped its delivery (I/O in ``bot.digest_delivery``
and ``bot.storage.outbox``):

1. The sender claims a card as usual and asks ``hold_for``: a chat in digest
   mode, in its quiet hours, or at ``max_cards_per_hour`` instant cards in
   the last hour gets the card *held* (an outbox row not claimable yet),
   with every other waiting card of the chat.
2. ``plan_release`` says, for one chat's held cards, what is due now: a
   digest (the chat's digest time came; quiet hours ended with more than
   ``QUIET_DIGEST_OVER`` cards; the burst-cap hour ended), the cards again
   (quiet hours ended with a few), or nothing yet.
3. A digest is the held rows gathered under one digest id; it is sent as
   one message (``compose_digest``) through the same claim, pacing and
   at-least-once path as a card, and all its rows become sent together.

Times of day are "HH:MM" in the chat's zone; every instant is aware UTC.
Across DST changes a time of day that does not exist that day (spring
forward) happens at the same wall-clock distance after the gap (02:30 in
Berlin on the last Sunday of March is 03:30 CEST); one that happens twice
(fall back) happens at its first occurrence, once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from bot.render import MESSAGE_LIMIT, escape, escape_attribute
from bot.text import cut_at_word

MAX_DIGEST_TIMES = 6
HEADLINES_PER_CATEGORY = 10
# Quiet hours that piled up more than this many cards end with one digest
# message instead of the cards.
QUIET_DIGEST_OVER = 5
CAP_WINDOW = timedelta(hours=1)
DIGEST_TITLE_LIMIT = 200
DIGEST_SOURCE_LIMIT = 60
# A digest time is looked for this far back at most: a bot down for a week
# sends one digest at start-up, and does not walk every missed day.
_LOOKBACK = timedelta(days=2)

_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})")

# Why a card is held (stored on the row).
HELD_FOR_DIGEST = "digest"
HELD_FOR_QUIET = "quiet"
HELD_FOR_CAP = "cap"

# What a digest message is (stored on the digest).
KIND_DIGEST = "digest"  # the chat's digest time
KIND_QUIET = "quiet"  # what piled up in quiet hours
KIND_MORE = "more"  # the rest of a burst-cap hour


class BadTime(ValueError):
    """A time of day, list of times or range a user typed that is not valid;
    the message says what is wrong."""


def parse_time_of_day(text: str) -> str:
    """ "7:05" -> "07:05"; BadTime for anything that is not a time of day."""
    match = _TIME_OF_DAY.fullmatch(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise BadTime(f"{text.strip()!r} is not a time of day (HH:MM, 00:00 to 23:59)")
    return f"{int(match[1]):02d}:{match[2]}"


def parse_digest_times(words: Sequence[str]) -> tuple[str, ...]:
    """Times of day, sorted, each once; 1 to ``MAX_DIGEST_TIMES`` of them."""
    times = sorted({parse_time_of_day(word) for word in words})
    if not times:
        raise BadTime("give at least one time of day (HH:MM)")
    if len(times) > MAX_DIGEST_TIMES:
        raise BadTime(f"at most {MAX_DIGEST_TIMES} digest times a day, not {len(times)}")
    return tuple(times)


def parse_quiet_hours(text: str) -> tuple[str, str]:
    """ "23:00-7:00" -> ("23:00", "07:00"); the range may wrap midnight."""
    parts = text.replace("–", "-").replace("—", "-").split("-")
    if len(parts) != 2:
        raise BadTime(f"{text.strip()!r} is not a range of hours (HH:MM-HH:MM)")
    start, end = parse_time_of_day(parts[0]), parse_time_of_day(parts[1])
    if start == end:
        raise BadTime("quiet hours must start and end at different times")
    return start, end


def _clock_time(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def local_instant(day: date, hhmm: str, zone: tzinfo) -> datetime:
    """The UTC instant of ``hhmm`` on local ``day`` in ``zone``. A time in a
    DST gap maps to the same distance after it (zoneinfo's fold=0 reads it
    with the offset before the change); a repeated time to its first
    occurrence."""
    local = datetime.combine(day, _clock_time(hhmm), tzinfo=zone)
    return local.astimezone(UTC)


def _local_days(start: datetime, end: datetime, zone: tzinfo) -> Iterable[date]:
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        yield day
        day += timedelta(days=1)


def due_digest(
    times: Sequence[str], zone: tzinfo, last: datetime | None, now: datetime
) -> datetime | None:
    """The latest digest time in (``last``, ``now``]: one, however many were
    missed (a bot that was down sends one digest, not one per missed time).
    None when none fell due; ``last`` None (never) counts from ``_LOOKBACK``."""
    if not times:
        return None
    since = now - _LOOKBACK if last is None else max(last, now - _LOOKBACK)
    found: datetime | None = None
    for day in _local_days(since, now, zone):
        for hhmm in times:
            at = local_instant(day, hhmm, zone)
            if since < at <= now and (found is None or at > found):
                found = at
    return found


def next_digest(times: Sequence[str], zone: tzinfo, after: datetime) -> datetime | None:
    """The first digest time after ``after``."""
    if not times:
        return None
    found: datetime | None = None
    for day in _local_days(after, after + timedelta(days=1), zone):
        for hhmm in times:
            at = local_instant(day, hhmm, zone)
            if at > after and (found is None or at < found):
                found = at
    return found


def quiet_until(quiet: tuple[str, str] | None, zone: tzinfo, now: datetime) -> datetime | None:
    """When the quiet hours ``now`` is in end; None when it is not in them.
    The range is [start, end) in local wall-clock time and may wrap midnight."""
    if quiet is None:
        return None
    start, end = _clock_time(quiet[0]), _clock_time(quiet[1])
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    today = local.date()
    if start < end:
        inside = start <= clock < end
        end_day = today
    elif clock >= start:
        inside, end_day = True, today + timedelta(days=1)
    else:
        inside, end_day = clock < end, today
    if not inside:
        return None
    until = local_instant(end_day, quiet[1], zone)
    # A DST change between now and the end cannot move the end before now.
    return until if until > now else now + timedelta(minutes=1)


def cap_until(
    sent: Iterable[datetime], now: datetime, cap: int, window: timedelta = CAP_WINDOW
) -> datetime | None:
    """With ``cap`` instant cards sent within ``window`` before ``now`` the
    chat is at its cap: held until enough of them left the window for one
    more (the rolling hour); None while below it."""
    recent = sorted(t for t in sent if t > now - window)
    if len(recent) < cap:
        return None
    return recent[len(recent) - cap] + window


@dataclass(frozen=True, slots=True)
class Hold:
    reason: str  # HELD_FOR_*
    until: datetime | None  # None: until the chat's next digest time


def hold_for(
    *,
    digest_times: Sequence[str],
    quiet: tuple[str, str] | None,
    zone: tzinfo,
    now: datetime,
    recent_cards: Iterable[datetime],
    cap: int,
) -> Hold | None:
    """Is an instant card that came up for a chat held, and why? Digest mode
    first (the chat gets no instant cards), then quiet hours, then the cap."""
    if digest_times:
        return Hold(HELD_FOR_DIGEST, None)
    ends = quiet_until(quiet, zone, now)
    if ends is not None:
        return Hold(HELD_FOR_QUIET, ends)
    capped = cap_until(recent_cards, now, cap)
    if capped is not None:
        return Hold(HELD_FOR_CAP, capped)
    return None


@dataclass(frozen=True, slots=True)
class HeldCard:
    id: int
    reason: str  # HELD_FOR_*
    until: datetime | None
    thread_id: int | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """What is due for one chat's held cards now."""

    digest_kind: str | None  # KIND_*: gather ``card_ids`` into one digest; None: no digest
    card_ids: tuple[int, ...]  # gathered into the digest, or released as cards when no kind
    slot: datetime | None = None  # the digest time handled (also when nothing was held)


def plan_release(
    held: Sequence[HeldCard],
    *,
    digest_times: Sequence[str],
    zone: tzinfo,
    last_digest: datetime | None,
    now: datetime,
) -> Release | None:
    """For a chat in digest mode: at a digest time, every held card becomes
    one digest (``slot`` is set even when nothing was held: that time is
    done). Otherwise: cards whose hold ended (held for a digest by a chat
    that left digest mode end now) are released: the burst cap's as one
    "N more" digest, the others as one digest when more than
    ``QUIET_DIGEST_OVER`` piled up, else as the cards."""
    if digest_times:
        slot = due_digest(digest_times, zone, last_digest, now)
        if slot is None:
            return None
        return Release(KIND_DIGEST if held else None, tuple(c.id for c in held), slot)
    ended = [c for c in held if c.until is None or c.until <= now]
    if not ended:
        return None
    ids = tuple(c.id for c in ended)
    if any(c.reason == HELD_FOR_CAP for c in ended):
        return Release(KIND_MORE, ids)
    if len(ended) > QUIET_DIGEST_OVER:
        # Cards a chat kept for its digest before it left digest mode are
        # still its digest.
        kept = any(c.reason == HELD_FOR_DIGEST for c in ended)
        return Release(KIND_DIGEST if kept else KIND_QUIET, ids)
    return Release(None, ids)


def digest_thread(threads: Iterable[int | None]) -> int | None:
    """A digest goes to the forum topic its cards share; cards of several
    topics (or of General) make it go to General."""
    found = set(threads)
    return found.pop() if len(found) == 1 else None


# -- the message ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestEntry:
    title: str
    url: str
    source: str
    category_id: str
    published: datetime


@dataclass(frozen=True, slots=True)
class DigestTexts:
    """The words of a digest, translated by the caller."""

    heading: str  # already formatted, plain text (escaped here)
    more: Callable[[int, str], str]  # (hidden count, category id) -> plain line


_TAG = re.compile(r"<[^>]*>")


def telegram_length(html_text: str) -> int:
    """How long Telegram finds a message of our HTML: its limit counts the
    text after entity parsing (tags gone, ``&amp;`` one character), in UTF-16
    code units. Only for HTML made here, where every ``<`` of the text is
    escaped."""
    visible = html.unescape(_TAG.sub("", html_text))
    return len(visible.encode("utf-16-le")) // 2


def _headline(entry: DigestEntry) -> str:
    title = escape(cut_at_word(entry.title, DIGEST_TITLE_LIMIT))
    source = escape(cut_at_word(entry.source, DIGEST_SOURCE_LIMIT))
    return f'• <a href="{escape_attribute(entry.url)}">{title}</a> — {source}'


def compose_digest(
    entries: Sequence[DigestEntry],
    category_titles: Mapping[str, str],
    texts: DigestTexts,
    *,
    per_category: int = HEADLINES_PER_CATEGORY,
    limit: int = MESSAGE_LIMIT,
) -> list[str]:
    """Telegram HTML messages of one digest: the heading, then per category
    (in ``category_titles`` order; unknown ones last) its newest
    ``per_category`` headlines and a line for the rest. Normally one
    message; split between lines (never inside a tag or an entity) only
    beyond ``limit`` as Telegram counts it. Empty entries: no message."""
    if not entries:
        return []
    order = {category: n for n, category in enumerate(category_titles)}
    groups: dict[str, list[DigestEntry]] = {}
    for entry in entries:
        groups.setdefault(entry.category_id, []).append(entry)
    lines = [f"<b>{escape(texts.heading)}</b>"]
    for category_id in sorted(groups, key=lambda c: (order.get(c, len(order)), c)):
        group = sorted(groups[category_id], key=lambda e: e.published, reverse=True)
        lines.append("")
        lines.append(f"<b>{escape(category_titles.get(category_id, category_id))}</b>")
        lines.extend(_headline(entry) for entry in group[:per_category])
        if len(group) > per_category:
            lines.append(escape(texts.more(len(group) - per_category, category_id)))
    return _split_lines(lines, limit)


def _split_lines(lines: Sequence[str], limit: int) -> list[str]:
    messages: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        length = telegram_length(line) + (1 if current else 0)
        if current and size + length > limit:
            messages.append("\n".join(current).strip("\n"))
            current, size = [], 0
            length = telegram_length(line)
            if not line:
                continue  # no blank line at the top of a message
        current.append(line)
        size += length
    if current:
        messages.append("\n".join(current).strip("\n"))
    return [m for m in messages if m]
