"""Digest times, quiet hours, the burst cap and the digest message: pure
functions of plain data and ``now``, exercised across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import digest
from bot.digest import (
    HELD_FOR_CAP,
    HELD_FOR_DIGEST,
    HELD_FOR_QUIET,
    KIND_DIGEST,
    KIND_MORE,
    KIND_QUIET,
    BadTime,
    DigestEntry,
    DigestTexts,
    HeldCard,
    cap_until,
    compose_digest,
    digest_thread,
    due_digest,
    hold_for,
    local_instant,
    next_digest,
    parse_digest_times,
    parse_quiet_hours,
    parse_time_of_day,
    plan_release,
    quiet_until,
)
from tests.telegram_html import check_telegram_html, telegram_length

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- parsing what users type ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("7:05", "07:05"), ("07:05", "07:05"), (" 23:59 ", "23:59")]
)
def test_a_time_of_day_is_stored_as_hh_mm(text: str, expected: str) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["24:00", "12:60", "7", "7:5", "noon", "", "-1:00", "12:00:00"])
def test_what_is_not_a_time_of_day_is_refused(text: str) -> None:
    with pytest.raises(BadTime):
        parse_time_of_day(text)


def test_digest_times_are_sorted_and_each_kept_once() -> None:
    assert parse_digest_times(["18:00", "8:00", "08:00"]) == ("08:00", "18:00")


def test_more_than_six_digest_times_are_refused() -> None:
    with pytest.raises(BadTime, match="at most 6"):
        parse_digest_times([f"{h}:00" for h in range(7)])
    assert len(parse_digest_times([f"{h}:00" for h in range(6)])) == 6


def test_no_digest_time_is_refused() -> None:
    with pytest.raises(BadTime):
        parse_digest_times([])


def test_quiet_hours_may_wrap_midnight() -> None:
    assert parse_quiet_hours("23:00-7:00") == ("23:00", "07:00")
    assert parse_quiet_hours("13:00–14:30") == ("13:00", "14:30")


@pytest.mark.parametrize("text", ["23:00", "23:00-", "1:00-2:00-3:00", "8:00-8:00", "x-y"])
def test_a_bad_quiet_range_is_refused(text: str) -> None:
    with pytest.raises(BadTime):
        parse_quiet_hours(text)


# -- local times across DST -------------------------------------------------


def test_a_time_in_the_spring_gap_happens_just_after_it() -> None:
    # 2026-03-29: Berlin goes from 02:00 CET to 03:00 CEST.
    assert local_instant(datetime(2026, 3, 29).date(), "02:30", BERLIN) == utc(2026, 3, 29, 1, 30)
    # 2026-03-08: New York goes from 02:00 EST to 03:00 EDT.
    assert local_instant(datetime(2026, 3, 8).date(), "02:30", NEW_YORK) == utc(2026, 3, 8, 7, 30)


def test_a_repeated_autumn_time_happens_at_its_first_occurrence() -> None:
    # 2026-10-25: Berlin's 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET).
    assert local_instant(datetime(2026, 10, 25).date(), "02:30", BERLIN) == utc(2026, 10, 25, 0, 30)
    # 2026-11-01: New York's 01:30 at 05:30 UTC (EDT) and 06:30 UTC (EST).
    assert local_instant(datetime(2026, 11, 1).date(), "01:30", NEW_YORK) == utc(2026, 11, 1, 5, 30)


@pytest.mark.parametrize(
    ("zone", "day", "utc_hour"),
    [
        (BERLIN, (2026, 3, 28), 7),  # CET: 08:00 is 07:00 UTC
        (BERLIN, (2026, 3, 29), 6),  # CEST from that night: 06:00 UTC
        (BERLIN, (2026, 10, 24), 6),
        (BERLIN, (2026, 10, 25), 7),
        (NEW_YORK, (2026, 3, 7), 13),  # EST
        (NEW_YORK, (2026, 3, 8), 12),  # EDT
        (NEW_YORK, (2026, 10, 31), 12),
        (NEW_YORK, (2026, 11, 1), 13),
    ],
)
def test_a_digest_keeps_its_wall_clock_time_across_dst(
    zone: ZoneInfo, day: tuple[int, int, int], utc_hour: int
) -> None:
    at = utc(*day, utc_hour)
    assert due_digest(["08:00"], zone, at - timedelta(hours=12), at) == at
    assert due_digest(["08:00"], zone, at - timedelta(hours=12), at - timedelta(seconds=1)) is None
    assert next_digest(["08:00"], zone, at - timedelta(hours=3)) == at


def test_the_day_of_a_dst_change_has_each_digest_time_once() -> None:
    # In spring 02:30 does not exist and happens with 03:30 (one digest, not
    # two at the same instant); in autumn 01:30 or 02:30 happens twice and
    # is sent once.
    times = ["00:30", "01:30", "02:30", "03:30"]
    for zone, day, expected in [
        (BERLIN, (2026, 3, 29), 3),
        (BERLIN, (2026, 10, 25), 4),
        (NEW_YORK, (2026, 3, 8), 3),
        (NEW_YORK, (2026, 11, 1), 4),
    ]:
        start = datetime(*day, tzinfo=zone).astimezone(UTC) - timedelta(minutes=1)
        seen: list[datetime] = []
        last = start
        now = start
        while now < start + timedelta(hours=6):
            now += timedelta(minutes=1)
            due = due_digest(times, zone, last, now)
            if due is not None:
                seen.append(due)
                last = now
        assert len(seen) == len(set(seen)) == expected, (zone, day, seen)


def test_missed_digest_times_are_due_once() -> None:
    last = utc(2026, 6, 1, 6, 0)  # 08:00 Berlin
    now = utc(2026, 6, 3, 10, 0)  # two days and 12:00 later
    due = due_digest(["08:00", "18:00"], BERLIN, last, now)
    assert due == utc(2026, 6, 3, 6, 0)  # the latest: today's 08:00
    assert due_digest(["08:00", "18:00"], BERLIN, now, now + timedelta(hours=1)) is None


def test_no_digest_times_are_never_due() -> None:
    assert due_digest([], BERLIN, None, utc(2026, 1, 1)) is None
    assert next_digest([], BERLIN, utc(2026, 1, 1)) is None


@given(
    start=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)),
    steps=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40),
    times=st.lists(
        st.tuples(st.integers(0, 23), st.integers(0, 59)), min_size=1, max_size=6, unique=True
    ),
    zone=st.sampled_from([BERLIN, NEW_YORK, UTC]),
)
def test_a_digest_is_due_at_most_once_per_time_and_never_early(
    start: datetime,
    steps: list[int],
    times: list[tuple[int, int]],
    zone: ZoneInfo,
) -> None:
    hhmm = [f"{h:02d}:{m:02d}" for h, m in times]
    now = start.replace(tzinfo=UTC)
    last = now
    sent: list[datetime] = []
    for minutes in steps:
        expected = next_digest(hhmm, zone, last)
        now += timedelta(minutes=minutes)
        due = due_digest(hhmm, zone, last, now)
        if expected is not None and expected <= now:
            assert due is not None and expected <= due <= now
            sent.append(due)
            last = now
        else:
            assert due is None
    assert len(sent) == len(set(sent))


# -- quiet hours ----------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "ends"),
    [
        ((2026, 6, 1, 22, 59), None),
        ((2026, 6, 1, 23, 0), (2026, 6, 2, 7, 0)),
        ((2026, 6, 2, 3, 0), (2026, 6, 2, 7, 0)),
        ((2026, 6, 2, 6, 59), (2026, 6, 2, 7, 0)),
        ((2026, 6, 2, 7, 0), None),
        ((2026, 6, 2, 12, 0), None),
    ],
)
def test_quiet_hours_that_wrap_midnight(
    local: tuple[int, ...], ends: tuple[int, ...] | None
) -> None:
    now = datetime(*local, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]
    expected = datetime(*ends, tzinfo=BERLIN).astimezone(UTC) if ends else None  # type: ignore[misc]
    assert quiet_until(("23:00", "07:00"), BERLIN, now) == expected


def test_quiet_hours_within_a_day() -> None:
    noon = datetime(2026, 6, 1, 12, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert quiet_until(("13:00", "14:00"), NEW_YORK, noon) is None
    one = noon + timedelta(hours=1)
    assert quiet_until(("13:00", "14:00"), NEW_YORK, one) == noon + timedelta(hours=2)
    assert quiet_until(None, NEW_YORK, one) is None


def test_quiet_hours_over_the_spring_change_end_at_local_morning() -> None:
    # Berlin, night of 28/29 March 2026: 23:00 CET to 07:00 CEST is 7 hours.
    evening = datetime(2026, 3, 28, 23, 30, tzinfo=BERLIN).astimezone(UTC)
    assert quiet_until(("23:00", "07:00"), BERLIN, evening) == utc(2026, 3, 29, 5, 0)


# -- the burst cap --------------------------------------------------------


def test_below_the_cap_nothing_is_held() -> None:
    now = utc(2026, 1, 1, 12)
    sent = [now - timedelta(minutes=n) for n in range(29)]
    assert cap_until(sent, now, 30) is None


def test_at_the_cap_cards_wait_for_the_rolling_hour() -> None:
    now = utc(2026, 1, 1, 12)
    sent = [now - timedelta(minutes=59 - n) for n in range(30)]  # 11:01 ... 11:59:?
    assert cap_until(sent, now, 30) == utc(2026, 1, 1, 12, 1)


def test_cards_older_than_an_hour_do_not_count() -> None:
    now = utc(2026, 1, 1, 12)
    sent = [now - timedelta(minutes=61 + n) for n in range(100)]
    assert cap_until(sent, now, 30) is None


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=7200), max_size=80),
    cap=st.integers(min_value=1, max_value=40),
)
def test_the_cap_ends_exactly_when_one_more_card_fits(offsets: list[int], cap: int) -> None:
    now = utc(2026, 1, 1, 12)
    sent = [now - timedelta(seconds=s) for s in offsets]
    until = cap_until(sent, now, cap)
    in_window = [t for t in sent if t > now - timedelta(hours=1)]
    if until is None:
        assert len(in_window) < cap
    else:
        assert until > now
        assert cap_until(sent, until, cap) is None
        assert cap_until(sent, until - timedelta(seconds=1), cap) is not None


def test_digest_mode_comes_before_quiet_hours_and_the_cap() -> None:
    now = utc(2026, 1, 1, 23, 30)
    many = [now] * 40
    common = {"zone": UTC, "now": now, "recent_cards": many, "cap": 30}
    digest = hold_for(digest_times=["08:00"], quiet=("23:00", "07:00"), **common)  # type: ignore[arg-type]
    assert digest is not None and digest.reason == HELD_FOR_DIGEST and digest.until is None
    quiet = hold_for(digest_times=[], quiet=("23:00", "07:00"), **common)  # type: ignore[arg-type]
    assert quiet is not None and quiet.reason == HELD_FOR_QUIET
    assert quiet.until == utc(2026, 1, 2, 7)
    capped = hold_for(digest_times=[], quiet=None, **common)  # type: ignore[arg-type]
    assert capped is not None and capped.reason == HELD_FOR_CAP
    free = hold_for(digest_times=[], quiet=None, zone=UTC, now=now, recent_cards=[], cap=30)
    assert free is None


# -- releasing held cards -------------------------------------------------


NOW = utc(2026, 6, 1, 6, 0)  # 08:00 in Berlin


def held(n: int, reason: str, until: datetime | None) -> list[HeldCard]:
    return [HeldCard(i, reason, until) for i in range(1, n + 1)]


def test_at_a_digest_time_every_held_card_is_gathered() -> None:
    cards = [*held(3, HELD_FOR_DIGEST, None), HeldCard(9, HELD_FOR_QUIET, NOW)]
    release = plan_release(
        cards, digest_times=["08:00"], zone=BERLIN, last_digest=NOW - timedelta(hours=1), now=NOW
    )
    assert release is not None
    assert release.digest_kind == KIND_DIGEST and release.card_ids == (1, 2, 3, 9)
    assert release.slot == NOW


def test_an_empty_digest_time_is_marked_done_but_sends_nothing() -> None:
    release = plan_release(
        [], digest_times=["08:00"], zone=BERLIN, last_digest=NOW - timedelta(hours=1), now=NOW
    )
    assert release is not None and release.digest_kind is None and release.card_ids == ()
    assert release.slot == NOW


def test_before_the_digest_time_nothing_happens() -> None:
    early = NOW - timedelta(minutes=1)
    cards = held(3, HELD_FOR_DIGEST, None)
    assert (
        plan_release(
            cards,
            digest_times=["08:00"],
            zone=BERLIN,
            last_digest=NOW - timedelta(hours=2),
            now=early,
        )
        is None
    )


def test_quiet_hours_end_with_a_few_cards_as_cards() -> None:
    release = plan_release(
        held(5, HELD_FOR_QUIET, NOW), digest_times=[], zone=BERLIN, last_digest=None, now=NOW
    )
    assert release is not None and release.digest_kind is None
    assert release.card_ids == (1, 2, 3, 4, 5)


def test_quiet_hours_end_with_more_than_five_cards_as_one_digest() -> None:
    release = plan_release(
        held(6, HELD_FOR_QUIET, NOW), digest_times=[], zone=BERLIN, last_digest=None, now=NOW
    )
    assert release is not None and release.digest_kind == KIND_QUIET
    assert len(release.card_ids) == 6


def test_cards_in_quiet_hours_wait_until_they_end() -> None:
    later = NOW + timedelta(minutes=1)
    cards = held(8, HELD_FOR_QUIET, later)
    assert plan_release(cards, digest_times=[], zone=BERLIN, last_digest=None, now=NOW) is None


def test_the_end_of_a_capped_hour_folds_into_one_more_message() -> None:
    release = plan_release(
        held(2, HELD_FOR_CAP, NOW), digest_times=[], zone=BERLIN, last_digest=None, now=NOW
    )
    assert release is not None and release.digest_kind == KIND_MORE


def test_leaving_digest_mode_releases_what_was_held_for_it() -> None:
    release = plan_release(
        held(7, HELD_FOR_DIGEST, None), digest_times=[], zone=BERLIN, last_digest=None, now=NOW
    )
    assert release is not None and release.digest_kind == KIND_DIGEST
    few = plan_release(
        held(2, HELD_FOR_DIGEST, None), digest_times=[], zone=BERLIN, last_digest=None, now=NOW
    )
    assert few is not None and few.digest_kind is None and few.card_ids == (1, 2)


def test_a_digest_goes_to_the_topic_its_cards_share_else_general() -> None:
    assert digest_thread([5, 5, 5]) == 5
    assert digest_thread([5, 7]) is None
    assert digest_thread([5, None]) is None
    assert digest_thread([None]) is None


# -- the message ----------------------------------------------------------


TITLES = {"space": "Space", "science": "Science", "ai": "AI & Robotics"}
TEXTS = DigestTexts(
    heading="Digest for Monday, 1 June 2026", more=lambda n, c: f"…and {n} more — /latest {c}"
)


def entry(n: int, category: str, title: str | None = None) -> DigestEntry:
    return DigestEntry(
        title=title or f"Story {n}",
        url=f"https://example.com/{n}?a=1&b=2",
        source="Example <News>",
        category_id=category,
        published=utc(2026, 6, 1) + timedelta(minutes=n),
    )


def test_a_digest_lists_categories_in_config_order_with_linked_headlines() -> None:
    entries = [entry(1, "ai"), entry(2, "space"), entry(3, "science")]
    (message,) = compose_digest(entries, TITLES, TEXTS)
    check_telegram_html(message)
    assert message.startswith("<b>Digest for Monday, 1 June 2026</b>")
    assert message.index("<b>Space</b>") < message.index("<b>Science</b>")
    assert message.index("<b>Science</b>") < message.index("<b>AI &amp; Robotics</b>")
    assert '<a href="https://example.com/2?a=1&amp;b=2">Story 2</a> — Example &lt;News&gt;' in (
        message
    )


def test_a_digest_shows_ten_headlines_per_category_and_counts_the_rest() -> None:
    entries = [entry(n, "space") for n in range(1, 14)]
    (message,) = compose_digest(entries, TITLES, TEXTS)
    assert message.count("<a href=") == 10
    assert "…and 3 more — /latest space" in message
    # The newest first.
    assert message.index("Story 13") < message.index("Story 4")
    assert "Story 3<" not in message


def test_an_empty_digest_has_no_message() -> None:
    assert compose_digest([], TITLES, TEXTS) == []


def test_a_long_digest_is_split_between_headlines_only() -> None:
    categories = {f"c{n}": f"Category {n} & co" for n in range(40)}
    long_title = "Ünïcödé 🚀 headline with <markup> & more " * 5
    entries = [
        entry(n * 100 + k, f"c{n}", f"{long_title} {n}-{k}") for n in range(40) for k in range(10)
    ]
    messages = compose_digest(entries, categories, TEXTS)
    assert len(messages) > 1
    for message in messages:
        assert telegram_length(message) <= 4096
        check_telegram_html(message)
        assert not message.startswith("\n") and not message.endswith("\n")
    joined = "\n".join(messages)
    assert joined.count("<a href=") == 400


def test_a_digest_is_one_message_while_its_text_fits_however_long_its_links() -> None:
    # Telegram counts the text after entity parsing: long URLs cost nothing.
    entries = [
        DigestEntry(f"Story {n}", "https://example.com/" + "x" * 400, "S", "space", NOW)
        for n in range(10)
    ]
    (message,) = compose_digest(entries, TITLES, TEXTS)
    assert len(message) > 4096 and telegram_length(message) < 4096


@given(
    titles=st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=60),
    limit=st.integers(min_value=600, max_value=4096),
)
def test_every_part_of_a_digest_is_valid_html_within_the_limit(
    titles: list[str], limit: int
) -> None:
    entries = [entry(n, ["space", "science", "ai"][n % 3], t) for n, t in enumerate(titles)]
    messages = compose_digest(entries, TITLES, TEXTS, limit=limit)
    assert messages
    shown = 0
    for message in messages:
        assert telegram_length(message) <= limit
        # The composer's own count is the one Telegram (and the fake) applies.
        assert digest.telegram_length(message) == telegram_length(message)
        check_telegram_html(message)
        shown += message.count("<a href=")
    assert shown == sum(min(10, len(titles[k::3])) for k in range(3))
