"""A broad search looks for its newest matches among the newest articles
first (PostgreSQL: slices of ids, ``search_postgres._newest_matches``); the
answer must be the one the whole table gives, however the matches are spread.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bot.storage.search_postgres as search_postgres
import bot.storage.search_sqlite as search_sqlite
from bot.storage import Storage
from bot.storage.search_postgres import next_window
from tests.test_storage import NOW, article, one_feed, storage, store

__all__ = ["storage"]  # the fixture: every test here runs on both backends

CANDIDATES = 20
SELECTIVE = 5


@given(
    found=st.integers(min_value=0, max_value=10_000),
    window=st.integers(min_value=1, max_value=1_000_000),
    newest_id=st.integers(min_value=1, max_value=10_000_000),
    wanted=st.integers(min_value=1, max_value=5_000),
)
def test_the_next_window_grows_and_holds_the_wanted_matches_at_the_density_found(
    found: int, window: int, newest_id: int, wanted: int
) -> None:
    if found >= wanted or window >= newest_id:
        return  # the search stops there: no next window is asked for
    grown = next_window(found, window, newest_id, wanted)
    if grown is None:
        return
    assert window * 2 <= grown < newest_id
    assert found * grown >= wanted * window  # as dense, it holds what is wanted


@given(
    window=st.integers(min_value=1, max_value=1_000_000),
    newest_id=st.integers(min_value=2, max_value=10_000_000),
)
def test_a_window_without_a_match_leads_to_all_the_articles(window: int, newest_id: int) -> None:
    assert next_window(0, window, newest_id, 1001) is None


def test_a_density_that_leaves_few_matches_in_all_reads_them_all() -> None:
    # 5 matches in the newest 4000 of a million: about 1,250 in all, under
    # twice the 1001 wanted.
    assert next_window(5, 4000, 1_000_000, 1001) is None
    assert next_window(100, 4000, 1_000_000, 1001) == 60_060


@pytest.fixture
def small_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The candidate counts (and PostgreSQL's slices) at toy sizes, so a few
    hundred articles cross every boundary: the first slice, a scanned one, a
    bitmap one and the rest of the table."""
    for module in (search_postgres, search_sqlite):
        monkeypatch.setattr(module, "CANDIDATES", CANDIDATES)
        monkeypatch.setattr(module, "SELECTIVE", SELECTIVE)
    monkeypatch.setattr(search_postgres, "FIRST_WINDOW", 8)
    monkeypatch.setattr(search_postgres, "SCANNED_WINDOW", 80)


def expected_ranking(matches: list[tuple[int, bool]]) -> list[int]:
    """The rule for a broad query: its CANDIDATES newest matches, those with
    the word in the title first, then newest first."""
    newest = sorted(matches, reverse=True)[:CANDIDATES]
    return [n for n, _ in sorted(newest, key=lambda m: (not m[1], -m[0]))]


@pytest.mark.parametrize(
    "spread",
    [
        "sparse-newest",  # one match in the newest 50, dense before
        "dense-newest",  # every other article
        "old-only",  # nothing in the newest 200
        "burst-then-old",  # the newest 16, then nothing down to 100
    ],
)
async def test_a_broad_search_finds_the_newest_matches_however_they_are_spread(
    storage: Storage, small_candidates: None, spread: str
) -> None:
    total = 300

    def matches(n: int) -> bool:
        if spread == "sparse-newest":
            return n == 290 or (n <= 250 and n % 3 == 0)
        if spread == "dense-newest":
            return n % 2 == 0
        if spread == "burst-then-old":
            return n > 284 or (n <= 100 and n % 4 == 0)
        return n <= 100 and n % 2 == 1

    def in_title(n: int) -> bool:
        return matches(n) and n % 7 == 0

    stories = [
        article(
            f"story-{n}",
            f"Vote counted in ward {n}" if in_title(n) else f"Story {n}",
            summary=f"about the vote in ward {n}" if matches(n) else f"about ward {n}",
            published=NOW - timedelta(minutes=total - n),
        )
        for n in range(1, total + 1)
    ]
    feed = await one_feed(storage)
    await store(storage, feed, stories[::-1])  # newest first, as a feed lists them
    wanted = expected_ranking([(n, in_title(n)) for n in range(1, total + 1) if matches(n)])
    pages = []
    for offset in range(0, CANDIDATES, 6):
        page = await storage.search.search_articles("vote", 6, offset=offset)
        pages += [int(a.title.rsplit(" ", 1)[1]) for a in page]
    assert pages == wanted


async def test_a_word_found_only_in_old_articles_is_still_ranked_by_relevance(
    storage: Storage, small_candidates: None
) -> None:
    feed = await one_feed(storage)
    stories = [
        article(f"story-{n}", f"Story {n}", published=NOW - timedelta(minutes=300 - n))
        for n in range(1, 301)
    ]
    stories[9] = article("old-summary", "Old story", summary="a referendum", published=NOW)
    stories[19] = article("old-title", "Referendum called", published=NOW - timedelta(days=2))
    await store(storage, feed, stories[::-1])  # newest first, as a feed lists them
    found = [a.title for a in await storage.search.search_articles("referendum", 10)]
    # Fewer than SELECTIVE matches: all are ranked, the title above the
    # summary though it is older.
    assert found == ["Referendum called", "Old story"]
