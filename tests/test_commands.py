"""Every command and button, through the real PTB application, the fake Bot
API and feeds on the loopback server (see ``tests/bot_harness.py``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bot_harness import (
    ALICE,
    BOB,
    LONG_ID,
    SEEDED,
    BotHarness,
    data_of,
    eventually,
    headline_count,
    item,
    keyboard,
    labels,
    message_id,
    running_bot,
    space_items,
)
from tests.fake_telegram import DEFAULT_BOT_USERNAME, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

GROUP = -4001


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


# -- /start, /help, /categories, /mysubs ---------------------------------------


async def test_start_offers_one_button_per_category_within_the_callback_data_limit(
    bot: BotHarness,
) -> None:
    reply = (await bot.say(ALICE, "/start")).reply(ALICE)

    assert "I post news headlines by category" in str(reply.params["text"])
    assert labels(reply) == ["Space", "Science", "AI and Robotics", "Long Reads"]
    assert data_of(reply) == [
        "sub:space",
        "sub:science",
        "sub:ai_robotics",
        f"sub:{LONG_ID}",
    ]
    assert all(len(data.encode()) <= 64 for data in data_of(reply))
    assert [len(row) for row in keyboard(reply)] == [2, 2]


async def test_start_marks_the_categories_the_chat_already_follows(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe science")

    reply = (await bot.say(ALICE, "/start")).reply(ALICE)

    assert labels(reply) == ["Space", "✓ Science", "AI and Robotics", "Long Reads"]


async def test_help_explains_commands_groups_and_channels(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/help")).text(ALICE)

    for command in ("/subscribe", "/unsubscribe", "/mysubs", "/latest", "/search"):
        assert command in text
    assert "only admins change subscriptions" in text
    assert "/subscribe @yourchannel space science" in text


async def test_categories_lists_this_weeks_article_counts(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/categories")

    text = exchange.text(ALICE)
    # The science feed also has an article from ten days ago: not this week.
    assert "Space — 12" in text
    assert "Science — 8" in text
    assert "AI and Robotics — 5" in text
    assert "Long Reads — 0" in text
    assert data_of(exchange.reply(ALICE))[0] == "sub:space"


async def test_mysubs_tells_what_the_chat_receives(bot: BotHarness) -> None:
    assert (await bot.say(ALICE, "/mysubs")).text(ALICE) == (
        "This chat has no subscriptions. Try /subscribe."
    )
    await bot.say(ALICE, "/subscribe space science")

    assert (await bot.say(ALICE, "/mysubs")).text(ALICE) == "This chat receives: Space, Science."


# -- /subscribe and /unsubscribe -------------------------------------------------


async def test_subscribe_takes_ids_and_titles_in_any_case(bot: BotHarness) -> None:
    assert (await bot.say(ALICE, "/subscribe SPACE science")).text(ALICE) == (
        "Subscribed to Space, Science."
    )
    assert (await bot.say(ALICE, "/subscribe Ai And Robotics")).text(ALICE) == (
        "Subscribed to AI and Robotics."
    )
    assert (await bot.say(ALICE, "/subscribe ai_robotics Space")).text(ALICE) == (
        "Already subscribed to AI and Robotics, Space."
    )
    assert await bot.storage.chats.subscriptions(ALICE) == ["ai_robotics", "science", "space"]


async def test_subscribe_suggests_the_closest_category_for_a_typo(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/subscribe spcae")).text(ALICE)

    assert text == 'Unknown category "spcae". Did you mean Space? See /categories for the list.'
    assert await bot.storage.chats.subscriptions(ALICE) == []


async def test_subscribe_with_an_unknown_word_still_takes_the_known_ones(
    bot: BotHarness,
) -> None:
    text = (await bot.say(ALICE, "/subscribe quantum space")).text(ALICE)

    assert text == (
        'Subscribed to Space. Unknown category "quantum". See /categories for the list.'
    )
    assert await bot.storage.chats.subscriptions(ALICE) == ["space"]


async def test_subscribe_without_arguments_shows_the_keyboard_with_marks(
    bot: BotHarness,
) -> None:
    await bot.say(ALICE, "/subscribe space")

    reply = (await bot.say(ALICE, "/subscribe")).reply(ALICE)

    assert str(reply.params["text"]) == "Tap to subscribe or unsubscribe:"
    assert labels(reply) == ["✓ Space", "Science", "AI and Robotics", "Long Reads"]


async def test_pressing_a_category_button_toggles_it_and_edits_the_keyboard(
    bot: BotHarness,
) -> None:
    menu = message_id((await bot.say(ALICE, "/subscribe")).reply(ALICE))

    pressed = await bot.press(ALICE, ALICE, "sub:science", message_id=menu)

    assert pressed.answer().params["text"] == "Subscribed to Science"
    (edit,) = pressed.of("editMessageReplyMarkup")
    assert edit.params["message_id"] == menu
    assert labels(edit) == ["Space", "✓ Science", "AI and Robotics", "Long Reads"]
    assert await bot.storage.chats.subscriptions(ALICE) == ["science"]

    again = await bot.press(ALICE, ALICE, data_of(edit)[1], message_id=menu)

    assert again.answer().params["text"] == "Unsubscribed from Science"
    (edit,) = again.of("editMessageReplyMarkup")
    assert labels(edit) == ["Space", "Science", "AI and Robotics", "Long Reads"]
    assert await bot.storage.chats.subscriptions(ALICE) == []


async def test_an_old_keyboard_does_what_its_button_said_not_the_opposite(
    bot: BotHarness,
) -> None:
    await bot.say(ALICE, "/subscribe space")
    old_menu = (await bot.say(ALICE, "/subscribe")).reply(ALICE)
    assert labels(old_menu)[0] == "✓ Space"
    # Meanwhile the chat unsubscribed by command; the old message still shows ✓.
    await bot.say(ALICE, "/unsubscribe space")

    pressed = await bot.press(ALICE, ALICE, data_of(old_menu)[0], message_id=message_id(old_menu))

    assert pressed.answer().params["text"] == "Wasn't subscribed to Space"
    assert await bot.storage.chats.subscriptions(ALICE) == []
    (edit,) = pressed.of("editMessageReplyMarkup")
    assert labels(edit)[0] == "Space"
    assert data_of(edit)[0] == "sub:space"

    # And the reverse: a plain "Space" button after subscribing by command.
    stale = (await bot.say(ALICE, "/subscribe")).reply(ALICE)
    await bot.say(ALICE, "/subscribe space")

    pressed = await bot.press(ALICE, ALICE, data_of(stale)[0], message_id=message_id(stale))

    assert pressed.answer().params["text"] == "Already subscribed to Space"
    assert await bot.storage.chats.subscriptions(ALICE) == ["space"]
    (edit,) = pressed.of("editMessageReplyMarkup")
    assert labels(edit)[0] == "✓ Space"


async def test_a_button_of_the_old_toggle_format_refreshes_the_keyboard_and_changes_nothing(
    bot: BotHarness,
) -> None:
    await bot.say(ALICE, "/subscribe science")
    menu = message_id((await bot.say(ALICE, "/subscribe")).reply(ALICE))

    for data in ("t:space", "t:science", f"t:space:{ALICE}"):
        pressed = await bot.press(ALICE, ALICE, data, message_id=menu)

        assert "Tap again" in pressed.answer().params["text"], data
        assert await bot.storage.chats.subscriptions(ALICE) == ["science"], data
        edits = pressed.of("editMessageReplyMarkup")
        assert len(edits) == 1, data
        assert labels(edits[0]) == ["Space", "✓ Science", "AI and Robotics", "Long Reads"]
        assert data_of(edits[0])[:2] == (
            ["sub:space", "unsub:science"]
            if data.count(":") == 1
            else [f"sub:space:{ALICE}", f"unsub:science:{ALICE}"]
        )


async def test_unsubscribe_one_category_then_everything(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe space science ai and robotics")

    assert (await bot.say(ALICE, "/unsubscribe space")).text(ALICE) == ("Unsubscribed from Space.")
    assert (await bot.say(ALICE, "/unsubscribe Space")).text(ALICE) == (
        "Wasn't subscribed to Space."
    )
    assert (await bot.say(ALICE, "/unsubscribe ALL")).text(ALICE) == (
        "Unsubscribed from everything."
    )
    assert await bot.storage.chats.subscriptions(ALICE) == []
    assert (await bot.say(ALICE, "/unsubscribe all")).text(ALICE) == "No subscriptions to remove."


async def test_unsubscribe_without_arguments_shows_the_keyboard(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe ai and robotics")

    reply = (await bot.say(ALICE, "/unsubscribe")).reply(ALICE)

    assert str(reply.params["text"]) == "Tap to unsubscribe:"
    assert "✓ AI and Robotics" in labels(reply)


async def test_a_separator_alone_is_not_a_category(bot: BotHarness) -> None:
    # Split on separators, "," leaves no word at all: once an empty reply, which
    # Telegram refuses ("message text is empty") and the error handler apologised.
    for command in ("/subscribe ,", "/unsubscribe ;", "/subscribe , ;"):
        text = (await bot.say(ALICE, command)).text(ALICE)
        assert "/categories" in text
    assert await bot.storage.chats.subscriptions(ALICE) == []


# -- /latest -----------------------------------------------------------------------


async def test_latest_shows_five_headlines_by_default(bot: BotHarness) -> None:
    reply = (await bot.say(ALICE, "/latest")).reply(ALICE)

    html = str(reply.params["text"])
    assert html.startswith("<b>Latest headlines</b>")
    assert headline_count(html) == 5


async def test_latest_takes_a_category_and_a_count_in_either_order(bot: BotHarness) -> None:
    for command in ("/latest space 3", "/latest 3 space", "/latest SPACE 3"):
        html = str((await bot.say(ALICE, command)).reply(ALICE).params["text"])
        assert html.startswith("<b>Latest in Space</b>")
        assert headline_count(html) == 3
        assert html.count("Rover mission update") == 3

    html = str((await bot.say(ALICE, "/latest ai and robotics 2")).reply(ALICE).params["text"])
    assert html.startswith("<b>Latest in AI and Robotics</b>")
    assert headline_count(html) == 2


async def test_latest_shows_at_most_twenty(bot: BotHarness) -> None:
    assert SEEDED > 20
    html = str((await bot.say(ALICE, "/latest 50")).reply(ALICE).params["text"])

    assert headline_count(html) == 20


async def test_latest_explains_bad_arguments(bot: BotHarness) -> None:
    assert (await bot.say(ALICE, "/latest 0")).text(ALICE) == "N must be at least 1."
    assert "Did you mean Space?" in (await bot.say(ALICE, "/latest spcae")).text(ALICE)
    assert (await bot.say(ALICE, "/latest space science")).text(ALICE) == (
        "Pick one category, e.g. /latest space 5"
    )
    assert (await bot.say(ALICE, "/latest long reads")).text(ALICE) == (
        "No headlines in Long Reads yet."
    )


# -- /search -----------------------------------------------------------------------


async def test_search_pages_through_results_with_the_more_button(bot: BotHarness) -> None:
    first = (await bot.say(ALICE, "/search rover")).reply(ALICE)
    html = str(first.params["text"])
    assert html.startswith('<b>Results for "rover"</b>')
    assert headline_count(html) == 5
    assert "\n1. <a " in html and "\n5. <a " in html
    assert labels(first) == ["More ›"]
    (more,) = data_of(first)
    assert re.fullmatch(r"q:\d+:5", more)

    second = await bot.press(ALICE, ALICE, more, message_id=message_id(first))

    assert second.sent() == []
    (edit,) = second.of("editMessageText")
    assert edit.params["message_id"] == message_id(first)
    html = str(edit.params["text"])
    assert headline_count(html) == 5
    assert "\n6. <a " in html and "\n10. <a " in html
    (more,) = data_of(edit)
    assert re.fullmatch(r"q:\d+:10", more)

    third = await bot.press(ALICE, ALICE, more, message_id=message_id(first))

    (edit,) = third.of("editMessageText")
    assert headline_count(str(edit.params["text"])) == 2
    assert "reply_markup" not in edit.params or keyboard(edit) == []


async def test_more_keeps_the_whole_query_however_long(bot: BotHarness) -> None:
    """Five Cyrillic words are 80 bytes: more than a button's callback data
    holds, so the query waits server-side and the next page searches it all."""
    words = "городской совет депутатов москвы выборы"
    bot.feeds.serve(
        "/space.xml",
        space_items(*(item(f"ru-{n}", f"{words} {n}", hours_ago=0.1 * n) for n in range(1, 8))),
    )

    async def stored() -> bool:
        return len(await bot.storage.search.search_articles(words, 20)) == 7

    await eventually(stored)
    first = (await bot.say(ALICE, f"/search {words}")).reply(ALICE)
    (more,) = data_of(first)
    second = await bot.press(ALICE, ALICE, more, message_id=message_id(first))
    (edit,) = second.of("editMessageText")
    assert check_telegram_html(str(edit.params["text"])).startswith(f'Results for "{words}"')
    assert headline_count(str(edit.params["text"])) == 2


async def test_a_more_button_from_before_queries_were_kept_still_pages(bot: BotHarness) -> None:
    first = (await bot.say(ALICE, "/search rover")).reply(ALICE)
    second = await bot.press(ALICE, ALICE, "s:5:rover", message_id=message_id(first))
    (edit,) = second.of("editMessageText")
    assert "\n6. <a " in str(edit.params["text"])


async def test_a_more_button_for_a_forgotten_query_says_it_expired(bot: BotHarness) -> None:
    first = (await bot.say(ALICE, "/search rover")).reply(ALICE)
    pressed = await bot.press(ALICE, ALICE, "q:999999:5", message_id=message_id(first))
    assert pressed.answer().params["text"] == "This search has expired. Send /search again."


async def test_search_without_words_asks_for_some(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/search")).text(ALICE)

    assert text == "What should I look for? Try /search mars rover."


async def test_search_without_matches_says_so(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/search zebra crossing")).text(ALICE)

    assert text == 'Nothing found for "zebra crossing".'


# -- groups ------------------------------------------------------------------------


async def test_commands_addressed_to_the_bot_by_name_work_in_groups(bot: BotHarness) -> None:
    bot.fake.add_chat(GROUP, "group", title="Readers")
    bot.fake.set_member(GROUP, ALICE, "administrator")
    name = DEFAULT_BOT_USERNAME

    exchange = await bot.ask(
        bot.fake.message(GROUP, f"/latest@{name} space 2", user_id=BOB),
        bot.fake.message(GROUP, f"/search@{name} physics", user_id=BOB),
        bot.fake.message(GROUP, f"/subscribe@{name} science", user_id=ALICE),
        bot.fake.message(GROUP, "/latest@some_other_bot", user_id=BOB),
    )

    texts = exchange.texts(GROUP)
    assert len(texts) == 3  # nothing for the command meant for another bot
    assert texts[0].startswith("<b>Latest in Space</b>")
    assert texts[1].startswith('<b>Results for "physics"</b>')
    assert texts[2] == "Subscribed to Science."
    assert await bot.storage.chats.subscriptions(GROUP) == ["science"]


# -- /health -----------------------------------------------------------------------


async def test_health_tells_a_non_operator_how_to_become_one(bot: BotHarness) -> None:
    bot.fake.add_chat(GROUP, "group")

    exchange = await bot.ask(
        bot.fake.message(BOB, "/health"),
        bot.fake.message(GROUP, "/health", user_id=BOB),
        bot.fake.message(ALICE, "/health"),
    )

    for chat in (BOB, GROUP):
        text = exchange.text(chat)
        assert "feeds" not in text
        assert f"add your user id {BOB} to admins under [telegram]" in text
    assert exchange.text(ALICE).startswith("3 feeds, 0 failing")


async def test_whoami_tells_the_user_id_and_the_chat_id_everywhere(bot: BotHarness) -> None:
    channel = -1_001_555_000_111
    bot.fake.add_chat(GROUP, "group")

    exchange = await bot.ask(
        bot.fake.message(BOB, "/whoami"),
        bot.fake.message(GROUP, "/whoami@newsbot_test_bot", user_id=BOB),
        bot.fake.channel_post(channel, "/whoami"),
    )

    assert exchange.text(BOB) == f"Your user id: {BOB}"
    assert exchange.text(GROUP) == f"Your user id: {BOB}\nThis chat's id: {GROUP}"
    in_channel = exchange.text(channel)
    assert "send /whoami in a private chat with me for your user id" in in_channel
    assert f"This chat's id: {channel}" in in_channel


async def test_whoami_and_health_are_in_help_and_the_command_menu(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/help")).text(ALICE)

    assert "/whoami" in text and "/health" in text
    menu = [c["command"] for c in bot.fake.commands()]
    assert "whoami" in menu and "health" in menu


async def test_health_lists_failing_feeds_in_whole_lines_of_valid_html(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    # 30 feeds that answer 404, with URLs full of "&" (escaped "&amp;"): far
    # more than one message holds. Cutting the finished HTML at a fixed length
    # ended inside an entity or a line.
    gone = [{"url": feed_server.url(f"/gone/{n}?" + "&" * 150)} for n in range(30)]
    async with running_bot(tmp_path, fake_telegram, feed_server, extra_feeds=gone) as bot:

        async def all_failed_once() -> bool:
            return sum(1 for f in await bot.storage.feeds.feed_health() if f.error_count) == 30

        await eventually(all_failed_once)

        text = (await bot.say(ALICE, "/health")).text(ALICE)

    header, *lines = text.split("\n")
    assert header.startswith("33 feeds, 30 failing")
    assert lines[-1].startswith("… and ") and lines[-1].endswith(" more")
    for line in lines[:-1]:
        assert re.fullmatch(r"• http://\S+ — \d+ errors?: fetch: HTTP 404", line), line


# -- start-up ----------------------------------------------------------------------


async def test_the_first_poll_runs_at_start_not_one_tick_later(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    # With a 10-minute interval the scheduler ticks every 30 s; /latest must
    # not stay empty that long after a start.
    async with running_bot(
        tmp_path, fake_telegram, feed_server, wait_for_articles=False, polling={"interval": 600}
    ) as bot:

        async def seed_feeds_stored() -> bool:
            return await bot.articles() > 0

        await eventually(seed_feeds_stored, within=10)
