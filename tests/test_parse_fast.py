"""The fast RSS path (bot.parse_fast) gives the articles feedparser gives.

Every real feed of the corpus is parsed twice through ``bot.parse.parse``:
once as it runs (the fast path where it applies), once with the fast path
switched off (feedparser for everything). The results must be equal, field
for field (key, url, title, summary, author, published, image, tags, the
feed's title, site, version, ttl and its malformed flag), under the content
types servers send. No difference is allowed: none was found, so none is
documented.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import bot.parse
from bench.feedgen import FeedSet
from bot.errors import ParseError
from bot.parse import parse
from bot.parse_fast import fast_parse
from bot.parsed import ParsedFeed
from tests.support import REAL_FEED_FILES

CONTENT_TYPES = [None, "application/rss+xml; charset=utf-8", "text/xml"]
FEED_URL = "https://feeds.example.com/feed.xml"


def _parse_or_error(body: bytes, content_type: str | None) -> ParsedFeed | str:
    try:
        return parse(body, FEED_URL, content_type)
    except ParseError as error:
        return f"ParseError: {error}"


def _feedparser_only(
    monkeypatch: pytest.MonkeyPatch, body: bytes, content_type: str | None
) -> ParsedFeed | str:
    with monkeypatch.context() as patch:
        patch.setattr(bot.parse, "fast_parse", lambda *_: None)
        return _parse_or_error(body, content_type)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("path", REAL_FEED_FILES, ids=lambda p: p.name)
def test_the_fast_path_gives_feedparsers_articles_for_every_real_feed(
    path: Path, content_type: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = path.read_bytes()
    assert _parse_or_error(body, content_type) == _feedparser_only(monkeypatch, body, content_type)


def test_the_fast_path_takes_the_plain_rss_feeds_of_the_corpus() -> None:
    taken = {
        path.name
        for path in REAL_FEED_FILES
        if fast_parse(path.read_bytes(), FEED_URL, "application/rss+xml; charset=utf-8")
    }
    # WordPress, news sites with Media RSS, Substack, Ghost: the common shapes.
    for name in (
        "wordpress-news-arstechnica.rss.xml",
        "wordpress-blog-hubspot-large.rss.xml",
        "rss-mediarss-guardian-frontpage.rss.xml",
        "rss-news-nytimes-topstories.rss.xml",
        "rss-substack-interconnects.rss.xml",
        "ghost-blog-itsfoss.rss.xml",
        "rss-news-ctvnews-bom.rss.xml",
    ):
        assert name in taken
    # What feedparser must keep: other encodings, malformed XML, Atom, RDF,
    # xml:base, podcasts' iTunes elements.
    for name in (
        "rss-windows1251-ibash.rss.xml",
        "malformed-guardian-world-unescaped-ampersand.rss.xml",
        "atom-theverge.atom.xml",
        "rdf-slashdot-iso8859-1.rdf.xml",
        "rss-news-nasa-breaking-2018.rss.xml",
        "podcast-atp-100items.rss.xml",
    ):
        assert name not in taken
    assert len(taken) >= 20


def test_the_fast_path_reads_the_benchmarks_feeds_as_feedparser_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feeds = FeedSet(3, [f"https://bench{n}.example/feed" for n in range(3)])
    content_type = "application/rss+xml; charset=UTF-8"
    for body in feeds.bodies:
        assert fast_parse(body, FEED_URL, content_type) is not None
        assert _parse_or_error(body, content_type) == _feedparser_only(
            monkeypatch, body, content_type
        )


BILLION_LAUGHS = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rss [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<rss version="2.0"><channel><title>t</title>
<item><title>&c;</title><link>https://example.com/a</link></item>
</channel></rss>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title>
<item><title>&secret;</title><link>https://example.com/a</link></item>
</channel></rss>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["internal", "external"])
def test_the_fast_path_never_expands_entities(body: bytes) -> None:
    assert fast_parse(body, FEED_URL, "application/rss+xml") is None
    parsed = _parse_or_error(body, "application/rss+xml")
    if isinstance(parsed, ParsedFeed):
        for entry in parsed.entries:
            assert "root:" not in entry.title
            assert len(entry.title) < 1000


def test_a_document_declaring_an_external_dtd_is_read_without_fetching_it() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?>\n'
        b'<!DOCTYPE rss SYSTEM "http://192.0.2.1/rss.dtd">\n'
        b'<rss version="2.0"><channel><title>Site</title><link>https://example.com/</link>'
        b"<item><title>One</title><link>https://example.com/1</link></item>"
        b"</channel></rss>"
    )
    data = fast_parse(body, FEED_URL, "application/rss+xml")
    assert data is not None
    assert [e["title"] for e in data["entries"]] == ["One"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/rss+xml; charset=windows-1251", None),
        ("text/html", None),
        (None, b'<?xml version="1.0"?>\n<rss version="2.0"><channel></channel></rss>'),
        (None, b'<?xml version="1.0" encoding="ISO-8859-1"?><rss version="2.0"></rss>'),
        ("application/xml", b'<rss version="0.91"><channel></channel></rss>'),
        ("application/xml", b'<rss version="2.0" xml:base="https://x.example/"><channel/></rss>'),
    ],
)
def test_what_the_fast_path_leaves_to_feedparser(
    content_type: str | None, body: bytes | None
) -> None:
    plain = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel></channel></rss>'
    assert fast_parse(body or plain, FEED_URL, content_type) is None


def test_the_fast_path_keeps_the_websub_hub_and_self_links(monkeypatch: pytest.MonkeyPatch) -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        b"<title>Pushed</title><link>https://news.example/</link>"
        b'<atom:link rel="hub" href="https://hub.example/"/>'
        b'<atom:link rel="self" type="application/rss+xml" href="https://news.example/feed"/>'
        b"<item><title>One</title><link>https://news.example/1</link><guid>1</guid></item>"
        b"</channel></rss>"
    )
    assert fast_parse(body, FEED_URL, "application/rss+xml") is not None
    fast = parse(body, FEED_URL, "application/rss+xml")
    assert fast.hubs == ("https://hub.example/",)
    assert fast.self_url == "https://news.example/feed"
    assert fast == _feedparser_only(monkeypatch, body, "application/rss+xml")
