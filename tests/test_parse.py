"""The parse stage against the real-world corpus: every feed parses, every
entry is clean, and each family's quirk gives the expected values."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.errors import ParseError
from bot.parse import parse
from bot.parsed import ParsedFeed
from tests.support import (
    REAL_FEED_FILES,
    REAL_FEEDS,
    is_absolute_http_url,
    is_aware,
    markup_problems,
)

BASE = "https://feeds.example.org/"


@cache
def parsed(name: str, content_type: str | None = "application/xml") -> ParsedFeed:
    return parse((REAL_FEEDS / name).read_bytes(), BASE + name, content_type)


@pytest.mark.parametrize("path", REAL_FEED_FILES, ids=lambda p: p.name)
def test_every_real_feed_parses_into_clean_entries(path: Path) -> None:
    source = path.read_bytes()
    feed = parsed(path.name)
    assert feed.version != "unknown" or feed.bozo
    assert feed.entries
    keys = [e.key for e in feed.entries]
    assert len(keys) == len(set(keys))
    for entry in feed.entries:
        assert entry.key
        assert entry.title.strip(), entry
        assert is_absolute_http_url(entry.url), entry.url
        assert not markup_problems(entry.title, source), (entry.title, source[:0])
        assert not markup_problems(entry.summary, source), entry.summary
        assert entry.title == entry.title.strip()
        assert "\n" not in entry.title
        if entry.published is not None:
            assert is_aware(entry.published)
        if entry.image_url is not None:
            assert is_absolute_http_url(entry.image_url), entry.image_url


def test_wordpress_item_keeps_its_categories_and_image() -> None:
    feed = parsed("wordpress-news-arstechnica.rss.xml")
    assert feed.version == "rss20"
    assert len(feed.entries) == 20
    entry = feed.entries[1]
    assert entry.key == "https://arstechnica.com/?p=1988382"
    assert entry.title == (
        "Judge: Amazon \u201ccannot claim shock\u201d that bathroom spycams were used as advertised"
    )
    assert entry.tags == (
        "Policy",
        "Amazon",
        "bathroom spy cam",
        "hidden camera",
        "privacy",
        "product safety",
        "spy cam",
        "spy camera",
    )
    assert entry.image_url == (
        "https://cdn.arstechnica.net/wp-content/uploads/2023/12/GettyImages-1417525587-800x533.jpg"
    )
    assert entry.author == "Ashley Belanger"
    assert entry.published == datetime(2023, 12, 4, 20, 16, 55, tzinfo=UTC)


def test_wordpress_media_content_image_is_used_and_guid_is_the_key() -> None:
    # TechCrunch starts with a blank line before the XML declaration: bozo,
    # but every item is salvaged.
    feed = parsed("wordpress-news-techcrunch.rss.xml")
    assert len(feed.entries) == 20
    entry = feed.entries[0]
    assert entry.key == "http://techcrunch.com/?p=446154"
    assert entry.url == "http://feedproxy.google.com/~r/Techcrunch/~3/kTeeGj4FnwU/"
    assert entry.tags[0] == "TC"
    assert entry.image_url == (
        "http://tctechcrunch2011.files.wordpress.com/2011/11/angies-list.jpeg?w=150"
    )
    assert all(e.tags for e in feed.entries)


def test_windows_1251_titles_decode_to_cyrillic() -> None:
    feed = parsed("rss-windows1251-news-oren.rss.xml")
    assert feed.title == "Новости Оренбурга и области / Раздел Новости"
    assert feed.entries[0].title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"
    assert feed.entries[1].title == "ЧОПовцы в Оренбурге избили молодого человека"
    # No guid: the link is the key. An image enclosure becomes the picture.
    assert feed.entries[0].key == "http://www.oren.ru/news/2743422/"
    assert (
        feed.entries[0].image_url == "http://www.oren.ru/upload/iblock/be8/stroitelstvo_krany.jpg"
    )
    assert feed.ttl_seconds == 1800


def test_gb2312_titles_decode_to_chinese() -> None:
    feed = parsed("rss-gb2312-chinese-forum.rss.xml")
    assert len(feed.entries) == 20
    assert feed.entries[0].title == "建国35周年纪念，华表，和平鸽"
    assert feed.entries[1].title == "出南京泰山5盒，原盒看图"
    assert feed.entries[0].author == "大鱼儿"


def test_slash_separated_dates_are_read_as_year_month_day() -> None:
    # pubDate "2020/1/10 14:33:00": feedparser alone reads every such date
    # as 2020-11-01 00:00.
    feed = parsed("rss-gb2312-chinese-forum.rss.xml")
    assert feed.entries[0].published == datetime(2020, 1, 10, 14, 33, tzinfo=UTC)
    assert feed.entries[1].published == datetime(2020, 1, 10, 14, 28, tzinfo=UTC)


def test_iso_8859_1_keeps_german_umlauts() -> None:
    feed = parsed("rss-iso8859-1-golem.rss.xml")
    titles = [e.title for e in feed.entries]
    assert "Wochenrückblick: Wilder Westen, buntes Handy, nutzloses Siegel" in titles
    assert "Machine Learning: Von KI erstelltes Porträt für 432.500 US.Dollar versteigert" in titles
    assert feed.entries[0].summary.startswith("Viele Spieler wünschen sich eine PC-Version")


def test_iso_8859_1_without_declaration_is_sniffed() -> None:
    feed = parsed("malformed-undeclared-latin1-uol.rss.xml")
    assert feed.bozo
    assert len(feed.entries) == 15
    text = " ".join(e.title + e.summary for e in feed.entries)
    assert "\ufffd" not in text
    assert any(ch in text for ch in "ãçéõá")


def test_double_escaped_title_entities_are_decoded_once_more() -> None:
    # SB Nation/Vox feeds write "&amp;amp;" inside type="html" titles.
    feed = parsed("atom-html-entities-title-sbnation.atom.xml")
    assert feed.title == "Attack & Defense"
    titles = [e.title for e in feed.entries]
    assert titles[1] == "Firefox Security & Privacy Newsletter 2025 Q4"
    assert "Firefox Security & Privacy newsletter 2025 Q2" in titles


def test_rdf_feed_parses_with_tracking_parameters_removed_from_urls() -> None:
    feed = parsed("rdf-slashdot-iso8859-1.rdf.xml")
    assert feed.version == "rss10"
    assert len(feed.entries) == 15
    entry = feed.entries[0]
    assert (
        entry.title == "Ransomware Attack Hampers Prescription Drug Sales at 90% of US Pharmacies"
    )
    assert entry.url == (
        "https://yro.slashdot.org/story/24/03/02/071229/"
        "ransomware-attack-hampers-prescription-drug-sales-at-90-of-us-pharmacies"
    )
    assert entry.published is not None and is_aware(entry.published)


def test_rss_090_without_dates_or_guids() -> None:
    feed = parsed("rdf-heise-rss090-nodates.rdf.xml")
    assert feed.version == "rss090"
    assert len(feed.entries) == 60
    assert all(e.published is None for e in feed.entries)


def test_atom_feed_takes_title_author_date_and_first_content_image() -> None:
    feed = parsed("atom-theverge.atom.xml")
    assert feed.version == "atom10"
    assert feed.site_url == "https://www.theverge.com/"
    assert len(feed.entries) == 10
    entry = feed.entries[0]
    assert (
        entry.key
        == "https://www.theverge.com/2023/12/10/23995954/qr-code-scam-ftc-warning-phishing"
    )
    assert entry.url == entry.key
    assert entry.title == "Be skeptical about QR codes, warns the FTC"
    assert entry.author == "Wes Davis"
    assert entry.published == datetime(2023, 12, 10, 23, 11, 41, tzinfo=UTC)
    assert entry.image_url is not None
    assert entry.image_url.startswith("https://cdn.vox-cdn.com/thumbor/")
    assert all(e.image_url for e in feed.entries)


def test_podcast_audio_enclosure_is_not_taken_for_an_image() -> None:
    feed = parsed("podcast-atp-100items.rss.xml")
    assert len(feed.entries) == 100
    first = feed.entries[0]
    assert first.title == "311: Mutually Assured Destruction"
    assert first.url == "http://atp.fm/episodes/311"
    assert all(e.image_url is None for e in feed.entries)


def test_large_podcast_feed_parses_every_episode() -> None:
    assert len(parsed("podcast-giantbomb-730items.rss.xml").entries) == 730


def test_malformed_feed_still_yields_its_entries() -> None:
    # Raw "&" in media:content URLs: not well-formed XML, salvaged by feedparser.
    feed = parsed("malformed-guardian-world-unescaped-ampersand.rss.xml")
    assert feed.bozo
    assert len(feed.entries) == 54
    assert (
        feed.entries[0].title
        == "Saudi foreign minister defends role in securing Ukraine prisoner swaps"
    )


def test_items_without_title_take_the_start_of_their_text() -> None:
    feed = parsed("rss-scriptingnews-untitled-items.rss.xml")
    # 50 items, two of them repeat an earlier GUID: the first occurrence wins.
    assert len(feed.entries) == 48
    first = feed.entries[0]
    assert first.title == "Good morning students and teachers! 🍏"
    long_one = feed.entries[2]
    assert long_one.title.endswith("…")
    assert len(long_one.title) <= 80
    assert long_one.summary.startswith(long_one.title[:-1])


def test_anchor_fragments_that_name_posts_are_kept_in_urls() -> None:
    # Scripting News posts are anchors on one page per day; dropping the
    # fragment would make every post of a day look like one article.
    feed = parsed("rss-scriptingnews-untitled-items.rss.xml")
    assert feed.entries[0].url == "http://scripting.com/2017/06/26.html#a080605"
    assert len({e.url for e in feed.entries}) == 48


def test_tracking_fragments_are_dropped_from_urls() -> None:
    feed = parsed("rss-news-spiegel-de.rss.xml")
    assert all("#" not in e.url for e in feed.entries)


def test_items_without_guid_use_their_link_as_key() -> None:
    feed = parsed("rss-news-aktuality-sk-noguid.rss.xml")
    assert len(feed.entries) == 30
    entry = feed.entries[0]
    assert entry.key == (
        "https://www.aktuality.sk/clanok/856577/analytici-goldman-sachs-zvysili-odhad-rastu-ekonomiky-usa/"
    )
    assert all(e.key == e.url for e in feed.entries)


def test_items_without_dates_have_no_published_time() -> None:
    feed = parsed("rss-news-japantimes-nodates-118items.rss.xml")
    assert len(feed.entries) == 118
    assert all(e.published is None for e in feed.entries)


def test_media_thumbnail_becomes_the_image() -> None:
    feed = parsed("rss-news-bbc-urdu-rtl.rss.xml")
    assert len(feed.entries) == 26
    assert feed.entries[0].image_url == (
        "http://c.files.bbci.co.uk/A787/production/_99478824_gettyimages-856735580.jpg"
    )
    assert all(e.image_url for e in feed.entries)
    assert feed.entries[0].title.startswith("امریکی عسکری امداد")


def test_image_enclosure_becomes_the_image() -> None:
    feed = parsed("rss-news-nasa-breaking-2018.rss.xml")
    assert len(feed.entries) == 10
    assert feed.entries[0].image_url == (
        "http://www.nasa.gov/sites/default/files/styles/1x1_cardfeed/public/thumbnails/"
        "image/pia18922_1.jpg?itok=6lkGO-xB"
    )
    assert all(e.image_url for e in feed.entries)
    # "Tue, 04 Sep 2018 18:48 EDT": no seconds, a zone name.
    assert feed.entries[0].published == datetime(2018, 9, 4, 22, 48, tzinfo=UTC)


def test_utf8_bom_before_the_declaration_is_accepted() -> None:
    feed = parsed("rss-news-ctvnews-bom.rss.xml")
    assert len(feed.entries) == 10
    assert not feed.title.startswith("\ufeff")


@pytest.mark.parametrize(
    "content_type",
    [None, "text/xml", "text/xml; charset=utf-8", "text/html; charset=UTF-8", "text/plain"],
)
def test_a_wrong_or_missing_charset_header_does_not_garble_text(content_type: str | None) -> None:
    # Servers often send no charset, or UTF-8 for a windows-1251 document.
    feed = parsed("rss-windows1251-news-oren.rss.xml", content_type)
    assert feed.entries[0].title == "В Бузулуке главные стройплощадки – детсад и Ледовый дворец"


def test_a_feed_sent_as_text_html_still_parses() -> None:
    feed = parsed("atom-theverge.atom.xml", "text/html; charset=utf-8")
    assert len(feed.entries) == 10


def test_an_html_page_is_not_a_feed() -> None:
    page = b"<!doctype html><html><head><title>Home</title></head><body><p>Hi</p></body></html>"
    with pytest.raises(ParseError, match="not an RSS, Atom or RDF feed"):
        parse(page, BASE + "index.html", "text/html")


@pytest.mark.parametrize("body", [b"", b"   \n\t  "])
def test_an_empty_body_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="empty body"):
        parse(body, BASE + "empty.xml", "application/rss+xml")


def test_garbage_bytes_are_not_a_feed() -> None:
    with pytest.raises(ParseError):
        parse(bytes(range(256)) * 4, BASE + "junk", None)


def _one_item(title: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>" + title + b"</title><link>https://example.com/a</link></item>"
        b"</channel></rss>"
    )


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # Emoji written as a UTF-16 surrogate pair of references (some CMSs).
        (b"Party &#xD83C;&#xDF89; time", "Party 🎉 time"),
        (b"Smile &#55357;&#56832;", "Smile 😀"),
        (b"Lone &#xD800; half", "Lone � half"),
        (b"Beyond &#x110000; Unicode", "Beyond � Unicode"),
        (b"Huge &#99999999999999999999999999; number", "Huge � number"),
        (b"Fine &#8217; &#x1F600; refs", "Fine ’ 😀 refs"),
    ],
)
def test_character_references_feedparser_cannot_take_are_repaired(
    title: bytes, expected: str
) -> None:
    # Unrepaired, these make feedparser itself raise (UnicodeEncodeError,
    # ValueError, OverflowError) instead of salvaging the feed.
    (entry,) = parse(_one_item(title), BASE + "refs.xml", "application/rss+xml").entries
    assert entry.title == expected


_xml_pieces = st.sampled_from(
    [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0">',
        "</rss>",
        "<channel>",
        "</channel>",
        "<item>",
        "</item>",
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        "<entry>",
        "</entry>",
        "<title>",
        "</title>",
        "<link>",
        "</link>",
        '<link href="/x"/>',
        "<guid>",
        "</guid>",
        "<pubDate>",
        "</pubDate>",
        "<description>",
        "</description>",
        '<category term="a, b"/>',
        '<enclosure url="http://example.com/a.jpg" type="image/jpeg"/>',
        "<ttl>",
        "</ttl>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&lt;b&gt;",
        "&bogus;",
        "&#xD83D;",
        "&#xDE00;",
        "&#1114112;",
        "2020/1/10 14:33",
        "2020/13/45",
        "Mon, 01 Jan 2024 10:00:00 GMT",
        "http://example.com/a",
        "javascript:alert(1)",
        "текст",
    ]
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(_xml_pieces, st.text(max_size=8)), max_size=30),
    st.sampled_from([None, "application/xml", "text/html", "text/xml; charset=koi8-r"]),
)
def test_parse_only_ever_raises_parse_error(pieces: list[str], content_type: str | None) -> None:
    body = "".join(pieces).encode("utf-8", "surrogatepass")
    try:
        feed = parse(body, BASE + "fuzz.xml", content_type)
    except ParseError:
        return
    for entry in feed.entries:
        assert entry.title.strip()
        assert is_absolute_http_url(entry.url)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_parse_of_random_bytes_only_ever_raises_parse_error(body: bytes) -> None:
    try:
        parse(body, BASE + "bytes", None)
    except ParseError:
        pass


def test_relative_links_are_resolved_against_the_site() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
    <link>https://example.com/blog/</link>
    <item><title>A &amp; B</title><link>/posts/1</link><description>&lt;p&gt;Hi &lt;b&gt;there&lt;/b&gt;&lt;/p&gt;</description></item>
    </channel></rss>"""
    feed = parse(body, "https://example.com/feed.xml", "application/rss+xml")
    (entry,) = feed.entries
    assert entry.url == "https://example.com/posts/1"
    assert entry.key == "https://example.com/posts/1"
    assert entry.title == "A & B"
    assert entry.summary == "Hi there"


def test_an_item_with_neither_link_nor_guid_gets_a_content_hash_key() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>
    <link>https://example.com/</link>
    <item><title>Only a title</title></item>
    <item><title>Another title</title></item>
    </channel></rss>"""
    feed = parse(body, "https://example.com/feed.xml", None)
    assert [e.key[:5] for e in feed.entries] == ["hash:", "hash:"]
    assert feed.entries[0].key != feed.entries[1].key
    assert all(e.url == "https://example.com/" for e in feed.entries)


# Feeds published by WordPress (``<generator>https://wordpress.org/…``), with
# the footers that the Yoast SEO and RSS Footer plugins add to every post.
WORDPRESS_FEEDS = [
    "wordpress-news-9to5google.rss.xml",
    "wordpress-news-arstechnica.rss.xml",
    "wordpress-news-nasa-2023.rss.xml",
    "wordpress-news-techcrunch.rss.xml",
    "wordpress-tech-androidauthority.rss.xml",
]
PLUGIN_FOOTERS = {
    "yoast": '<p>The post <a rel="nofollow" href="https://site.example/post/">A title</a> '
    'appeared first on <a rel="nofollow" href="https://site.example">The Site</a>.</p>\n',
    "rss-footer": '<p><a href="https://site.example/post/">A title</a> is a post from: '
    '<a href="https://site.example">The Site</a></p>\n',
}


@pytest.mark.parametrize("footer", PLUGIN_FOOTERS, ids=list(PLUGIN_FOOTERS))
@pytest.mark.parametrize("name", WORDPRESS_FEEDS)
def test_wordpress_plugin_footers_never_reach_a_summary(name: str, footer: str) -> None:
    source = (REAL_FEEDS / name).read_bytes()
    clean = parse(source, BASE + name)
    # Where the plugins put it: at the end of each post's description and content.
    tail = PLUGIN_FOOTERS[footer].encode()
    with_footer = source.replace(b"]]></description>", tail + b"]]></description>").replace(
        b"]]></content:encoded>", tail + b"]]></content:encoded>"
    )
    assert with_footer != source
    footed = parse(with_footer, BASE + name)
    assert [e.summary for e in footed.entries] == [e.summary for e in clean.entries]
    assert not any("The Site" in e.summary for e in footed.entries)
