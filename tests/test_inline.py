"""Inline mode: ``@bot words`` from any chat, through the real PTB
application and the fake Bot API, and its pure parts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import CategoryConfig
from bot.models import Article
from bot.render import render_card
from bot.telegram.inline import (
    INLINE_PAGE,
    MAX_INLINE_DEPTH,
    InlineRequest,
    inline_result,
    parse_inline_query,
)
from bot.telegram.links import article_link
from tests.bot_harness import BOB, SEEDED, SPACE_TITLES, BotHarness, running_bot
from tests.fake_telegram import DEFAULT_BOT_USERNAME, Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

CATEGORIES = [
    CategoryConfig(id="space", title="Space"),
    CategoryConfig(id="ai_robotics", title="AI and Robotics"),
]


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


async def inline(bot: BotHarness, text: str, offset: str = "") -> Call:
    exchange = await bot.ask(bot.fake.inline_query(BOB, text, offset=offset))
    (answer,) = exchange.of("answerInlineQuery")
    assert answer.ok, f"answerInlineQuery refused: {answer.response}"
    return answer


def titles(answer: Call) -> list[str]:
    return [r["title"] for r in answer.params["results"]]


# -- pure ----------------------------------------------------------------


def test_a_first_word_naming_a_category_limits_the_query_to_it() -> None:
    assert parse_inline_query("space mars", "", CATEGORIES) == InlineRequest(
        CATEGORIES[0], "mars", 0
    )
    assert parse_inline_query("  SPACE  ", "", CATEGORIES) == InlineRequest(CATEGORIES[0], "", 0)
    assert parse_inline_query("ai_robotics arm", "20", CATEGORIES) == InlineRequest(
        CATEGORIES[1], "arm", 20
    )
    assert parse_inline_query("mars space", "", CATEGORIES) == InlineRequest(None, "mars space", 0)
    assert parse_inline_query("", "", CATEGORIES) == InlineRequest(None, "", 0)


@pytest.mark.parametrize("offset", ["x", "-10", "15", "1e1", "٣٠", str(MAX_INLINE_DEPTH), "99999"])
def test_an_offset_the_bot_never_gave_is_not_answered_with_results(offset: str) -> None:
    assert parse_inline_query("mars", offset, CATEGORIES) is None


@given(st.text(max_size=300), st.text(max_size=70))
def test_parsing_an_inline_query_never_raises(text: str, offset: str) -> None:
    request = parse_inline_query(text, offset, CATEGORIES)
    assert request is None or 0 <= request.offset < MAX_INLINE_DEPTH


def test_a_result_shows_source_time_and_image_and_posts_the_card() -> None:
    story = Article(
        id=42,
        feed_id=1,
        url="https://news.example/mars",
        title="Rover finds <water> & ice",
        summary="A summary.",
        author=None,
        published=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        image_url="https://img.example/mars.jpg",
        source="Space Daily",
        categories=("space",),
    )
    result = inline_result(story, {"space": "Space"}, "newsbot")
    assert result.id == "42"
    assert result.title == "Rover finds <water> & ice"
    assert result.description == "Space Daily · 1 Mar 2026, 12:00 UTC"
    assert result.thumbnail_url == "https://img.example/mars.jpg"
    content = result.input_message_content
    link = article_link("newsbot", 42)
    assert content.message_text == render_card(story, {"space": "Space"}, article_link=link).html  # type: ignore[attr-defined]
    no_image = inline_result(story.model_copy(update={"image_url": None}), {}, None)
    assert no_image.thumbnail_url is None


# -- through the bot -----------------------------------------------------


async def test_an_empty_inline_query_pages_through_the_latest_headlines(bot: BotHarness) -> None:
    first = await inline(bot, "")
    assert first.params["cache_time"] == 30
    assert len(first.params["results"]) == INLINE_PAGE
    assert first.params["next_offset"] == "10"
    second = await inline(bot, "", first.params["next_offset"])
    third = await inline(bot, "", second.params["next_offset"])
    assert second.params["next_offset"] == "20"
    assert third.params.get("next_offset", "") == ""
    ids = [r["id"] for answer in (first, second, third) for r in answer.params["results"]]
    assert len(ids) == len(set(ids)) == SEEDED + 1  # every stored story once
    # Newest first: the space feed's first item is an hour old, like the others' first.
    assert titles(first)[0] in {"Rover mission update 1", "Physics paper 1", "Robot arm 1"}


async def test_an_inline_query_searches_the_archive(bot: BotHarness) -> None:
    found = await inline(bot, "physics paper")
    assert sorted(titles(found)) == sorted(f"Physics paper {n}" for n in range(1, 9))
    assert found.params.get("next_offset", "") == ""
    result = found.params["results"][0]
    assert result["description"].startswith("Science Weekly · ")


async def test_a_category_word_limits_the_inline_results_to_it(bot: BotHarness) -> None:
    latest = await inline(bot, "space")
    assert titles(latest) == SPACE_TITLES[:INLINE_PAGE]
    assert latest.params["next_offset"] == "10"
    rest = await inline(bot, "space", "10")
    assert titles(rest) == SPACE_TITLES[INLINE_PAGE:]
    # "update" is in every space title and in no other: the category keeps
    # "robot" out even though it is a word of the archive.
    assert await inline(bot, "space robot") and titles(await inline(bot, "space robot")) == []
    searched = await inline(bot, "space update 3")
    assert titles(searched) == ["Rover mission update 3"]


async def test_the_chosen_inline_result_posts_the_full_card(bot: BotHarness) -> None:
    answer = await inline(bot, "rover mission update 7")
    (result,) = answer.params["results"]
    story = await bot.storage.articles.article(int(result["id"]))
    assert story is not None
    link = article_link(DEFAULT_BOT_USERNAME, story.id)
    card = render_card(story, {"space": "Space"}, article_link=link)
    content = result["input_message_content"]
    assert content["message_text"] == card.html
    assert content["link_preview_options"]["url"] == story.url
    buttons = [b for row in result["reply_markup"]["inline_keyboard"] for b in row]
    assert [b["text"] for b in buttons] == ["Read", "Share"]
    assert all("callback_data" not in b for b in buttons)
    shared = parse_qs(urlsplit(buttons[1]["url"]).query)["text"][0]
    assert link in shared
    posted = bot.fake.post_inline_result(answer, result["id"], 7777)
    assert posted["text"] == check_telegram_html(card.html)


@pytest.mark.parametrize(
    "text",
    [
        "🚀🔭 mars",
        "🚀",
        "x" * 256,
        "rover " * 42 + "abcd",
        '"unbalanced',
        "rover AND OR NOT",
        "NEAR(rover mission)",
        "title:rover",
        "* - ^ ( ) :",
        "'; DROP TABLE articles; --",
        "\\",
        "   ",
        "space \u0000 rover",
        "#space",
    ],
)
async def test_any_inline_text_is_answered_without_an_error(bot: BotHarness, text: str) -> None:
    answer = await inline(bot, text)
    results: list[dict[str, Any]] = answer.params["results"]
    assert len(results) <= INLINE_PAGE


async def test_a_forged_inline_offset_gets_an_empty_answer(bot: BotHarness) -> None:
    answer = await inline(bot, "rover", "9" * 64)
    assert answer.params["results"] == []


@pytest.mark.parametrize("supported", [False, True])
async def test_a_hint_is_logged_at_start_while_inline_mode_is_off(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    feed_server: FeedServer,
    caplog: pytest.LogCaptureFixture,
    supported: bool,
) -> None:
    fake_telegram.bot_user["supports_inline_queries"] = supported
    caplog.set_level(logging.INFO, logger="bot.telegram.app")
    async with running_bot(tmp_path, fake_telegram, feed_server, wait_for_articles=False):
        pass
    hints = [r.getMessage() for r in caplog.records if "/setinline" in r.getMessage()]
    assert len(hints) == (0 if supported else 1)
