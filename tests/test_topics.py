"""Forum topics end to end: a category's cards go to the topic it was
subscribed in, General's without a thread id, and a closed topic's
categories fall back to General with one notice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.route import ChatRouting, Delivery, Subscription, route
from tests.bot_harness import (
    ALICE,
    BOB,
    BotHarness,
    eventually,
    item,
    rss,
    running_bot,
    space_items,
)
from tests.fake_telegram import Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.test_permissions import SUPERGROUP, is_card

FORUM = SUPERGROUP


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def make_forum(bot: BotHarness) -> tuple[int, int]:
    """A supergroup with topics where Alice is an admin; returns the ids of
    its topics "Launches & <Landings>" and "Lab"."""
    bot.fake.add_chat(FORUM, "supergroup", title="Space Forum", is_forum=True)
    bot.fake.set_member(FORUM, ALICE, "administrator")
    bot.fake.set_member(FORUM, BOB, "member")
    return bot.fake.create_topic(FORUM, "Launches & <Landings>"), bot.fake.create_topic(
        FORUM, "Lab"
    )


async def in_topic(bot: BotHarness, thread_id: int | None, text: str) -> str:
    exchange = await bot.ask(bot.fake.message(FORUM, text, user_id=ALICE, thread_id=thread_id))
    reply = exchange.reply(FORUM)
    # The answer goes where the command was asked.
    assert reply.params.get("message_thread_id") == thread_id
    return exchange.text(FORUM)


async def card(bot: BotHarness, title: str) -> Call:
    """The card of ``title`` Telegram accepted in the forum."""
    carries = is_card(FORUM, title)
    return await bot.fake.wait_for_async(lambda call: carries(call) and call.ok, 15)


def science(*titles: str) -> bytes:
    return rss(*(item(f"sci-new-{n}", t, hours_ago=0.1) for n, t in enumerate(titles)))


async def test_each_category_goes_to_the_topic_it_was_subscribed_in(bot: BotHarness) -> None:
    launches, _ = make_forum(bot)

    assert await in_topic(bot, launches, "/subscribe space") == (
        "Subscribed to Space in topic “Launches & <Landings>”."
    )
    assert await in_topic(bot, None, "/subscribe science") == "Subscribed to Science in General."
    assert await in_topic(bot, launches, "/mysubs") == (
        "This chat receives: Space (topic “Launches & <Landings>”), Science (General)."
    )

    bot.feeds.serve("/space.xml", space_items(item("space-new", "Booster caught", hours_ago=0.1)))
    bot.feeds.serve("/science.xml", science("Quantum result"))

    assert (await card(bot, "Booster caught")).params["message_thread_id"] == launches
    # General takes no thread id: Telegram refuses 1.
    assert "message_thread_id" not in (await card(bot, "Quantum result")).params


async def test_subscribing_again_in_another_topic_moves_the_category(bot: BotHarness) -> None:
    launches, lab = make_forum(bot)
    await in_topic(bot, launches, "/subscribe space")

    assert await in_topic(bot, launches, "/subscribe space") == "Already subscribed to Space."
    assert await in_topic(bot, lab, "/subscribe space") == ("Subscribed to Space in topic “Lab”.")
    bot.feeds.serve("/space.xml", space_items(item("space-new", "Booster caught", hours_ago=0.1)))

    assert (await card(bot, "Booster caught")).params["message_thread_id"] == lab


async def test_a_closed_topic_falls_back_to_general_and_the_chat_is_told_once(
    bot: BotHarness,
) -> None:
    launches, _ = make_forum(bot)
    await in_topic(bot, launches, "/subscribe space")
    bot.fake.close_topic(FORUM, launches)

    bot.feeds.serve(
        "/space.xml", space_items(item("space-a", "First after closing", hours_ago=0.1))
    )
    first = await card(bot, "First after closing")
    assert first.ok and "message_thread_id" not in first.params
    refused = [
        c
        for c in bot.fake.calls("sendMessage", FORUM)
        if c.params.get("message_thread_id") == launches and not c.ok
    ]
    assert refused and "TOPIC_CLOSED" in str(refused[0].response)

    bot.feeds.serve(
        "/space.xml",
        space_items(
            item("space-b", "Second after closing", hours_ago=0.05),
            item("space-a", "First after closing", hours_ago=0.1),
        ),
    )
    second = await card(bot, "Second after closing")
    assert "message_thread_id" not in second.params

    notices = [
        c for c in bot.fake.calls("sendMessage", FORUM) if "was closed or deleted" in str(c.params)
    ]
    assert len(notices) == 1
    assert "message_thread_id" not in notices[0].params
    assert await in_topic(bot, None, "/mysubs") == "This chat receives: Space (General)."


async def test_a_deleted_topic_falls_back_to_general_too(bot: BotHarness) -> None:
    launches, _ = make_forum(bot)
    await in_topic(bot, launches, "/subscribe space")
    bot.fake.delete_topic(FORUM, launches)

    bot.feeds.serve("/space.xml", space_items(item("space-a", "After deleting", hours_ago=0.1)))

    assert "message_thread_id" not in (await card(bot, "After deleting")).params

    # Telegram's answer comes before the outbox writes it down.
    async def sent_once() -> bool:
        return await bot.storage.outbox.delivery_counts() == {"sent": 1}

    await eventually(sent_once)


def test_an_article_in_several_categories_goes_once_to_the_first_ones_topic() -> None:
    subscriptions = [Subscription(1, "science", 7), Subscription(1, "space", 5)]
    chats = {1: ChatRouting(1, True)}

    # The article's categories come in the configuration's order.
    assert route(("space", "science"), subscriptions, chats) == [Delivery(1, "space", 5)]
    assert route(("science", "space"), subscriptions, chats) == [Delivery(1, "science", 7)]
