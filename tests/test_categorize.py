"""Category rules: the feed's own categories, entry tags matched to ids,
titles and aliases, and whole-word keywords."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.categorize import Categorizer
from bot.config import CategoryConfig

CATEGORIES = [
    CategoryConfig(id="tech", title="Technology", aliases=["Gadgets", "Consumer Tech"]),
    CategoryConfig(
        id="ai", title="AI and Robotics", aliases=["machine-learning"], keywords=["AI", "LLM"]
    ),
    CategoryConfig(id="space", title="Space", keywords=["NASA", "SpaceX", "James Webb"]),
    CategoryConfig(id="code", title="Programming", keywords=["C++", "Rust", ".NET"]),
]
categorizer = Categorizer(CATEGORIES)


def categorize(
    title: str = "", summary: str = "", tags: tuple[str, ...] = (), feed: tuple[str, ...] = ()
) -> tuple[str, ...]:
    return categorizer.categorize(feed, tags, title, summary)


def test_feed_categories_always_apply() -> None:
    assert categorize("Nothing relevant", feed=("space",)) == ("space",)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("tech", ("tech",)),  # the id
        ("Technology", ("tech",)),  # the title
        ("TECHNOLOGY", ("tech",)),
        ("gadgets", ("tech",)),  # an alias
        ("consumer-tech", ("tech",)),  # spaces, dashes and underscores are one
        ("Consumer_Tech", ("tech",)),
        ("AI and Robotics", ("ai",)),  # a WordPress category written as the title
        ("Machine Learning", ("ai",)),
        ("Gadget", ()),  # no stemming, no prefixes
        ("", ()),
    ],
)
def test_entry_tags_match_ids_titles_and_aliases(tag: str, expected: tuple[str, ...]) -> None:
    assert categorize("x", tags=(tag,)) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("NASA picks a new rocket", ("space",)),
        ("nasa picks a new rocket", ("space",)),  # case-insensitive
        ("First images from James   Webb", ("space",)),  # a phrase, any spacing
        ("What is new in C++26", ()),  # "C++26" is one word, not "C++"
        ("What is new in C++ 26", ("code",)),  # symbols at the edge still match
        ("Moving from .NET to Rust", ("code",)),
        ("Trusting an LLM with code", ("ai",)),
        ("He said AI would help", ("ai",)),
        ("She said it would rain", ()),  # "AI" inside "said" is not the word
        ("Rusty nails", ()),
        ("SpaceX and NASA both use AI", ("ai", "space")),  # config order
    ],
)
def test_keywords_match_whole_words_in_the_title(title: str, expected: tuple[str, ...]) -> None:
    assert categorize(title) == expected


def test_keywords_match_in_the_summary_too() -> None:
    assert categorize("Weekly roundup", "This week NASA launched it.") == ("space",)


def test_results_follow_the_configured_order_without_duplicates() -> None:
    result = categorize(
        "Rust for AI on SpaceX rockets",
        tags=("Programming", "Space", "gadgets"),
        feed=("space", "tech"),
    )
    assert result == ("tech", "ai", "space", "code")


def test_no_categories_configured_keeps_only_the_feed_ones() -> None:
    empty = Categorizer([])
    assert empty.categorize(("x",), ("Technology",), "NASA", "") == ("x",)


@given(
    st.text(max_size=100),
    st.text(max_size=200),
    st.lists(st.text(max_size=30), max_size=5),
    st.lists(st.sampled_from([c.id for c in CATEGORIES]), max_size=3),
)
def test_categorize_returns_known_ids_once_including_the_feed_ones(
    title: str, summary: str, tags: list[str], feed: list[str]
) -> None:
    result = categorizer.categorize(feed, tags, title, summary)
    assert len(result) == len(set(result))
    assert set(feed) <= set(result)
    assert set(result) <= {c.id for c in CATEGORIES}
