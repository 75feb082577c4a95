"""Feed discovery: reading a page's <link rel="alternate"> feeds (pure), then
fetching candidates through the runtime feeds' guard against the loopback
feed server, with public names from a stub resolver only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.categorize import Categorizer
from bot.clock import ManualClock
from bot.config import CategoryConfig
from bot.discover import (
    COMMON_PATHS,
    MAX_HTML_BYTES,
    DiscoveryError,
    common_feed_urls,
    describe_feed,
    feed_links,
    looks_like_html,
)
from bot.feed_admin import FeedAdmin
from bot.parse import parse
from bot.runtime import Runtime
from tests.feed_server import FeedServer
from tests.support import REAL_FEEDS, loopback_config
from tests.test_netguard import PUBLIC_V4, FakeInternet, StubResolver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ARS = "wordpress-news-arstechnica.rss.xml"
VERGE = "atom-theverge.atom.xml"
HTML = "text/html; charset=utf-8"


def page(*links: str, title: str = "A site") -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title>{''.join(links)}</head>"
        "<body><p>Welcome</p></body></html>"
    ).encode()


def test_alternate_links_of_feed_types_are_read_absolute_and_once() -> None:
    html = page(
        '<link rel="stylesheet" href="/style.css">',
        '<link rel="alternate" type="application/rss+xml" title="Posts" href="/feed/">',
        '<LINK REL="Alternate" TYPE="application/atom+xml" HREF="https://other.example/atom">',
        '<link rel="alternate" type="application/feed+json" href="feed.json">',
        '<link rel="alternate" type="text/html" hreflang="de" href="/de/">',
        '<link rel="alternate" type="application/rss+xml" href="/feed/#again">',
        '<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">',
        '<link rel="alternate" type="application/json" href="/wp-json/wp/v2/pages/1">',
    )
    links = feed_links(html, "https://site.example/blog/post")
    assert [(link.url, link.type) for link in links] == [
        ("https://site.example/feed/", "application/rss+xml"),
        ("https://other.example/atom", "application/atom+xml"),
        ("https://site.example/blog/feed.json", "application/feed+json"),
    ]
    assert links[0].title == "Posts"


def test_a_base_element_sets_where_relative_links_point() -> None:
    html = page(
        '<base href="https://cdn.example/x/">',
        '<link rel="alternate" type="application/rss+xml" href="rss.xml">',
    )
    assert [link.url for link in feed_links(html, "https://site.example/")] == [
        "https://cdn.example/x/rss.xml"
    ]


def test_only_the_first_part_of_a_huge_page_is_read() -> None:
    filler = b"<!-- " + b"x" * MAX_HTML_BYTES + b" -->"
    html = (
        b"<html><head>"
        + filler
        + b'<link rel="alternate" type="application/rss+xml" href="/late.xml"></head></html>'
    )
    assert feed_links(html, "https://site.example/") == []


def test_broken_markup_gives_what_could_be_read() -> None:
    html = b'<html><head><link rel="alternate" type="application/rss+xml" href="/a.xml"><![if'
    assert [link.url for link in feed_links(html, "https://s.example/")] == [
        "https://s.example/a.xml"
    ]


def test_the_usual_paths_are_tried_at_the_root_of_the_site() -> None:
    urls = common_feed_urls("https://site.example:8443/blog/post?id=1#top")
    assert urls == [f"https://site.example:8443{path}" for path in COMMON_PATHS]


def test_html_is_told_apart_from_feeds() -> None:
    assert looks_like_html(b"<rss/>", "text/html")
    assert looks_like_html(b"  <!DOCTYPE html><html>", None)
    assert not looks_like_html((REAL_FEEDS / ARS).read_bytes(), "application/rss+xml")


def test_a_found_feed_shows_its_newest_headlines_and_the_categories_its_tags_map_to() -> None:
    body = (REAL_FEEDS / ARS).read_bytes()
    parsed = parse(body, "https://arstechnica.example/feed")
    categorizer = Categorizer(
        [
            CategoryConfig(id="science", title="Science"),
            CategoryConfig(id="space", title="Outer space", aliases=["Space"]),
            CategoryConfig(id="cooking", title="Cooking"),
        ]
    )
    found = describe_feed("https://arstechnica.example/feed", parsed, categorizer)
    assert found.title == "Ars Technica"
    assert found.items == 20
    newest = sorted(
        (e for e in parsed.entries if e.published), key=lambda e: e.published, reverse=True
    )[:3]
    assert found.newest == tuple(e.title for e in newest)
    # Science tags 4 entries, Space 3: most used first; no Cooking tag at all.
    assert found.suggested_categories == ("science", "space")


# -- through the guard, on loopback ------------------------------------------


@pytest.fixture
async def admin(tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[FeedAdmin]:
    config = loopback_config(
        tmp_path,
        [],
        categories=[{"id": "science", "title": "Science"}, {"id": "space", "title": "Space"}],
    )
    resolver = StubResolver(
        {"site.example": [PUBLIC_V4], "feeds.example": [PUBLIC_V4], "inside.example": ["10.0.0.7"]}
    )
    runtime = await Runtime.open(
        config, clock=ManualClock(NOW), network=FakeInternet().network, resolver=resolver
    )
    try:
        yield FeedAdmin.for_runtime(runtime)
    finally:
        await runtime.close()


def public(feed_server: FeedServer, path: str, host: str = "site.example") -> str:
    port = feed_server.url("/").split(":")[2].rstrip("/")
    return f"http://{host}:{port}{path}"


async def test_a_page_naming_two_real_feeds_offers_both_with_their_titles(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve_file("/ars.xml", REAL_FEEDS / ARS)
    feed_server.serve_file("/verge.atom", REAL_FEEDS / VERGE, content_type="application/atom+xml")
    feed_server.serve(
        "/",
        page(
            '<link rel="alternate" type="application/rss+xml" href="/ars.xml">',
            f'<link rel="alternate" type="application/atom+xml" '
            f'href="{public(feed_server, "/verge.atom", "feeds.example")}">',
        ),
        content_type=HTML,
    )
    discovery = await admin.discover(public(feed_server, "/"))
    assert [(f.url, f.title, f.items) for f in discovery.found] == [
        (public(feed_server, "/ars.xml"), "Ars Technica", 20),
        (public(feed_server, "/verge.atom", "feeds.example"), "The Verge - All Posts", 10),
    ]
    assert discovery.found[0].suggested_categories == ("science", "space")
    assert discovery.listed == {}


async def test_a_site_without_links_is_found_at_its_feed_path(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve_file("/feed", REAL_FEEDS / ARS)
    feed_server.serve("/about", page(), content_type=HTML)
    discovery = await admin.discover(public(feed_server, "/about"))
    assert [f.url for f in discovery.found] == [public(feed_server, "/feed")]


async def test_a_feed_url_is_its_own_discovery_and_known_feeds_say_they_are_listed(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve_file("/ars.xml", REAL_FEEDS / ARS)
    url = public(feed_server, "/ars.xml")
    added = await admin.add(url, ["space"])
    discovery = await admin.discover(url)
    assert [f.url for f in discovery.found] == [url]
    assert discovery.listed[url].id == added.feed.id
    assert feed_server.hits("/") == 0


async def test_a_page_whose_feed_links_point_inside_is_refused_without_fetching_them(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve_file("/secret.xml", REAL_FEEDS / ARS)
    feed_server.serve(
        "/",
        page(
            f'<link rel="alternate" type="application/rss+xml" '
            f'href="{public(feed_server, "/secret.xml", "inside.example")}">',
            f'<link rel="alternate" type="application/rss+xml" '
            f'href="{feed_server.url("/secret.xml")}">',
            '<link rel="alternate" type="application/rss+xml" '
            'href="http://169.254.169.254/latest/meta-data/">',
        ),
        content_type=HTML,
    )
    with pytest.raises(DiscoveryError) as raised:
        await admin.discover(public(feed_server, "/"))
    message = str(raised.value)
    assert "no feed found" in message
    assert "inside.example is 10.0.0.7, a private or reserved address" in message
    assert "a loopback address" in message and "a cloud metadata address" in message
    assert feed_server.hits("/secret.xml") == 0


async def test_a_page_on_a_private_address_is_refused_before_any_fetch(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve("/", page(), content_type=HTML)
    with pytest.raises(DiscoveryError, match=r"refused: inside\.example is 10\.0\.0\.7"):
        await admin.discover(public(feed_server, "/", "inside.example"))
    assert feed_server.hits("/") == 0


async def test_a_page_with_no_feed_anywhere_says_what_was_looked_for(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    feed_server.serve("/", page(), content_type=HTML)
    with pytest.raises(DiscoveryError, match=r"no feed found at .*/feed, /rss"):
        await admin.discover(public(feed_server, "/"))
    assert all(feed_server.hits(path) == 1 for path in COMMON_PATHS)


async def test_discovery_as_a_whole_gives_up_after_its_deadline(
    admin: FeedAdmin, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from bot import feed_admin

    never = threading.Event()
    route = feed_server.serve("/slow", page(), content_type=HTML)
    route.gate = never
    monkeypatch.setattr(feed_admin, "DISCOVERY_SECONDS", 0.2)
    try:
        with pytest.raises(DiscoveryError, match=r"took longer than 0\.2 s"):
            await admin.discover(public(feed_server, "/slow"))
    finally:
        never.set()


async def test_a_json_feed_named_by_a_page_is_found_and_its_tags_suggest_categories(
    admin: FeedAdmin, feed_server: FeedServer
) -> None:
    sample = Path(__file__).parent / "jsonfeed" / "simple-1.1.json"
    feed_server.serve_file("/feed.json", sample, content_type="application/feed+json")
    feed_server.serve(
        "/",
        page('<link rel="alternate" type="application/feed+json" href="/feed.json">'),
        content_type=HTML,
    )
    (found,) = (await admin.discover(public(feed_server, "/"))).found
    assert (found.url, found.title, found.items) == (
        public(feed_server, "/feed.json"),
        "My Example Feed",
        2,
    )
    assert found.suggested_categories == ("space",)
