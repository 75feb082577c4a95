"""Synthetic WordPress-like RSS 2.0 feeds, deterministic by (feed, item).

Feed ``f`` at generation ``g`` lists items ``g .. g + ITEMS - 1``, newest
first; moving to generation ``g + 1`` adds one new item and drops the oldest,
which is what a busy site's feed does between two polls. Each item has a
title, link, guid, pubDate, dc:creator, one category, a description (the
WordPress excerpt with its "appeared first on" footer) and a content:encoded
of a few paragraphs with an image: about 47 KB per 30-item feed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape

from bench.vocab import vocabulary

ITEMS = 30
CATEGORIES = (
    "Technology",
    "Science",
    "Business",
    "Politics",
    "Sports",
    "Health",
    "Space",
    "AI and Robotics",
    "Culture",
    "World",
)
AUTHORS = ("Jane Doe", "Ravi Patel", "Ana Souza", "Tom Becker", "Mei Lin", "Omar Haddad")
_BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
_ITEM_STEP = timedelta(minutes=37)


def site(feed: int) -> str:
    return f"https://site{feed}.example"


def item_time(feed: int, seq: int) -> datetime:
    return _BASE_TIME + timedelta(minutes=feed % 997) + seq * _ITEM_STEP


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def item_xml(feed: int, seq: int) -> str:
    rng = random.Random(feed * 1_000_003 + seq)
    words = vocabulary()
    title = words.title(rng)
    post_id = 10_000 + seq
    slug = "-".join(title.lower().split()[:6])
    when = item_time(feed, seq)
    day = when.strftime("%Y/%m/%d")
    link = f"{site(feed)}/{day}/{slug}/"
    excerpt = " ".join(words.sentence(rng, rng.randint(7, 12)) for _ in range(3))
    paragraphs = "".join(
        f"<p>{escape(' '.join(words.sentence(rng, rng.randint(7, 11)) for _ in range(3)))}</p>\n"
        for _ in range(3)
    )
    image = f"{site(feed)}/wp-content/uploads/{day}/image-{post_id}.jpg"
    return (
        "\t<item>\n"
        f"\t\t<title>{escape(title)}</title>\n"
        f"\t\t<link>{link}</link>\n"
        f"\t\t<dc:creator><![CDATA[{rng.choice(AUTHORS)}]]></dc:creator>\n"
        f"\t\t<pubDate>{when.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>\n"
        f"\t\t<category><![CDATA[{rng.choice(CATEGORIES)}]]></category>\n"
        f'\t\t<guid isPermaLink="false">{site(feed)}/?p={post_id}</guid>\n'
        f"\t\t<description><![CDATA[<p>{escape(excerpt)} [&#8230;]</p>\n"
        f'<p>The post <a rel="nofollow" href="{link}">{escape(title)}</a> appeared first on '
        f'<a rel="nofollow" href="{site(feed)}">Site {feed}</a>.</p>\n]]></description>\n'
        "\t\t<content:encoded><![CDATA["
        f'<figure class="wp-block-image"><img decoding="async" width="1200" height="675" '
        f'src="{image}" alt="" /></figure>\n'
        f"{paragraphs}]]></content:encoded>\n"
        f"\t\t<slash:comments>{rng.randint(0, 40)}</slash:comments>\n"
        "\t</item>\n"
    )


def feed_xml(feed: int, generation: int, items: list[str], self_url: str) -> bytes:
    """The feed document; ``items`` are the item XML strings, newest first."""
    newest = item_time(feed, generation + ITEMS - 1)
    head = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"\n'
        '\txmlns:content="http://purl.org/rss/1.0/modules/content/"\n'
        '\txmlns:wfw="http://wellformedweb.org/CommentAPI/"\n'
        '\txmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '\txmlns:atom="http://www.w3.org/2005/Atom"\n'
        '\txmlns:sy="http://purl.org/rss/1.0/modules/syndication/"\n'
        '\txmlns:slash="http://purl.org/rss/1.0/modules/slash/"\n\t>\n'
        "<channel>\n"
        f"\t<title>Site {feed}</title>\n"
        f'\t<atom:link href="{self_url}" rel="self" type="application/rss+xml" />\n'
        f"\t<link>{site(feed)}</link>\n"
        f"\t<description>News and notes from site {feed}</description>\n"
        f"\t<lastBuildDate>{newest.strftime('%a, %d %b %Y %H:%M:%S +0000')}</lastBuildDate>\n"
        "\t<language>en-US</language>\n"
        "\t<sy:updatePeriod>\n\thourly\t</sy:updatePeriod>\n"
        "\t<sy:updateFrequency>\n\t1\t</sy:updateFrequency>\n"
        "\t<generator>https://wordpress.org/?v=6.5.2</generator>\n"
    )
    return (head + "".join(items) + "</channel>\n</rss>\n").encode()


class FeedSet:
    """Bodies of feeds 0..count-1 at the current generation, kept in memory."""

    def __init__(self, count: int, url_of: list[str]) -> None:
        self.count = count
        self.url_of = url_of
        self.generation = 0
        self._items: list[list[str]] = [[] for _ in range(count)]  # oldest first
        self._first_seq = [0] * count
        self.bodies: list[bytes] = [b""] * count
        self.etags: list[str] = [""] * count
        self.last_modified: list[str] = [""] * count
        self.set_generation(0)

    def set_generation(self, generation: int) -> None:
        for feed in range(self.count):
            items = self._items[feed]
            if not items or generation < self._first_seq[feed]:
                self._first_seq[feed] = generation
                items[:] = [item_xml(feed, s) for s in range(generation, generation + ITEMS)]
            else:
                drop = generation - self._first_seq[feed]
                kept = items[drop:]
                start = generation + len(kept)
                kept += [item_xml(feed, s) for s in range(start, generation + ITEMS)]
                items[:] = kept
                self._first_seq[feed] = generation
            self.bodies[feed] = feed_xml(feed, generation, items[::-1], self.url_of[feed])
            self.etags[feed] = f'"{feed}-{generation}"'
            self.last_modified[feed] = http_date(item_time(feed, generation + ITEMS - 1))
        self.generation = generation
