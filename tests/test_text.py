"""Pure text helpers: HTML to plain text, word cuts, URL clean-up."""

from __future__ import annotations

import re

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.text import (
    absolute_http_url,
    canonical_url,
    collapse_whitespace,
    cut_at_word,
    first_image,
    html_to_text,
    strip_plugin_footer,
)
from tests.support import REAL_FEED_FILES

_TAG_START = re.compile(r"<[a-zA-Z/!?]")

# HTML-ish soup: tags, attributes, comments, entities and text in any order,
# unbalanced and cut anywhere.
_html_pieces = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<br/>",
        "<b>",
        "</b",
        '<a href="https://x.org/?a=1&b=2">',
        "</a>",
        '<img src="/i.png" width="1">',
        '<img src="https://cdn.example/p.jpg">',
        "<script>alert(1)</script>",
        "<style>p{}</style>",
        "<!-- note -->",
        "<!--",
        "<![CDATA[x]]>",
        "<!DOCTYPE html>",
        "<?xml?>",
        "<div class='x'",
        "<",
        ">",
        "&",
        "&amp;",
        "&amp;amp;",
        "&lt;",
        "&#169;",
        "&nbsp;",
        "&bogus;",
        " ",
        "\n\t",
        "\x00",
        "\u200b",
        "word",
        "Café",
        "日本語",
        "🍏",
    ]
)
html_soup = st.lists(st.one_of(_html_pieces, st.text(max_size=8)), max_size=30).map("".join)


@settings(deadline=None)
@given(st.text())
def test_html_to_text_never_raises_on_any_text(fragment: str) -> None:
    text, image = html_to_text(fragment)
    assert text == collapse_whitespace(text)
    assert image is None or image.strip()


@settings(deadline=None)
@given(html_soup)
def test_html_to_text_never_raises_on_html_soup(fragment: str) -> None:
    text, _ = html_to_text(fragment)
    assert text == text.strip()
    assert "  " not in text
    assert "\x00" not in text and "\u200b" not in text


@settings(deadline=None)
@given(st.lists(st.one_of(_html_pieces, st.text(max_size=8)), max_size=30))
def test_html_to_text_leaves_no_tag_when_nothing_was_escaped(pieces: list[str]) -> None:
    # Only an escaped "&lt;" may legitimately produce "<tag"-looking text.
    fragment = "".join(pieces).replace("&", " ")
    text, _ = html_to_text(fragment)
    assert not _TAG_START.search(text), (fragment, text)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>Hello <b>world</b></p><p>again</p>", "Hello world again"),
        ("Fish &amp; chips &#8211; &quot;tasty&quot;", 'Fish & chips – "tasty"'),
        ("Attack &amp;amp; Defense", "Attack & Defense"),  # escaped twice by the publisher
        ("a<br>b<br/>c", "a b c"),
        ("<script>var x = '<b>';</script>Text<style>p {}</style>", "Text"),
        ("  lots\n\n of\t\tspace  ", "lots of space"),
        ("Read more <a hre", "Read more"),  # truncated mid-tag
        ("<p>cut</p", "cut"),
        ("before <!-- unterminated comment", "before"),
        ("<a\x00 href='x'>link</a>", "link"),
        ("1 &lt; 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ("IRC: &lt;nick&gt; hi", "IRC: <nick> hi"),  # text that only looks like a tag
        ("", ""),
    ],
)
def test_html_to_text_examples(fragment: str, expected: str) -> None:
    assert html_to_text(fragment)[0] == expected


def test_html_to_text_returns_the_first_real_image() -> None:
    fragment = (
        '<img src="https://t.co/pixel.gif" width="1" height="1">'
        '<img src="data:image/png;base64,AAAA">'
        '<p><img src="https://cdn.example/photo.jpg" alt=""></p>'
        '<img src="https://cdn.example/second.jpg">'
    )
    assert html_to_text(fragment) == ("", "https://cdn.example/photo.jpg")


# Pieces around images: tags cut anywhere, quotes holding ">", upper case,
# images inside what is no markup (comments, scripts) and markup after them.
_image_pieces = st.sampled_from(
    [
        '<img src="https://cdn.example/a.jpg">',
        "<IMG SRC='https://cdn.example/b.png'/>",
        '<img alt="x > y" src="https://cdn.example/c.gif">',
        '<img src="https://t.co/pixel.gif" width="1">',
        '<img src="data:image/png;base64,AAAA">',
        "<img src=",
        '"https://cdn.example/d.jpg"',
        "<img",
        "<imgx src='https://cdn.example/e.jpg'>",
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<![if x]>",
        "<![bogus[",
        "<!x",
        "<textarea>",
        "</textarea>",
    ]
)
image_soup = st.lists(st.one_of(_html_pieces, _image_pieces, st.text(max_size=6)), max_size=30).map(
    "".join
)


@settings(deadline=None, max_examples=500)
@given(image_soup)
def test_the_first_image_is_the_one_reading_the_whole_markup_finds(fragment: str) -> None:
    assert first_image(fragment) == html_to_text(fragment)[1]


def test_the_first_image_of_every_real_entry_is_the_one_reading_it_whole_finds() -> None:
    fragments = [
        value
        for path in REAL_FEED_FILES
        for raw in feedparser.parse(path.read_bytes()).entries
        for value in [raw.get("summary"), *(c.get("value") for c in raw.get("content") or ())]
        if value
    ]
    assert sum(1 for f in fragments if html_to_text(f)[1]) > 100  # the corpus has images
    assert [first_image(f) for f in fragments] == [html_to_text(f)[1] for f in fragments]


def test_the_first_image_is_read_past_images_too_small_to_show() -> None:
    fragment = (
        '<p>Intro</p><img src="https://t.co/pixel.gif" height="0">'
        '<!-- <img src="https://cdn.example/commented.jpg"> -->'
        '<script>var a = "<img src=https://cdn.example/script.jpg>";</script>'
        '<img alt="a > b" src="https://cdn.example/photo.jpg"><img src="https://cdn.example/2.jpg">'
    )
    assert first_image(fragment) == "https://cdn.example/photo.jpg"
    assert first_image("<p>no picture</p>") is None
    assert first_image(None) is None


def test_html_to_text_of_none_is_empty() -> None:
    assert html_to_text(None) == ("", None)


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_cut_at_word_never_exceeds_the_limit(text: str, limit: int) -> None:
    assert len(cut_at_word(text, limit)) <= limit


@given(st.text(max_size=400), st.integers(min_value=2, max_value=300))
def test_cut_at_word_keeps_short_text_and_marks_cuts(text: str, limit: int) -> None:
    cut = cut_at_word(text, limit)
    if len(text) <= limit:
        assert cut == text
    else:
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("The quick brown fox jumps", 16, "The quick brown…"),
        ("The quick brown fox", 19, "The quick brown fox"),
        ("Supercalifragilisticexpialidocious", 10, "Supercali…"),  # one huge word
        ("Stop here, then go on", 12, "Stop here…"),  # no dangling comma
        ("abc", 1, "a"),
    ],
)
def test_cut_at_word_examples(text: str, limit: int, expected: str) -> None:
    assert cut_at_word(text, limit) == expected


@pytest.mark.parametrize(
    ("candidate", "base", "expected"),
    [
        ("/a/b?c=1", "https://example.com/feed", "https://example.com/a/b?c=1"),
        ("https://other.org/x", "https://example.com/", "https://other.org/x"),
        ("  https://example.com/x  ", None, "https://example.com/x"),
        ("https://example.com/a b", None, "https://example.com/a%20b"),
        ("javascript:alert(1)", None, None),
        ("mailto:someone@example.com", None, None),
        ("ftp://example.com/file", None, None),
        ("relative/only", None, None),
        ("http://", None, None),
        ("http://[::1", None, None),
        ("", "https://example.com/", None),
        (None, "https://example.com/", None),
    ],
)
def test_absolute_http_url(candidate: str | None, base: str | None, expected: str | None) -> None:
    assert absolute_http_url(candidate, base) == expected


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=50)))
def test_absolute_http_url_never_raises_and_only_returns_http(
    candidate: str, base: str | None
) -> None:
    url = absolute_http_url(candidate, base)
    assert url is None or url.lower().startswith(("http://", "https://"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM:443/Path", "https://example.com/Path"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x", "http://example.com:8080/x"),
        (
            "https://example.com/a?utm_source=rss&id=7&fbclid=abc",
            "https://example.com/a?id=7",
        ),
        ("https://example.com/a?id=7#ref=rss", "https://example.com/a?id=7"),
        (
            "http://scripting.com/2017/06/26.html#a080605",
            "http://scripting.com/2017/06/26.html#a080605",
        ),
        ("https://user:pw@Example.com/x#frag", "https://user:pw@Example.com/x#frag"),
        ("http://[::1", "http://[::1"),  # unparseable: left alone
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@given(st.text(max_size=100))
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


# -- feed plugins' footers -------------------------------------------------------

_YOAST = (
    '<p>The post <a rel="nofollow" href="https://blog.example/p/1">Rover lands</a> '
    'appeared first on <a rel="nofollow" href="https://blog.example">Space Blog</a>.</p>\n'
)
_RSS_FOOTER = (
    '<p><a href="https://blog.example/p/1">Rover lands</a> is a post from: '
    '<a href="https://blog.example">Space Blog</a></p>'
)


@pytest.mark.parametrize(
    "footer",
    [
        _YOAST,
        _YOAST.replace("appeared first on", "first appeared on"),
        _RSS_FOOTER,
        _RSS_FOOTER.replace("<p>", "").replace("</p>", "").replace(": ", " "),
    ],
    ids=["yoast", "first-appeared", "rss-footer", "rss-footer-bare"],
)
def test_wordpress_plugin_footers_are_dropped_from_summaries(footer: str) -> None:
    fragment = "<p>The rover touched down on Tuesday.</p>" + footer
    assert html_to_text(strip_plugin_footer(fragment))[0] == "The rover touched down on Tuesday."


@pytest.mark.parametrize(
    "fragment",
    [
        # The words as prose, without the plugins' links.
        "<p>The post office appeared first on the list of closures.</p>",
        "Her essay is a post from the archive, reprinted.",
        # The plugin's shape, but not at the end: the text after it stays.
        _YOAST + "<p>More to come.</p>",
        # A link in prose that happens to end the same way.
        '<p>The post-war <a href="https://x.example">boom</a> appeared first on the coast.</p>',
    ],
    ids=["prose", "prose-post-from", "not-at-the-end", "one-link"],
)
def test_text_that_merely_uses_the_footer_words_is_kept(fragment: str) -> None:
    assert strip_plugin_footer(fragment) == fragment
