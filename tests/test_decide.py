"""``decide``: what a parsed feed means against what is stored. Pure, so
every rule is checked on plain values, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from bot.decide import Correction, SameStory, StoredEntry, decide
from bot.models import NewArticle

FEED = 1
OTHER_FEED = 2
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def entry(
    key: str,
    title: str = "Title",
    *,
    url: str | None = None,
    summary: str = "",
    categories: tuple[str, ...] = ("space",),
) -> NewArticle:
    return NewArticle(
        key=key,
        url=url or f"https://news.example/{key}",
        title=title,
        summary=summary,
        author=None,
        published=NOW,
        image_url=None,
        categories=categories,
    )


def stored(
    article_id: int,
    feed_id: int = FEED,
    title: str = "Title",
    summary: str = "",
    categories: tuple[str, ...] = ("space",),
) -> StoredEntry:
    return StoredEntry(article_id, feed_id, title, summary, categories)


def test_unseen_entries_are_new_in_feed_order() -> None:
    entries = [entry("a"), entry("b"), entry("c")]
    assert decide(FEED, entries, {}, {}).new == entries


def test_a_known_key_with_the_same_text_is_nothing_to_do() -> None:
    decision = decide(FEED, [entry("a")], {"a": stored(10)}, {})
    assert (decision.new, decision.changed, decision.same_story) == ([], [], [])


def test_a_corrected_title_or_summary_is_a_change_of_the_stored_article() -> None:
    decision = decide(
        FEED,
        [entry("a", "Fixed title"), entry("b", summary="Now with details")],
        {"a": stored(10, title="Fxied title"), "b": stored(11)},
        {},
    )
    assert decision.changed == [
        Correction(10, "Fixed title", ""),
        Correction(11, "Title", "Now with details"),
    ]
    assert decision.new == []


def test_another_feeds_story_carried_here_is_not_corrected_by_this_feed() -> None:
    # The key is an alias of another feed's article: its text is not ours to fix.
    decision = decide(FEED, [entry("a", "Our wording")], {"a": stored(10, OTHER_FEED)}, {})
    assert decision.changed == []


def test_the_same_link_from_another_feed_is_the_same_story_with_the_categories_it_gains() -> None:
    shared = "https://wire.example/story"
    decision = decide(
        FEED,
        [entry("x", url=shared, categories=("industry", "space"))],
        {},
        {shared: stored(10, OTHER_FEED, categories=("space",))},
    )
    assert decision.new == []
    assert decision.same_story == [
        SameStory(entry("x", url=shared, categories=("industry", "space")), 10, ("industry",))
    ]


def test_the_same_link_under_a_new_guid_in_the_same_feed_is_not_news() -> None:
    shared = "https://news.example/story"
    decision = decide(FEED, [entry("guid-2", url=shared)], {}, {shared: stored(10)})
    assert (decision.new, decision.same_story) == ([], [])


def test_a_link_twice_in_one_feed_counts_once_the_first_time() -> None:
    shared = "https://news.example/story"
    first, second = entry("a", "First", url=shared), entry("b", "Second", url=shared)
    assert decide(FEED, [first, second], {}, {}).new == [first]


def test_entries_that_fall_back_to_the_site_url_are_never_merged() -> None:
    site = "https://news.example/"
    one, two = entry("hash:1", url=site), entry("hash:2", url=site)
    decision = decide(FEED, [one, two], {}, {site: stored(10)}, frozenset({site}))
    assert decision.new == [one, two]


@given(
    st.lists(
        st.tuples(st.sampled_from("abcdef"), st.sampled_from(["u1", "u2", "u3", "site"])),
        max_size=12,
    ),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 5), max_size=4),
    st.dictionaries(st.sampled_from(["u1", "u2", "u3"]), st.integers(1, 5), max_size=3),
)
def test_every_entry_has_at_most_one_fate_and_no_story_is_new_twice(
    raw: list[tuple[str, str]], keys: dict[str, int], urls: dict[str, int]
) -> None:
    entries = [entry(k, url=f"https://x.example/{u}") for k, u in raw]
    known_keys = {k: stored(i, FEED if i % 2 else OTHER_FEED) for k, i in keys.items()}
    known_urls = {f"https://x.example/{u}": stored(i, OTHER_FEED) for u, i in urls.items()}
    generic = frozenset({"https://x.example/site"})
    decision = decide(FEED, entries, known_keys, known_urls, generic)
    new_urls = [e.url for e in decision.new if e.url not in generic]
    assert len(new_urls) == len(set(new_urls))
    assert not {e.key for e in decision.new} & set(known_keys)
    assert not set(new_urls) & set(known_urls)
