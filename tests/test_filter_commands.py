"""/filter end to end: the real PTB application, the fake Bot API and feeds on
the loopback server, in a private chat, a group and a channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.filters import MAX_TERMS
from bot.telegram.handlers import COMMANDS
from tests.bot_harness import ALICE, BOB, BotHarness, eventually, item, running_bot, space_items
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.test_permissions import CHANNEL, GROUP, is_card, make_channel, make_group


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


# Published together; the one that passes is the newest, so it is sent last:
# once it has arrived, a refused story queued for the chat would have too.
REFUSED = ("Moon base rumors swirl", "Mars rover finds dust")
PASSES = "Moon landing confirmed"


def publish(bot: BotHarness) -> None:
    bot.feeds.serve(
        "/space.xml",
        space_items(
            item("space-pass", PASSES, hours_ago=0.05),
            item("space-rumor", REFUSED[0], hours_ago=0.1),
            item("space-mars", REFUSED[1], hours_ago=0.15),
        ),
    )


async def assert_only_the_passing_story_arrives(bot: BotHarness, chat_id: int) -> None:
    await bot.fake.wait_for_async(is_card(chat_id, PASSES), 15)
    texts = [str(c.params.get("text", "")) for c in bot.fake.calls("sendMessage", chat_id)]
    assert not [t for t in texts if any(title in t for title in REFUSED)]
    # Routing decided: the refused stories never entered this chat's outbox.
    queued = await bot.storage.db.fetch(
        "SELECT a.title FROM deliveries AS d JOIN articles AS a ON a.id = d.article_id "
        "WHERE d.chat_id = ?",
        chat_id,
    )
    assert [r[0] for r in queued] == [PASSES]


async def test_filtered_cards_never_reach_a_private_chat_and_matching_ones_do(
    bot: BotHarness,
) -> None:
    await bot.say(ALICE, "/subscribe space")

    added = await bot.say(ALICE, "/filter +moon -rumor*")
    assert added.text(ALICE) == "Filters of this chat for every category: added +moon -rumor*."
    publish(bot)

    await assert_only_the_passing_story_arrives(bot, ALICE)


async def test_filters_are_listed_and_cleared(bot: BotHarness) -> None:
    await bot.say(ALICE, '/filter +moon -"stock market"')
    await bot.say(ALICE, "/filter space +rover*")

    listing = (await bot.say(ALICE, "/filter")).text(ALICE)
    assert listing.splitlines()[:3] == [
        f"Filters of this chat (3 of {MAX_TERMS})",
        'All categories: +moon -"stock market"',
        "Space: +rover*",
    ]
    only_space = (await bot.say(ALICE, "/filter space")).text(ALICE)
    assert "Space: +rover*" in only_space

    assert (await bot.say(ALICE, "/filter clear space")).text(ALICE) == (
        "Removed 1 filter of this chat for Space."
    )
    assert (await bot.say(ALICE, "/filter clear")).text(ALICE) == (
        "Removed 2 filters of this chat."
    )
    assert (
        (await bot.say(ALICE, "/filter"))
        .text(ALICE)
        .startswith("This chat has no filters: every card of its categories arrives.")
    )
    assert (await bot.say(ALICE, "/filter clear")).text(ALICE) == (
        "No filters of this chat to remove."
    )


async def test_a_term_that_can_never_match_is_refused_with_a_reason(bot: BotHarness) -> None:
    reply = (await bot.say(ALICE, "/filter +mars +!!! -ro*ver moon")).text(ALICE)
    assert reply.splitlines() == [
        "Filters of this chat for every category: added +mars.",
        "Refused +!!!: it has no letters or digits, so it can never match.",
        "Refused -ro*ver: only a * at the end is allowed (robot* matches robots).",
        'Refused moon: put + or - before it, e.g. +mars or -"stock market".',
    ]
    unclosed = (await bot.say(ALICE, '/filter +"open <phrase>')).text(ALICE)
    assert unclosed == 'Refused +"open <phrase>: the phrase needs a closing quote.'
    unknown = (await bot.say(ALICE, "/filter spcae +mars")).text(ALICE)
    assert 'Unknown category "spcae"' in unknown
    assert await bot.storage.chats.chat_filters(ALICE) != []


async def test_a_chat_may_not_have_more_than_the_maximum_of_terms(bot: BotHarness) -> None:
    terms = " ".join(f"+w{n}" for n in range(MAX_TERMS))
    await bot.say(ALICE, f"/filter {terms}")

    reply = (await bot.say(ALICE, "/filter +one -more")).text(ALICE)
    assert reply == (
        f"Not added, this chat has {MAX_TERMS} terms already (the most a chat may have): "
        "+one -more. /filter clear makes room."
    )


async def test_latest_honours_the_chats_filters_and_search_does_not(bot: BotHarness) -> None:
    await bot.say(ALICE, "/filter space +moon -rumor*")
    publish(bot)

    async def stored() -> bool:
        return any(a.title == PASSES for a in await bot.storage.articles.latest_articles(None, 5))

    await eventually(stored)
    latest = (await bot.say(ALICE, "/latest space")).text(ALICE)
    assert latest.splitlines()[0] == "Latest in Space (filtered)"
    assert PASSES in latest
    assert not any(title in latest for title in REFUSED)
    assert "Rover mission update" not in latest
    # Another category has no filters of its own.
    assert (await bot.say(ALICE, "/latest science")).text(ALICE).startswith("Latest in Science\n")

    found = (await bot.say(ALICE, "/search moon")).text(ALICE)
    assert REFUSED[0] in found and PASSES in found


async def test_latest_says_when_the_filters_let_nothing_through(bot: BotHarness) -> None:
    await bot.say(ALICE, "/filter +zanzibar")

    assert (await bot.say(ALICE, "/latest")).text(ALICE) == (
        "No recent headlines pass this chat's filters (see /filter)."
    )


async def test_in_a_group_only_admins_set_filters_and_cards_follow_them(bot: BotHarness) -> None:
    make_group(bot)
    await bot.ask(bot.fake.message(GROUP, "/subscribe space", user_id=ALICE))

    refused = await bot.ask(bot.fake.message(GROUP, "/filter +moon", user_id=BOB))
    assert refused.text(GROUP) == "Only this group's admins can change its subscriptions."
    assert await bot.storage.chats.chat_filters(GROUP) == []
    # Anyone may read them.
    listed = await bot.ask(bot.fake.message(GROUP, "/filter", user_id=BOB))
    assert listed.text(GROUP).startswith("This chat has no filters")

    added = await bot.ask(bot.fake.message(GROUP, "/filter space +moon -rumor*", user_id=ALICE))
    assert added.text(GROUP) == "Filters of this chat for Space: added +moon -rumor*."
    publish(bot)

    await assert_only_the_passing_story_arrives(bot, GROUP)


async def test_a_channels_filters_are_set_from_a_private_chat_by_its_admin(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    await bot.say(ALICE, "/subscribe @spacenews space")

    added = (await bot.say(ALICE, "/filter @spacenews +moon -rumor*")).text(ALICE)
    assert added == "Filters of @spacenews for every category: added +moon -rumor*."
    listing = (await bot.say(ALICE, f"/filter {CHANNEL}")).text(ALICE)
    assert listing.splitlines()[:2] == [
        f"Filters of @spacenews (2 of {MAX_TERMS})",
        "All categories: +moon -rumor*",
    ]
    # Someone who does not manage the channel can do nothing with it.
    bob = (await bot.say(BOB, "/filter @spacenews clear")).text(BOB)
    assert bob == "Only admins of @spacenews can change its subscriptions."
    assert len(await bot.storage.chats.chat_filters(CHANNEL)) == 2
    assert await bot.storage.chats.chat_filters(ALICE) == []
    publish(bot)

    await assert_only_the_passing_story_arrives(bot, CHANNEL)


async def test_help_and_the_command_menu_list_filter(bot: BotHarness) -> None:
    assert "filter" in [name for name, _ in COMMANDS]
    text = (await bot.say(ALICE, "/help")).text(ALICE)
    assert "/filter — Keyword filters" in text
    assert "/filter @yourchannel +mars" in text
