"""/digest and /quiet: who may change them (as for /subscribe), what a
typo gets, and what the chat is told."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.telegram.handlers import COMMANDS
from tests.bot_harness import ALICE, BOB, BotHarness, running_bot
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.test_permissions import CHANNEL, CHANNEL_NAME, GROUP, make_channel, make_group


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def test_the_commands_are_in_the_menu() -> None:
    names = [name for name, _ in COMMANDS]
    assert "digest" in names and "quiet" in names


async def test_help_shows_digest_and_quiet(bot: BotHarness) -> None:
    text = (await bot.say(BOB, "/help")).text(BOB)
    assert "/digest" in text and "/quiet" in text


async def test_a_private_chat_sets_shows_and_ends_its_digest(bot: BotHarness) -> None:
    text = (await bot.say(BOB, "/digest")).text(BOB)
    assert "gets instant cards" in text
    text = (await bot.say(BOB, "/digest 18:00 7:30")).text(BOB)
    assert "a digest at 07:30, 18:00 (UTC)" in text
    assert (await bot.storage.chats.chat_settings(BOB)).digest_times == ("07:30", "18:00")
    text = (await bot.say(BOB, "/digest")).text(BOB)
    assert "a digest at 07:30, 18:00" in text
    text = (await bot.say(BOB, "/digest off")).text(BOB)
    assert "instant cards again" in text
    assert (await bot.storage.chats.chat_settings(BOB)).digest_times == ()


async def test_a_bad_digest_time_changes_nothing_and_says_why(bot: BotHarness) -> None:
    text = (await bot.say(BOB, "/digest 25:00")).text(BOB)
    assert "Not changed" in text and "'25:00' is not a time of day" in text
    text = (await bot.say(BOB, "/digest 1:00 2:00 3:00 4:00 5:00 6:00 7:00")).text(BOB)
    assert "at most 6" in text
    assert (await bot.storage.chats.chat_settings(BOB)).digest_times == ()


async def test_quiet_hours_are_set_shown_and_ended(bot: BotHarness) -> None:
    text = (await bot.say(BOB, "/quiet 23:00-7:00")).text(BOB)
    assert "23:00–07:00 (UTC)" in text
    assert (await bot.storage.chats.chat_settings(BOB)).quiet_hours == ("23:00", "07:00")
    assert "quiet hours 23:00–07:00" in (await bot.say(BOB, "/quiet")).text(BOB)
    text = (await bot.say(BOB, "/quiet 8:00-8:00")).text(BOB)
    assert "Not changed" in text
    text = (await bot.say(BOB, "/quiet 23:00 7:00")).text(BOB)
    assert "Not changed" in text
    await bot.say(BOB, "/quiet off")
    assert (await bot.storage.chats.chat_settings(BOB)).quiet_hours is None
    assert "no quiet hours" in (await bot.say(BOB, "/quiet")).text(BOB)


async def test_the_zone_of_a_chat_is_the_one_it_chose(bot: BotHarness) -> None:
    await bot.say(BOB, "/digest")  # the bot meets the chat
    await bot.storage.chats.update_chat_settings(
        BOB,
        {"timezone": "Europe/Berlin"},
        bot.app.runtime.clock.now(),  # type: ignore[union-attr]
    )
    assert "(Europe/Berlin)" in (await bot.say(BOB, "/digest 08:00")).text(BOB)


async def test_only_group_admins_change_a_groups_digest(bot: BotHarness) -> None:
    make_group(bot)
    refused = await bot.say(GROUP, "/digest 08:00", user_id=BOB)
    assert "admin" in refused.text(GROUP).lower()
    assert (await bot.storage.chats.chat_settings(GROUP)).digest_times == ()
    # Seeing it is open to members, as /mysubs is.
    assert "instant cards" in (await bot.say(GROUP, "/digest", user_id=BOB)).text(GROUP)
    await bot.say(GROUP, "/digest 08:00", user_id=ALICE)
    assert (await bot.storage.chats.chat_settings(GROUP)).digest_times == ("08:00",)
    refused = await bot.say(GROUP, "/quiet 22:00-06:00", user_id=BOB)
    assert (await bot.storage.chats.chat_settings(GROUP)).quiet_hours is None


async def test_a_channel_is_shaped_from_a_private_chat_by_its_admin(bot: BotHarness) -> None:
    await make_channel(bot)
    text = (await bot.say(ALICE, f"/digest @{CHANNEL_NAME} 09:00")).text(ALICE)
    assert f"@{CHANNEL_NAME} gets a digest at 09:00" in text
    assert (await bot.storage.chats.chat_settings(CHANNEL)).digest_times == ("09:00",)
    await bot.say(ALICE, f"/quiet @{CHANNEL_NAME} 22:00-06:00")
    assert (await bot.storage.chats.chat_settings(CHANNEL)).quiet_hours == ("22:00", "06:00")
    # Someone who does not manage the channel changes nothing.
    await bot.say(BOB, f"/digest @{CHANNEL_NAME} off")
    assert (await bot.storage.chats.chat_settings(CHANNEL)).digest_times == ("09:00",)
