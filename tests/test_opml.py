"""OPML: hostile files are refused quickly and in bounded memory, the
subscription lists of common readers import with their categories, and an
export imports back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import CategoryConfig
from bot.opml import (
    MAX_OPML_BYTES,
    MAX_OUTLINES,
    ExportedFeed,
    OpmlDocument,
    OpmlError,
    OpmlFeed,
    export_opml,
    parse_opml,
    plan_import,
    read_opml_file,
)

FIXTURES = Path(__file__).parent / "opml"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CATEGORIES = [
    CategoryConfig(id="tech", title="Tech", aliases=["Technology"]),
    CategoryConfig(id="space", title="Space and Astronomy", aliases=["Space", "Astronomy"]),
    CategoryConfig(id="science", title="Science"),
    CategoryConfig(id="gaming", title="Gaming", aliases=["Games"]),
]


def planned(name: str, default: str | None = None) -> dict[str, tuple[str, ...]]:
    document = parse_opml((FIXTURES / name).read_bytes())
    plan = plan_import(document, CATEGORIES, [], default)
    return {f.url: f.categories for f in plan.new}


def test_a_feedly_export_imports_with_its_folders_as_categories() -> None:
    assert planned("feedly.opml") == {
        "https://www.theverge.com/rss/index.xml": ("tech",),
        "https://feeds.arstechnica.com/arstechnica/index": ("tech",),
        "https://www.nasa.gov/news-release/feed/": ("space",),
    }


def test_an_inoreader_export_takes_the_nearest_folder_that_names_a_category() -> None:
    assert planned("inoreader.opml") == {
        "https://www.universetoday.com/feed/": ("space",),  # Science/Astronomy
        "https://www.nature.com/nature.rss": ("science",),
    }


def test_a_miniflux_export_without_titles_or_types_imports_and_unknown_folders_get_the_default() -> (
    None
):
    document = parse_opml((FIXTURES / "miniflux.opml").read_bytes())
    assert [f.title for f in document.feeds] == ["Rock Paper Shotgun", "Lobsters"]
    assert planned("miniflux.opml", default="tech") == {
        "https://www.rockpapershotgun.com/feed": ("gaming",),
        "https://lobste.rs/rss": ("tech",),  # folder "All" names no category
    }
    plan = plan_import(document, CATEGORIES, [])
    assert plan.unmatched == ("All",)


def test_a_netnewswire_export_with_top_level_feeds_imports() -> None:
    assert planned("netnewswire.opml") == {
        "https://daringfireball.net/feeds/main": (),
        "https://feedpress.me/sixcolors": ("tech",),  # alias "Technology"
    }


def test_an_rss_to_telegram_bot_export_imports_its_flat_list() -> None:
    document = parse_opml((FIXTURES / "rss-to-telegram-bot.opml").read_bytes())
    assert [(f.url, f.title) for f in document.feeds] == [
        ("https://hnrss.org/frontpage", "Hacker News"),
        ("https://feeds.bbci.co.uk/news/science_and_environment/rss.xml", "My custom title"),
    ]


def test_category_attributes_name_categories_most_specific_part_first() -> None:
    assert planned("category-attributes.opml") == {
        "https://space.example/rss": ("space",),
        "https://both.example/rss": ("tech", "gaming"),
        "https://nowhere.example/rss": (),
    }
    document = parse_opml((FIXTURES / "category-attributes.opml").read_bytes())
    assert document.feeds[2].title == "Café"  # ISO-8859-1 declared, decoded


def test_an_export_imports_back_with_every_feed_in_all_its_categories() -> None:
    feeds = [
        ExportedFeed("https://a.example/rss", "A & B <news>", "https://a.example/", ("tech",)),
        ExportedFeed("https://b.example/rss", None, None, ("tech", "space")),
        ExportedFeed("https://c.example/rss", "C", None, ()),
    ]
    data = export_opml(feeds, CATEGORIES, NOW)
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    assert b'type="rss"' in data and b'htmlUrl="https://a.example/"' in data
    document = parse_opml(data)
    assert {(f.url, f.title, f.html_url) for f in document.feeds} == {
        ("https://a.example/rss", "A & B <news>", "https://a.example/"),
        ("https://b.example/rss", "https://b.example/rss", None),
        ("https://c.example/rss", "C", None),
    }
    plan = plan_import(document, CATEGORIES, [])
    assert {f.url: f.categories for f in plan.new} == {f.url: f.categories for f in feeds}


def test_feeds_already_present_are_counted_not_added() -> None:
    document = OpmlDocument(
        (
            OpmlFeed("https://a.example/rss", None, None),
            OpmlFeed("https://b.example/rss", None, None),
        )
    )
    plan = plan_import(document, CATEGORIES, ["https://a.example/rss"])
    assert (plan.total, plan.present, [f.url for f in plan.new]) == (
        2,
        ("https://a.example/rss",),
        ["https://b.example/rss"],
    )


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://a.example/rss"/></body></opml>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&secret;" xmlUrl="https://a.example/rss"/></body></opml>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE opml SYSTEM "http://127.0.0.1:1/evil.dtd">
<opml version="2.0"><body><outline text="x" xmlUrl="https://a.example/rss"/></body></opml>"""


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"]
)
def test_entity_declarations_are_refused(data: bytes) -> None:
    with pytest.raises(OpmlError, match="entities and DTDs are not allowed"):
        parse_opml(data)


def test_an_external_dtd_is_never_fetched() -> None:
    # expat does not load external DTDs; defusedxml refuses them when asked to.
    try:
        document = parse_opml(EXTERNAL_DTD)
    except OpmlError as error:
        assert "not allowed" in str(error)
    else:
        assert [f.url for f in document.feeds] == ["https://a.example/rss"]


def test_too_many_outlines_are_refused() -> None:
    outlines = b'<outline type="rss" xmlUrl="https://a.example/rss"/>' * 100_000
    data = b'<opml version="2.0"><body>' + outlines + b"</body></opml>"
    assert len(data) < MAX_OPML_BYTES
    with pytest.raises(OpmlError, match=f"more than {MAX_OUTLINES} outlines"):
        parse_opml(data)


def test_deep_nesting_is_refused() -> None:
    depth = 100_000
    data = (
        b'<opml version="2.0"><body>'
        + b'<outline text="f">' * depth
        + b"</outline>" * depth
        + b"</body></opml>"
    )
    with pytest.raises(OpmlError, match="nested deeper than"):
        parse_opml(data)


def test_non_http_urls_are_skipped_and_counted() -> None:
    data = b"""<opml version="2.0"><body>
      <outline xmlUrl="file:///etc/passwd"/><outline xmlUrl="javascript:alert(1)"/>
      <outline xmlUrl="gopher://a.example/"/><outline xmlUrl="http://:80/"/>
      <outline xmlUrl="https://ok.example/rss"/></body></opml>"""
    document = parse_opml(data)
    assert ([f.url for f in document.feeds], document.skipped) == (["https://ok.example/rss"], 4)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty document"),
        (b"<html><body>hi</body></html>", "not an OPML document"),
        (b"<opml><body><outline", "not well-formed XML"),
        (b"\xff\xfe\x00garbage", "not well-formed XML"),
        (b"x" * (MAX_OPML_BYTES + 1), "over the"),
    ],
)
def test_what_is_not_opml_fails_with_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(OpmlError, match=message):
        parse_opml(data)


def test_a_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.opml"
    with big.open("wb") as file:
        file.truncate(50 * 1024 * 1024)  # sparse: never in memory at all
    with pytest.raises(OpmlError, match="over the 5242880-byte cap"):
        read_opml_file(big)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_any_bytes_give_a_document_or_an_opml_error(data: bytes) -> None:
    try:
        parse_opml(b'<opml version="2.0"><body>' + data + b"</body></opml>")
        parse_opml(data)
    except OpmlError:
        pass
