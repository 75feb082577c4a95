"""The operators' feed button data: within Telegram's 64 bytes, read back
exactly, and anything else (old, forged, oversized) is None."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.telegram.feed_buttons import (
    MAX_CALLBACK_DATA,
    FeedButton,
    category_data,
    feed_data,
    page_data,
    parse_button,
    pick_data,
    token_data,
)

TOKENS = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=12, max_size=12
)
CATEGORY_IDS = st.from_regex(r"[a-z0-9][a-z0-9_]{0,31}", fullmatch=True)
NUMBERS = st.integers(min_value=0, max_value=999_999_999)


@given(NUMBERS, st.sampled_from(["f", "chk", "pau", "res", "rm", "rmy"]))
def test_feed_buttons_round_trip_within_the_limit(feed_id: int, action: str) -> None:
    data = feed_data(action, feed_id)
    assert len(data.encode()) <= MAX_CALLBACK_DATA
    assert parse_button(data) == FeedButton(action, number=feed_id)


@given(TOKENS, CATEGORY_IDS, NUMBERS)
def test_token_buttons_round_trip_within_the_limit(token: str, category: str, n: int) -> None:
    for data, expected in [
        (category_data(token, category), FeedButton("cat", token=token, category=category)),
        (pick_data(token, n), FeedButton("pick", number=n, token=token)),
        (token_data("add", token), FeedButton("add", token=token)),
        (token_data("imp", token), FeedButton("imp", token=token)),
        (token_data("no", token), FeedButton("no", token=token)),
        (page_data(n), FeedButton("pg", number=n)),
    ]:
        assert len(data.encode()) <= MAX_CALLBACK_DATA
        assert parse_button(data) == expected


@given(st.text(max_size=80))
def test_arbitrary_data_never_raises_and_only_exact_forms_parse(data: str) -> None:
    parsed = parse_button(data)
    if parsed is not None:
        assert data.startswith("fd:") and len(data.encode()) <= MAX_CALLBACK_DATA


@pytest.mark.parametrize(
    "data",
    [
        "fd:f:01",  # a leading zero: not how the bot writes it
        "fd:f:-1",
        "fd:f:1 ",
        "fd:f:1\n",
        "fd:pg:1234567890",
        "fd:cat:AAAAAAAAAAAA:Space",
        "fd:cat:AAAAAAAAAAAA:" + "a" * 33,
        "fd:add:short",
        "fd:add:AAAAAAAAAAAA:extra",
        "fd:pick:AAAAAAAAAAAA",
        "sub:space",
        "",
    ],
)
def test_malformed_data_is_refused(data: str) -> None:
    assert parse_button(data) is None


def test_building_data_that_would_not_parse_is_a_bug_caught_at_once() -> None:
    with pytest.raises(ValueError):
        feed_data("drop", 1)
    with pytest.raises(ValueError):
        category_data("AAAAAAAAAAAA", "Not An Id")
