"""Headline cards: valid Telegram HTML for every real-world article, and
hostile feed content rendered as escaped text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import ParseError
from bot.models import Article
from bot.parse import parse
from bot.render import render_card, render_list
from tests.telegram_html import assert_valid_message, check_telegram_html

REAL_FEEDS = Path(__file__).resolve().parents[2] / "shared" / "feeds" / "real"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def article(**overrides: object) -> Article:
    values: dict[str, object] = {
        "id": 1,
        "feed_id": 1,
        "url": "https://example.org/story?id=1&x=2",
        "title": "Rocket lands",
        "summary": "A reusable booster came back.",
        "author": None,
        "published": NOW,
        "image_url": None,
        "source": "Example News",
        "categories": ("space",),
    }
    values.update(overrides)
    return Article.model_validate(values)


def corpus_articles() -> list[tuple[str, Article]]:
    found = []
    for path in sorted(REAL_FEEDS.glob("*.xml")):
        try:
            feed = parse(path.read_bytes(), f"http://127.0.0.1/{path.name}", None)
        except ParseError:
            continue
        for index, entry in enumerate(feed.entries):
            found.append(
                (
                    f"{path.name}#{index}",
                    Article(
                        id=index + 1,
                        feed_id=1,
                        url=entry.url,
                        title=entry.title,
                        summary=entry.summary,
                        author=entry.author,
                        published=entry.published or NOW,
                        image_url=entry.image_url,
                        source=feed.title or "Feed",
                        categories=("space", "ai_robotics"),
                    ),
                )
            )
    return found


def test_card_of_every_real_world_article_is_valid_telegram_html() -> None:
    articles = corpus_articles()
    assert len(articles) > 3000  # the corpus has ~4,300 entries
    for name, item in articles:
        card = render_card(item)
        try:
            assert_valid_message(card.html)
        except AssertionError as error:  # pragma: no cover - the message names the feed
            raise AssertionError(f"{name}: {error}") from error
        assert card.plain.strip()
        assert card.preview_url == item.url
        assert [b.label for b in card.buttons] == ["Read", "Share"]


def test_card_shows_title_summary_source_time_and_hashtags() -> None:
    card = render_card(article(categories=("space", "science")))
    text = check_telegram_html(card.html)
    assert card.html.startswith("<b>Rocket lands</b>")
    assert "A reusable booster came back." in text
    assert "Example News · 25 Nov 2026, 12:00 UTC" in text
    assert "#space #science" in text


def test_buttons_read_the_article_and_share_it_through_telegram() -> None:
    card = render_card(article(title="Mars & Moon"))
    read, share = card.buttons
    assert read.url == "https://example.org/story?id=1&x=2"
    parts = urlsplit(share.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "t.me", "/share/url")
    query = parse_qs(parts.query)
    assert query["url"] == ["https://example.org/story?id=1&x=2"]
    assert query["text"] == ["Mars & Moon"]


def test_hashtags_of_removed_categories_are_left_out() -> None:
    card = render_card(article(categories=("space", "gone")), {"space": "Space"})
    assert "#gone" not in card.html
    assert "#space" in card.html


@pytest.mark.parametrize(
    "title",
    [
        '<a href="javascript:alert(1)">click</a>',
        "<b>unclosed <i>tags",
        "AT&T &amp; &foo; &#xZZ; & &&& <<>>",
        "</b></i></a><pre>",
        "x" * 100_000,
        "word " * 20_000,
    ],
)
def test_hostile_feed_text_renders_as_escaped_text(title: str) -> None:
    card = render_card(article(title=title, summary=title, source=title))
    plain = check_telegram_html(card.html)
    assert_valid_message(card.html)
    assert "<a " not in card.html  # a card has no links of its own; buttons carry them
    # Nothing from the feed became a tag: the only tags are ours.
    assert card.html.count("<b>") == 1 and card.html.count("<i>") == 1
    assert len(plain) < 1200


@given(st.text(max_size=5000), st.text(max_size=5000), st.text(max_size=300))
def test_any_text_makes_a_valid_card(title: str, summary: str, source: str) -> None:
    card = render_card(article(title=title or "x", summary=summary, source=source or "s"))
    assert_valid_message(card.html)


def test_headline_list_is_valid_and_links_each_article() -> None:
    items = [
        article(id=i, title=f"Story <{i}> & more", url=f"https://e.org/{i}?a=1&b=2")
        for i in range(20)
    ]
    text = render_list('Results for "<script>"', items)
    assert_valid_message(text)
    assert text.count("<a href=") == 20
    assert "https://e.org/3?a=1&amp;b=2" in text


def test_the_share_text_carries_the_bots_link_to_the_story() -> None:
    link = "https://t.me/newsbot?start=a-42"
    card = render_card(article(title="Mars & Moon"), article_link=link)
    share = next(b.url for b in card.buttons if b.label == "Share")
    (text,) = parse_qs(urlsplit(share).query)["text"]
    assert text.startswith("Mars & Moon") and text.endswith(link)
    plain = render_card(article(title="Mars & Moon"))
    assert "t.me/newsbot" not in next(b.url for b in plain.buttons if b.label == "Share")
