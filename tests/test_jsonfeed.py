"""JSON Feed 1.0/1.1: parsed into the same values as RSS and Atom, refused
with a clear ParseError when malformed, never anything else whatever the
shape, and ingested through the whole pipeline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import ManualClock
from bot.errors import ParseError
from bot.parse import parse
from bot.runtime import Runtime
from bot.text import SUMMARY_LIMIT, TITLE_LIMIT
from tests.feed_server import FeedServer
from tests.support import loopback_config

FIXTURES = Path(__file__).parent / "jsonfeed"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://example.org/feed.json"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_a_json_feed_1_1_parses_into_the_same_values_as_rss() -> None:
    feed = parse(fixture("simple-1.1.json"), FEED_URL, "application/feed+json")
    assert (feed.title, feed.site_url, feed.version) == (
        "My Example Feed",
        "https://example.org/",
        "json11",
    )
    second, first = feed.entries
    assert second.key == "2"
    assert second.url == "https://example.org/second-item"
    assert second.title == "This is a second item."  # no title: the text's start
    assert second.summary == "This is a second item."
    assert second.published == datetime(2026, 2, 10, 19, 4, tzinfo=UTC)
    assert second.tags == ("Space", "NASA")
    assert first.title == "First <b>item</b>, in plain text"  # JSON Feed titles are text
    assert first.summary == "Hello, world!"
    assert first.url == "https://example.org/initial-post"  # tracking parameters dropped
    assert first.image_url == "https://example.org/pics/one.png"
    assert first.published == datetime(2026, 2, 9, 9, 0, tzinfo=UTC)
    assert first.author == "Manton Reece, Brent Simmons"


def test_a_json_feed_1_0_with_one_author_summary_and_banner_parses() -> None:
    feed = parse(fixture("podcast-1.0.json"), "http://therecord.example/feed/json", None)
    assert feed.version == "json1"
    episode, numbered = feed.entries
    assert episode.summary == "Brent interviews Chris Parrish, co-host of The Record."
    assert episode.image_url == "http://therecord.example/banners/025.jpg"
    assert episode.author == "Timetable Radio"
    assert episode.published == datetime(2014, 5, 9, 21, 4, tzinfo=UTC)  # date_modified
    assert numbered.key == "26"
    assert numbered.url == "http://therecord.example/"
    assert numbered.image_url == "http://therecord.example/images/26.jpg"
    assert numbered.published == datetime(2014, 5, 10, tzinfo=UTC)


def test_a_json_feed_is_recognised_by_its_version_whatever_the_content_type() -> None:
    body = fixture("simple-1.1.json")
    for content_type in ("application/json", "text/plain", None, "application/xml"):
        assert parse(b"\xef\xbb\xbf\n" + body, FEED_URL, content_type).version == "json11"


def test_long_fields_get_the_same_limits_as_rss() -> None:
    item = {"id": "x" * 5000, "title": "word " * 1000, "content_text": "text " * 5000}
    feed = parse(feed_json([item]), FEED_URL, "application/feed+json")
    (entry,) = feed.entries
    assert len(entry.title) <= TITLE_LIMIT + 1 and len(entry.summary) <= SUMMARY_LIMIT + 1
    assert entry.key.startswith("hash:")


def feed_json(items: Any, **fields: Any) -> bytes:
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items, **fields}
    ).encode()


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', None, "malformed JSON"),
        (b"{not json", "application/feed+json", "malformed JSON Feed"),
        (b"", "application/feed+json", "malformed JSON Feed"),
        (b'{"version": "1.1", "items": []}', None, "not a JSON Feed"),
        (b'["https://jsonfeed.org/version/1.1"]', "application/feed+json", "not a JSON Feed"),
        (b'{"version": 1.1}', "application/json", "not a JSON Feed"),
        (b"\xff\xfe{}", "application/feed+json", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "application/feed+json", "malformed JSON Feed"),
        (b'{"version": 1' + b"1" * 5000 + b"}", None, "malformed JSON Feed"),
    ],
)
def test_malformed_json_fails_with_a_clear_parse_error(
    body: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        parse(body, FEED_URL, content_type)


def test_wrong_types_everywhere_are_treated_as_absent() -> None:
    items = [
        None,
        7,
        "an item",
        [],
        {
            "id": True,
            "url": 5,
            "title": ["x"],
            "content_html": {"a": 1},
            "content_text": 3.5,
            "summary": None,
            "image": [],
            "banner_image": {},
            "date_published": 20260101,
            "date_modified": "not a date",
            "tags": "space",
            "authors": {"name": "x"},
            "author": "y",
        },
        {
            "id": "ok",
            "tags": [1, None, {"x": 1}, "Real"],
            "authors": [1, {"name": 2}, {"name": "A"}],
        },
    ]
    feed = parse(feed_json(items, title=["x"], home_page_url=7), FEED_URL, "application/feed+json")
    assert (feed.title, feed.site_url) == ("", None)
    odd, ok = feed.entries
    assert (odd.title, odd.summary, odd.published, odd.tags, odd.author) == (
        "Untitled",
        "",
        None,
        (),
        None,
    )
    assert odd.url == "https://example.org/feed.json"
    assert (ok.key, ok.tags, ok.author) == ("ok", ("Real",), "A")
    assert parse(feed_json("items"), FEED_URL, None).entries == ()


def test_huge_arrays_are_cut_without_failing() -> None:
    items: list[dict[str, Any]] = [{"id": str(n)} for n in range(20_000)]
    items[0] = {"id": "0", "tags": ["t"] * 100_000, "authors": [{"name": "a"}] * 100_000}
    feed = parse(feed_json(items), FEED_URL, None)
    assert len(feed.entries) == 1000
    assert (feed.entries[0].tags, feed.entries[0].author) == (("t",), "a")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "url",
                    "title",
                    "content_html",
                    "content_text",
                    "summary",
                    "image",
                    "banner_image",
                    "date_published",
                    "date_modified",
                    "tags",
                    "authors",
                    "author",
                    "name",
                    "external_url",
                    "items",
                    "home_page_url",
                ]
            ),
            children,
            max_size=8,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=json_values, extra=json_values)
def test_any_json_shape_gives_a_feed_or_a_parse_error(items: Any, extra: Any) -> None:
    document = {"version": "https://jsonfeed.org/version/1.1", "items": items}
    if isinstance(extra, dict):
        document = {**extra, **document}
    for body in (json.dumps(document).encode(), json.dumps(extra).encode()):
        try:
            parse(body, FEED_URL, "application/feed+json")
        except ParseError:
            pass


@pytest.fixture
async def runtime(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> AsyncIterator[Runtime]:
    feed_server.serve(
        "/feed.json", fixture("simple-1.1.json"), content_type="application/feed+json"
    )
    config = loopback_config(
        tmp_path,
        [{"url": feed_server.url("/feed.json"), "categories": ["space"]}],
        categories=[{"id": "space", "title": "Space"}],
    )
    if database_url.startswith("postgresql://"):
        config = config.model_copy(
            update={"storage": config.storage.model_copy(update={"url": database_url})}
        )
    opened = await Runtime.open(config, clock=ManualClock(NOW))
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_json_feed_is_fetched_parsed_and_stored_through_the_pipeline(
    runtime: Runtime, feed_server: FeedServer
) -> None:
    report = await runtime.poller.run_round(all_feeds=True)
    assert report is not None
    (outcome,) = report.outcomes
    assert (outcome.status, outcome.new_articles) == ("new", 2)
    latest = await runtime.storage.articles.latest_articles("space", 10)
    assert [a.title for a in latest] == [
        "This is a second item.",
        "First <b>item</b>, in plain text",
    ]
    assert latest[1].source == "My Example Feed"
    assert latest[1].image_url == "https://example.org/pics/one.png"
    (request,) = feed_server.requests("/feed.json")
    assert "application/feed+json" in request.headers["accept"]
    # The same body again is not parsed again.
    report = await runtime.poller.run_round(all_feeds=True)
    assert report is not None and report.outcomes[0].status == "unchanged"
