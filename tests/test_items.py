"""The item scan (bot/items.py): a pure byte scan that finds a feed's raw
items, digests them within their frame, and gives up wherever it could be
wrong. Checked on hand-made bodies and against feedparser on the real corpus."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.items import (
    ItemSplit,
    changed_items,
    items_to_remember,
    reduced_items_to_remember,
    split_items,
)
from bot.parse import parse
from tests.item_edits import add_item_at_top, reorder_and_drop_last, retitle_item
from tests.support import REAL_FEED_FILES

URL = "https://loopback.example/feed.xml"
XML = "application/rss+xml; charset=utf-8"
HEAD = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
TAIL = b"</channel></rss>"


def item(n: int, description: bytes = b"Text") -> bytes:
    return (
        (
            f"<item><title>Story {n}</title><link>https://loopback.example/{n}</link>"
            f'<guid isPermaLink="false">story-{n}</guid><description>'
        ).encode()
        + description
        + b"</description></item>"
    )


def rss(*items: bytes, head: bytes = HEAD, between: bytes = b"\n") -> bytes:
    return head + between.join(items) + TAIL


def split(body: bytes, url: str = URL, content_type: str | None = XML) -> ItemSplit:
    found = split_items(body, url, content_type)
    assert found is not None
    return found


def raw_items(found: ItemSplit) -> list[bytes]:
    return [found.body[start:end] for start, end in found.spans]


# -- finding items ------------------------------------------------------------


def test_each_rss_item_is_found_with_its_exact_bytes() -> None:
    items = [item(1), item(2), item(3)]
    assert raw_items(split(rss(*items))) == items


def test_each_atom_entry_is_found_with_its_exact_bytes() -> None:
    entries = [
        b'<entry xml:lang="en"><id>urn:1</id><title>One</title></entry>',
        b"<entry>\n<id>urn:2</id><title>Two</title></entry >",
    ]
    body = (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
        + b"\n  ".join(entries)
        + b"</feed>"
    )
    assert raw_items(split(body, content_type="application/atom+xml")) == entries


def test_an_item_tag_in_cdata_a_comment_or_an_instruction_is_not_taken_for_an_item() -> None:
    tricky = [
        item(1, b"<![CDATA[<p>an </item> and an <item> in HTML]]>"),
        item(2, b"<!-- </item><item> -->Text"),
        item(3, b"<?php echo '</item>'; ?>Text"),
    ]
    assert raw_items(split(rss(*tricky, head=HEAD + b"<!-- <item> -->"))) == tricky


def test_elements_whose_names_only_begin_like_an_item_are_part_of_it() -> None:
    items = [item(1, b"<itemCount>3</itemCount>"), item(2, b"<entryway>x</entryway>")]
    assert raw_items(split(rss(*items))) == items


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(rss(), XML, id="no items"),
        pytest.param(
            b'{"version": "https://jsonfeed.org/version/1.1", "items": []}', None, id="json"
        ),
        pytest.param(rss(item(1)[:-7], item(2)), XML, id="nested"),
        pytest.param(rss(item(1), item(2)[:-7]), XML, id="unclosed"),
        pytest.param(rss(item(1), b"</item>"), XML, id="closed twice"),
        pytest.param(rss(item(1), b"<item/>"), XML, id="self-closing"),
        pytest.param(rss(item(1), b"<Item><title>x</title></Item>"), XML, id="other case"),
        pytest.param(rss(item(1), b"<rss:item><title>x</title></rss:item>"), XML, id="prefixed"),
        pytest.param(rss(item(1), b"<entry><id>x</id></entry>"), XML, id="both kinds"),
        pytest.param(rss(item(1), item(2), between=b"<ttl>5</ttl>"), XML, id="text between"),
        pytest.param(rss(item(1), item(2), between=b"<!-- ad -->"), XML, id="comment between"),
        pytest.param(
            rss(item(1), head=b'<!DOCTYPE rss [<!ENTITY x "<item>">]>' + HEAD), XML, id="dtd"
        ),
        pytest.param(rss(item(1, b"<![CDATA[never closed")), XML, id="open cdata"),
        pytest.param(rss(item(1)).decode().encode("utf-16"), XML, id="utf-16"),
        pytest.param(
            rss(item(1), head=HEAD.replace(b"utf-8", b"Shift_JIS")), XML, id="declared sjis"
        ),
        pytest.param(rss(item(1)), "application/xml; charset=gb2312", id="gb2312 header"),
    ],
)
def test_the_scan_gives_up_on_a_body_it_could_misread(
    body: bytes, content_type: str | None
) -> None:
    assert split_items(body, URL, content_type) is None


@pytest.mark.parametrize(
    "encoding", ["UTF-8", "us-ascii", "ISO-8859-1", "iso-8859-15", "windows-1251", "latin1"]
)
def test_encodings_where_markup_bytes_are_ascii_are_scanned(encoding: str) -> None:
    body = rss(item(1), item(2), head=HEAD.replace(b"utf-8", encoding.encode()))
    assert len(split(body, content_type="text/xml").spans) == 2


def test_a_doctype_without_an_internal_subset_is_part_of_the_frame() -> None:
    head = b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "x.dtd">'
    assert len(split(rss(item(1), head=head + HEAD)).spans) == 1


# -- digests --------------------------------------------------------------------


def test_an_item_keeps_its_digest_wherever_it_moves_in_the_body() -> None:
    first = split(rss(item(1), item(2), item(3)))
    moved = split(rss(item(4), item(3), item(1)))
    assert moved.digests[2] == first.digests[0]
    assert moved.digests[1] == first.digests[2]
    assert moved.digests[0] not in first.digests


def test_a_changed_item_gets_a_new_digest() -> None:
    first = split(rss(item(1), item(2)))
    corrected = split(rss(item(1), item(2, b"Corrected text")))
    assert corrected.digests[0] == first.digests[0]
    assert corrected.digests[1] != first.digests[1]


@pytest.mark.parametrize(
    "changed",
    [
        lambda: split(rss(item(1), item(2), head=HEAD.replace(b">T<", b">New title<"))),
        lambda: split(rss(item(1), item(2))[: -len(TAIL)] + b"<ttl>5</ttl>" + TAIL),
        lambda: split(rss(item(1), item(2)), url="https://loopback.example/moved.xml"),
        lambda: split(rss(item(1), item(2)), content_type="text/xml; charset=iso-8859-1"),
    ],
    ids=["channel", "trailer", "url", "content type"],
)
def test_anything_outside_the_items_changes_every_digest(changed: object) -> None:
    first = split(rss(item(1), item(2)))
    assert callable(changed)
    assert set(changed().digests).isdisjoint(first.digests)


def test_the_feeds_own_dates_leave_the_digests_alone() -> None:
    """They move with every new item; they never change how an item parses."""
    dated = HEAD + b"<lastBuildDate>Sun, 01 Mar 2026 10:00:00 GMT</lastBuildDate>"
    first = split(rss(item(1), head=dated))
    moved = dated.replace(b"10:00", b"11:00")
    assert split(rss(item(1), head=moved)).digests == first.digests
    # Not when the element has attributes (one could declare a namespace).
    with_attribute = dated.replace(b"<lastBuildDate>", b'<lastBuildDate xml:lang="en">')
    assert split(rss(item(1), head=with_attribute)).digests != first.digests
    # A comment is part of the frame like any other markup.
    assert split(rss(item(1), head=dated + b"<!-- 0.2 s -->")).digests != first.digests


# -- what is parsed, and what is remembered ---------------------------------------


def test_the_reduced_document_is_the_frame_with_only_the_chosen_items() -> None:
    body = rss(item(1), item(2), item(3))
    found = split(body)
    assert found.reduced([0, 2]) == HEAD + item(1) + b"\n" + item(3) + TAIL
    assert found.reduced([]) == HEAD + TAIL
    assert [e.key for e in parse(found.reduced([2]), URL, XML).entries] == ["story-3"]


def test_only_unknown_digests_are_changed_and_none_known_means_parse_it_whole() -> None:
    first = split(rss(item(1), item(2)))
    known = {first.digests[0]: "story-1", first.digests[1]: "story-2"}
    assert changed_items(split(rss(item(3), item(1), item(2))), known) == [0]
    assert changed_items(split(rss(item(2), item(1))), known) == []
    assert changed_items(split(rss(item(3), item(4))), known) is None


def test_a_whole_parse_is_remembered_only_when_each_item_gave_one_entry() -> None:
    found = split(rss(item(1), item(2)))
    assert items_to_remember(found, ["a", "b"], bozo=False) == dict(
        zip(found.digests, ["a", "b"], strict=True)
    )
    assert items_to_remember(found, ["a"], bozo=False) == {}  # a repeated key was dropped
    assert items_to_remember(found, ["a", "b"], bozo=True) == {}


def test_a_reduced_parse_is_trusted_only_when_it_means_what_the_whole_would() -> None:
    first = split(rss(item(1), item(2)))
    known = {first.digests[0]: "story-1", first.digests[1]: "story-2"}
    found = split(rss(item(3), item(1), item(2)))
    assert reduced_items_to_remember(found, [0], known, ["story-3"], bozo=False) == {
        found.digests[0]: "story-3",
        found.digests[1]: "story-1",
        found.digests[2]: "story-2",
    }
    # The new item repeats a key of an item that was cut out: the whole body
    # would keep only the first of the two.
    assert reduced_items_to_remember(found, [0], known, ["story-2"], bozo=False) is None
    assert reduced_items_to_remember(found, [0], known, [], bozo=False) is None
    assert reduced_items_to_remember(found, [0], known, ["story-3"], bozo=True) is None


def _without_cdata_end(text: str) -> str:
    while "]]>" in text:
        text = text.replace("]]>", "")
    return text


_TEXT = st.text(alphabet="ab <>/![]-?itemntry", max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=5))
def test_items_with_any_cdata_text_are_cut_at_their_own_tags(texts: list[str]) -> None:
    items = [item(n, f"<![CDATA[{_without_cdata_end(t)}]]>".encode()) for n, t in enumerate(texts)]
    assert raw_items(split(rss(*items))) == items


# -- against feedparser, on the real corpus ---------------------------------------


@pytest.mark.parametrize("path", REAL_FEED_FILES, ids=lambda p: p.name)
def test_a_reduced_parse_of_a_real_feed_gives_the_entries_of_a_whole_parse(path: Path) -> None:
    """For every feed the scan accepts: a story added at the top, a title
    corrected, items dropped and reordered. The entries parsed from the
    reduced document are those the whole body gives at the same places, and
    the feed's own fields are the same."""
    url, content_type = f"https://loopback.example/{path.name}", "application/xml"
    body = path.read_bytes()
    first_split = split_items(body, url, content_type)
    first = parse(body, url, content_type)
    if first_split is None:
        return  # parsed whole every time
    known = items_to_remember(first_split, [e.key for e in first.entries], first.bozo)
    if not known:
        assert first.bozo or len(first.entries) != len(first_split.spans)
        return
    for edited in (add_item_at_top(body), retitle_item(body, 3), reorder_and_drop_last(body)):
        found = split(edited, url, content_type)
        whole = parse(edited, url, content_type)
        changed = changed_items(found, known)
        assert changed is not None
        reduced = parse(found.reduced(changed), url, content_type)
        keys = [e.key for e in reduced.entries]
        assert reduced_items_to_remember(found, changed, known, keys, reduced.bozo) is not None
        assert list(reduced.entries) == [whole.entries[i] for i in changed]
        assert replace(reduced, entries=()) == replace(whole, entries=())
