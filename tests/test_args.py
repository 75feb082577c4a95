"""Command arguments and callback data: any input gives a value or a short
problem, never an exception; forged data is rejected."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.config import CategoryConfig
from bot.services import resolve_categories
from bot.telegram.args import (
    MAX_CALLBACK_BYTES,
    LatestArgs,
    Problem,
    SearchPage,
    Toggle,
    parse_latest,
    parse_search_data,
    parse_toggle,
    search_data,
    split_target,
    toggle_data,
)

CATEGORIES = [
    CategoryConfig(id="space", title="Space"),
    CategoryConfig(id="science", title="Science"),
    CategoryConfig(id="ai_robotics", title="AI and Robotics"),
    CategoryConfig(id="industry", title="Industry News"),
]


def test_categories_resolve_by_id_or_title_in_any_case() -> None:
    lookup = resolve_categories(["SPACE", "ai", "and", "robotics", "Industry News"], CATEGORIES)
    assert [c.id for c in lookup.found] == ["space", "ai_robotics", "industry"]
    assert lookup.unknown == []


def test_a_typo_gets_a_did_you_mean() -> None:
    lookup = resolve_categories(["spcae"], CATEGORIES)
    assert lookup.found == []
    assert lookup.unknown == [("spcae", ["Space"])]


def test_latest_takes_category_and_count_in_either_order() -> None:
    assert parse_latest(["3", "space"], CATEGORIES) == LatestArgs(CATEGORIES[0], 3)
    assert parse_latest(["space", "50"], CATEGORIES) == LatestArgs(CATEGORIES[0], 20)
    assert parse_latest([], CATEGORIES) == LatestArgs(None, 5)
    assert isinstance(parse_latest(["0"], CATEGORIES), Problem)
    problem = parse_latest(["spcae"], CATEGORIES)
    assert isinstance(problem, Problem) and "Did you mean Space?" in problem.message


def test_channel_references_are_split_off() -> None:
    assert split_target(["@MyChannel", "space"]) == ("@MyChannel", ["space"])
    assert split_target(["https://t.me/mychannel", "space"]) == ("@mychannel", ["space"])
    assert split_target(["-1001234567890"]) == (-1001234567890, [])
    assert split_target(["space", "@x"]) == (None, ["space", "@x"])
    assert split_target(["@ab"]) == (None, ["@ab"])  # too short to be a username


def test_callback_data_round_trips_and_fits_64_bytes() -> None:
    assert parse_toggle(toggle_data("ai_robotics", subscribe=True)) == Toggle(
        "ai_robotics", None, True
    )
    long_id = "x" * 32
    data = toggle_data(long_id, -1001234567890123, subscribe=False)
    assert len(data.encode()) <= MAX_CALLBACK_BYTES
    assert parse_toggle(data) == Toggle(long_id, -1001234567890123, False)
    data = search_data(9_999_999_999, 1000)
    assert len(data.encode()) <= MAX_CALLBACK_BYTES
    assert parse_search_data(data) == SearchPage(1000, key=9_999_999_999)
    # A button sent before queries were kept server-side still pages.
    assert parse_search_data("s:5:mars rover") == SearchPage(5, words="mars rover")


def test_buttons_of_the_old_format_parse_as_no_action() -> None:
    assert parse_toggle("t:space") == Toggle("space", None, None)
    assert parse_toggle("t:space:-1001234567890") == Toggle("space", -1001234567890, None)


def test_forged_callback_data_is_rejected() -> None:
    for forged in [
        "t:",
        "t:space:notanumber",
        "t:a:b:c",
        "sub:",
        "unsub:space:x",
        "sub:a:b:c",
        "x:1",
        "s:-1:q",
        "s:abc:q",
        "s:5:",
        "s:99999:q",
        "q:1",
        "q:x:5",
        "q:1:x",
        "q:1:99999",
        "q:²:5",
        "",
    ]:
        assert parse_toggle(forged) is None or forged.startswith(("t:space", "unsub:space"))
        assert parse_search_data(forged) is None


@given(st.lists(st.text(max_size=200), max_size=30))
def test_any_arguments_parse_without_raising(words: list[str]) -> None:
    result = parse_latest(words, CATEGORIES)
    assert isinstance(result, LatestArgs | Problem)
    resolve_categories(words, CATEGORIES)
    split_target(words)


@given(st.text(max_size=4096))
def test_any_text_is_safe_callback_data(text: str) -> None:
    parse_toggle(text)
    parse_search_data(text)
