"""/settings, /pause, /resume and /timezone end to end: the real PTB
application, the fake Bot API and feeds on the loopback server, in a
private chat, a group and a channel set up from a private chat."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.telegram.handlers import COMMANDS
from bot.telegram.settings_panel import SetOption, parse_panel_data, set_data
from tests.bot_harness import (
    ALICE,
    BOB,
    SEEDED,
    BotHarness,
    buttons,
    data_of,
    eventually,
    item,
    message_id,
    running_bot,
    space_items,
)
from tests.fake_telegram import Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html
from tests.test_permissions import CHANNEL, GROUP, make_channel, make_group

IMAGE = "https://images.example/rocket.jpg"


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def story_with_image(key: str, title: str) -> str:
    published = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    return (
        f"<item><title>{title}</title><link>https://loopback.example/{key}</link>"
        f'<guid isPermaLink="false">{key}</guid><pubDate>{published}</pubDate>'
        f"<description>About {title}.</description>"
        f'<enclosure url="{IMAGE}" type="image/jpeg" length="1000"/></item>'
    )


def button_data(call: Call, label_start: str) -> str:
    """The callback data of the panel button whose label starts so."""
    found = [b["callback_data"] for b in buttons(call) if b["text"].startswith(label_start)]
    assert len(found) == 1, f"no single {label_start!r} button in {buttons(call)}"
    return str(found[0])


def is_story(chat_id: int, title: str) -> Callable[[Call], bool]:
    def story(call: Call) -> bool:
        text = str(call.params.get("text") or call.params.get("caption") or "")
        return (
            call.method in ("sendMessage", "sendPhoto")
            and call.chat_id == chat_id
            and (title in text)
        )

    return story


async def open_panel(bot: BotHarness, chat_id: int, command: str = "/settings") -> Call:
    exchange = await bot.say(chat_id, command)
    return exchange.reply(chat_id)


async def tap(
    bot: BotHarness, chat_id: int, panel: Call, label: str, user: int | None = None
) -> Call:
    """``user`` (the chat's own in a private chat) presses a panel button;
    returns the edit of the panel."""
    user = chat_id if user is None else user
    exchange = await bot.press(
        chat_id, user, button_data(panel, label), message_id=message_id(panel)
    )
    assert exchange.answer().ok
    (edit,) = exchange.of("editMessageText", chat_id)
    assert edit.ok
    return edit


async def test_settings_in_a_private_chat_toggle_in_place_and_shape_the_cards(
    bot: BotHarness,
) -> None:
    await bot.say(ALICE, "/subscribe space")
    panel = await open_panel(bot, ALICE)
    shown = check_telegram_html(str(panel.params["text"]))
    for line in (
        "Cards: instant",
        "Quiet hours: off",
        "Time zone: UTC",
        "Silent: off",
        "Filters: none",
        "Language: English",
    ):
        assert line in shown, shown
    assert all(len(d.encode()) <= 64 for d in data_of(panel))

    edit = await tap(bot, ALICE, panel, "Silent: off")
    assert "Silent: on" in check_telegram_html(str(edit.params["text"]))
    assert edit.params["message_id"] == message_id(panel)
    # The edited panel's buttons now carry the next change.
    panel.params["reply_markup"] = edit.params["reply_markup"]
    await tap(bot, ALICE, panel, "Preview: on")
    settings = await bot.storage.chats.chat_settings(ALICE)
    assert settings.silent and not settings.link_preview

    bot.feeds.serve("/space.xml", space_items(item("quiet-one", "Quiet comet", hours_ago=0.1)))
    card = await bot.fake.wait_for_async(is_story(ALICE, "Quiet comet"), timeout=15)
    assert card.params["disable_notification"] is True
    assert card.params["link_preview_options"] == {"is_disabled": True}
    assert card.params["parse_mode"] == "HTML"


async def test_photo_summary_and_preview_above_reach_telegram(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe space")
    panel = await open_panel(bot, ALICE)
    edit = await tap(bot, ALICE, panel, "Photo: off")
    panel.params["reply_markup"] = edit.params["reply_markup"]
    edit = await tap(bot, ALICE, panel, "Summary: on")
    panel.params["reply_markup"] = edit.params["reply_markup"]
    await tap(bot, ALICE, panel, "Preview below")

    bot.feeds.serve(
        "/space.xml",
        space_items(
            story_with_image("pic", "Nebula pictured"),
            item("nopic", "Plain update", hours_ago=0.2),
        ),
    )
    photo = await bot.fake.wait_for_async(is_story(ALICE, "Nebula pictured"), timeout=15)
    assert photo.method == "sendPhoto" and photo.ok
    assert photo.params["photo"] == IMAGE and photo.params["parse_mode"] == "HTML"
    caption = check_telegram_html(str(photo.params["caption"]))
    assert "Nebula pictured" in caption and "About Nebula" not in caption
    text = await bot.fake.wait_for_async(is_story(ALICE, "Plain update"), timeout=15)
    assert text.method == "sendMessage"
    assert text.params["link_preview_options"]["show_above_text"] is True


async def test_a_photo_telegram_cannot_fetch_comes_as_a_text_card(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe space")
    await bot.storage.chats.update_chat_settings(ALICE, {"photo": True}, datetime.now(UTC))
    bot.fake.refuse_photo_url(IMAGE)
    bot.feeds.serve("/space.xml", space_items(story_with_image("dead", "Dead link picture")))
    card = await bot.fake.wait_for_async(
        lambda c: c.method == "sendMessage" and "Dead link picture" in str(c.params.get("text")),
        timeout=15,
    )
    assert card.ok and card.chat_id == ALICE
    (refused,) = bot.fake.calls("sendPhoto", ALICE)
    assert not refused.ok


async def test_forged_and_stale_settings_buttons_are_refused(bot: BotHarness) -> None:
    panel = await open_panel(bot, ALICE)
    # Mangled data, an unknown option, a value out of range: refused, nothing changes.
    for forged in ("cs:", "cs:k1", "cs:n7", "cs:n1:abc", "cs:n1:1:2"):
        exchange = await bot.press(ALICE, ALICE, forged, message_id=message_id(panel))
        assert exchange.answer().params["text"] == "This button is not valid."
        assert not exchange.of("editMessageText")
    # Another person's private chat named in the data: refused.
    other = await bot.press(ALICE, ALICE, set_data("silent", True, BOB))
    assert "own" in other.answer().params["text"]
    assert not (await bot.storage.chats.chat_settings(BOB)).silent

    # A stale button (the value is already so): nothing changes, the panel refreshes.
    await bot.storage.chats.update_chat_settings(ALICE, {"silent": True}, datetime.now(UTC))
    stale = await bot.press(
        ALICE, ALICE, button_data(panel, "Silent: off"), message_id=message_id(panel)
    )
    assert "already so" in stale.answer().params["text"]
    (refresh,) = stale.of("editMessageText", ALICE)
    assert "Silent: on" in check_telegram_html(str(refresh.params["text"]))
    # A chat id in a group panel's button: only private panels name chats.
    make_group(bot)
    in_group = await bot.press(GROUP, ALICE, set_data("silent", True, CHANNEL))
    assert in_group.answer().params["text"] == "This button is not valid."


async def test_in_a_group_anyone_sees_the_panel_and_only_admins_change_it(
    bot: BotHarness,
) -> None:
    make_group(bot)
    panel = (await bot.say(GROUP, "/settings", user_id=BOB)).reply(GROUP)
    assert "Settings of Readers &amp; &lt;Friends&gt;" in str(panel.params["text"])
    data = button_data(panel, "Summary: on")
    refused = await bot.press(GROUP, BOB, data, message_id=message_id(panel))
    assert (
        refused.answer().params["text"] == "Only this group's admins can change its subscriptions."
    )
    assert not refused.of("editMessageText")
    assert (await bot.storage.chats.chat_settings(GROUP)).summary

    edit = await tap(bot, GROUP, panel, "Summary: on", ALICE)
    assert "Summary: off" in check_telegram_html(str(edit.params["text"]))
    assert not (await bot.storage.chats.chat_settings(GROUP)).summary
    # The group is paused and resumed by admins only.
    assert "Only this group's admins" in (await bot.say(GROUP, "/pause", user_id=BOB)).text(GROUP)
    assert "Paused" in (await bot.say(GROUP, "/pause")).text(GROUP)
    assert (await bot.storage.chats.chat_settings(GROUP)).paused


async def test_a_channels_settings_are_changed_from_a_private_chat_by_its_admin(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    await bot.say(ALICE, "/subscribe @spacenews space")
    panel = await open_panel(bot, ALICE, "/settings @spacenews")
    assert "Settings of @spacenews" in check_telegram_html(str(panel.params["text"]))
    data = button_data(panel, "Silent: off")
    press = parse_panel_data(data)
    assert isinstance(press, SetOption) and press.chat_id == CHANNEL
    assert len(data.encode()) <= 64

    edit = await tap(bot, ALICE, panel, "Silent: off")
    assert "Silent: on" in check_telegram_html(str(edit.params["text"]))
    assert (await bot.storage.chats.chat_settings(CHANNEL)).silent
    assert not (await bot.storage.chats.chat_settings(ALICE)).silent
    # Bob does not manage the channel: neither the panel nor its buttons work for him.
    assert "Only admins of @spacenews" in (await bot.say(BOB, "/settings @spacenews")).text(BOB)
    bob = await bot.press(BOB, BOB, set_data("paused", True, CHANNEL))
    assert "Only admins of @spacenews" in bob.answer().params["text"]

    timezone = await bot.say(ALICE, "/timezone @spacenews america/new_york")
    assert "@spacenews are now shown in America/New_York" in timezone.text(ALICE)
    bot.feeds.serve("/space.xml", space_items(item("silent-one", "Channel comet", hours_ago=0.1)))
    card = await bot.fake.wait_for_async(is_story(CHANNEL, "Channel comet"), timeout=15)
    assert card.params["disable_notification"] is True
    assert " EST" in str(card.params["text"]) or " EDT" in str(card.params["text"])

    # Alice stops administering the channel: her old panel is refused.
    bot.fake.set_member(CHANNEL, ALICE, "member")
    assert bot.app.services is not None
    bot.app.services.permissions.forget(CHANNEL)  # the minute-long cache of admin rights
    gone = await bot.press(
        ALICE, ALICE, button_data(edit, "Silent: on"), message_id=message_id(panel)
    )
    assert "Only admins of @spacenews" in gone.answer().params["text"]
    assert (await bot.storage.chats.chat_settings(CHANNEL)).silent


async def test_pause_queues_nothing_and_resume_replays_nothing(bot: BotHarness) -> None:
    await bot.say(ALICE, "/subscribe space")
    paused = (await bot.say(ALICE, "/pause")).text(ALICE)
    assert paused.startswith("Paused: no new cards for this chat until /resume")
    assert "already paused" in (await bot.say(ALICE, "/pause")).text(ALICE)
    bot.feeds.serve("/space.xml", space_items(item("during", "Missed eclipse", hours_ago=0.2)))

    async def stored() -> bool:
        return await bot.articles() == SEEDED + 2

    await eventually(stored)
    queued = await bot.storage.db.fetchval(
        "SELECT count(*) FROM deliveries WHERE chat_id = ?", ALICE
    )
    assert queued == 0
    assert (await bot.say(ALICE, "/resume")).text(ALICE).startswith("Resumed")
    bot.feeds.serve(
        "/space.xml",
        space_items(
            item("after", "Seen aurora", hours_ago=0.1),
            item("during", "Missed eclipse", hours_ago=0.2),
        ),
    )
    await bot.fake.wait_for_async(is_story(ALICE, "Seen aurora"), timeout=15)
    texts = [str(c.params.get("text")) for c in bot.fake.calls("sendMessage", ALICE)]
    assert not [t for t in texts if "Missed eclipse" in t]


async def test_timezone_shows_sets_and_explains_bad_input(bot: BotHarness) -> None:
    shown = (await bot.say(ALICE, "/timezone")).text(ALICE)
    assert shown.startswith("Times in this chat are shown in UTC (UTC, now")
    bad = (await bot.say(ALICE, "/timezone Mars/Olympus_Mons")).text(ALICE)
    assert "unknown time zone" in bad
    assert (await bot.storage.chats.chat_settings(ALICE)).timezone is None
    assert "offsets go from" in (await bot.say(ALICE, "/timezone UTC+15")).text(ALICE)

    set_to = (await bot.say(ALICE, "/timezone utc+5:30")).text(ALICE)
    assert set_to.startswith("Times in this chat are now shown in UTC+5:30 (UTC+5:30, now")
    assert (await bot.storage.chats.chat_settings(ALICE)).timezone == "UTC+5:30"
    # Lists show the zone now, and the time in it.
    latest = (await bot.say(ALICE, "/latest space 1")).text(ALICE)
    assert "UTC+5:30" in latest
    found = (await bot.say(ALICE, "/search rover")).text(ALICE)
    assert "UTC+5:30" in found
    # In a group only admins set it.
    make_group(bot)
    assert "Only this group's admins" in (
        await bot.say(GROUP, "/timezone Europe/Berlin", user_id=BOB)
    ).text(GROUP)
    assert "Europe/Berlin" in (await bot.say(GROUP, "/timezone Europe/Berlin")).text(GROUP)


async def test_help_and_the_command_menu_list_the_settings_commands(bot: BotHarness) -> None:
    names = [name for name, _ in COMMANDS]
    for command in ("settings", "pause", "resume", "timezone"):
        assert command in names
    text = (await bot.say(ALICE, "/help")).text(ALICE)
    assert "/settings — " in text and "/settings @yourchannel" in text


async def test_inline_results_show_times_in_the_askers_zone(bot: BotHarness) -> None:
    bot.fake.bot_user["supports_inline_queries"] = True
    await bot.say(ALICE, "/timezone Europe/Berlin")
    exchange = await bot.ask(bot.fake.inline_query(ALICE, "rover mission update 7"))
    (answer,) = exchange.of("answerInlineQuery")
    (result,) = answer.params["results"]
    assert result["description"].endswith((" CET", " CEST"))
    card = check_telegram_html(result["input_message_content"]["message_text"])
    assert " CET" in card or " CEST" in card


async def test_a_panel_posted_in_the_channel_itself_obeys_its_admins_only(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    exchange = await bot.ask(bot.fake.channel_post(CHANNEL, "/settings", username="spacenews"))
    panel = exchange.reply(CHANNEL)
    data = button_data(panel, "Photo: off")
    assert parse_panel_data(data) == SetOption("photo", True, None)
    bob = await bot.press(CHANNEL, BOB, data, message_id=message_id(panel))
    assert "Only admins of @spacenews" in bob.answer().params["text"]
    assert not (await bot.storage.chats.chat_settings(CHANNEL)).photo
    edit = await tap(bot, CHANNEL, panel, "Photo: off", ALICE)
    assert "Image as a photo: on" in check_telegram_html(str(edit.params["text"]))
    assert (await bot.storage.chats.chat_settings(CHANNEL)).photo
