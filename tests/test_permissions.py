"""Who may change which chat's subscriptions: groups, channels, the bot's own
membership, migrations and forged buttons, through the real PTB application
and the fake Bot API (which answers getChat/getChatMember as Telegram does)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.telegram import handlers
from tests.bot_harness import (
    ALICE,
    BOB,
    BOT_ID,
    CAROL,
    LONG_ID,
    BotHarness,
    anonymous_admin_message,
    data_of,
    eventually,
    item,
    labels,
    message_id,
    running_bot,
    space_items,
)
from tests.fake_telegram import ApiError, Call, ChatType, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html

GROUP = -4001
SUPERGROUP = -1_000_000_004_001
CHANNEL = -1_001_234_567_890
CHANNEL_NAME = "spacenews"
DAVE = 555_000_111  # a user id as long as real ones, so /cmd <id> reads it as a chat


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def make_group(bot: BotHarness, chat_id: int = GROUP) -> None:
    """A group where Alice is an administrator, Carol the creator, Bob a member."""
    bot.fake.add_chat(chat_id, title="Readers & <Friends>")
    bot.fake.set_member(chat_id, ALICE, "administrator")
    bot.fake.set_member(chat_id, CAROL, "creator")
    bot.fake.set_member(chat_id, BOB, "member")


async def make_channel(
    bot: BotHarness,
    *,
    bot_status: str = "administrator",
    can_post: bool = True,
    alice: str = "creator",
    chat_id: int = CHANNEL,
    username: str | None = CHANNEL_NAME,
    title: str = "Space News",
) -> None:
    """@spacenews, where Alice is ``alice``; the bot is added with
    ``bot_status`` (the my_chat_member update Telegram sends when an admin
    adds it)."""
    bot.fake.add_chat(chat_id, "channel", title=title, username=username)
    bot.fake.set_member(chat_id, ALICE, alice)
    await bot.ask(
        bot.fake.my_chat_member(
            chat_id,
            "channel",
            "left",
            bot_status,
            user_id=ALICE,
            can_post_messages=can_post,
            username=username,
        )
    )


async def publish_space_story(bot: BotHarness, key: str, title: str) -> None:
    """A new story in the space feed, after its first fetch was stored."""
    bot.feeds.serve("/space.xml", space_items(item(key, title, hours_ago=0.1)))


def is_card(chat_id: int, title: str) -> Callable[[Call], bool]:
    def card(call: Call) -> bool:
        return (
            call.method == "sendMessage"
            and call.chat_id == chat_id
            and title in str(call.params.get("text", ""))
        )

    return card


# -- groups ----------------------------------------------------------------------


async def test_anyone_in_a_group_may_read_headlines_and_search(bot: BotHarness) -> None:
    make_group(bot)

    exchange = await bot.ask(
        bot.fake.message(GROUP, "/latest space 2", user_id=BOB),
        bot.fake.message(GROUP, "/search physics", user_id=BOB),
        bot.fake.message(GROUP, "/categories", user_id=BOB),
    )

    texts = exchange.texts(GROUP)
    assert texts[0].startswith("<b>Latest in Space</b>")
    assert texts[1].startswith('<b>Results for "physics"</b>')
    assert texts[2].startswith("<b>Categories</b>")
    assert exchange.of("getChatMember") == []  # reading needs no admin check


async def test_anyone_in_a_group_may_see_what_it_receives(bot: BotHarness) -> None:
    make_group(bot)
    await bot.say(GROUP, "/subscribe space", user_id=ALICE)

    text = (await bot.say(GROUP, "/mysubs", user_id=BOB)).text(GROUP)

    # /start and /categories show the same marks to everyone; /mysubs changes nothing.
    assert text == "This chat receives: Space."


async def test_only_group_admins_change_its_subscriptions(bot: BotHarness) -> None:
    make_group(bot)
    refusal = "Only this group's admins can change its subscriptions."

    assert (await bot.say(GROUP, "/subscribe space", user_id=BOB)).text(GROUP) == refusal
    assert await bot.storage.chats.subscriptions(GROUP) == []

    assert (await bot.say(GROUP, "/subscribe space science", user_id=ALICE)).text(GROUP) == (
        "Subscribed to Space, Science."
    )
    assert (await bot.say(GROUP, "/unsubscribe all", user_id=BOB)).text(GROUP) == refusal
    assert (await bot.say(GROUP, "/unsubscribe space", user_id=BOB)).text(GROUP) == refusal
    assert await bot.storage.chats.subscriptions(GROUP) == ["science", "space"]

    assert (await bot.say(GROUP, "/unsubscribe space", user_id=CAROL)).text(GROUP) == (
        "Unsubscribed from Space."
    )
    assert await bot.storage.chats.subscriptions(GROUP) == ["science"]


async def test_a_group_member_pressing_a_category_button_is_refused(bot: BotHarness) -> None:
    make_group(bot)
    menu = message_id((await bot.say(GROUP, "/start", user_id=ALICE)).reply(GROUP))

    pressed = await bot.press(GROUP, BOB, "sub:space", message_id=menu)

    answer = pressed.answer()
    assert answer.params["text"] == "Only this group's admins can change its subscriptions."
    assert answer.params["show_alert"] is True
    assert pressed.of("editMessageReplyMarkup") == []
    assert await bot.storage.chats.subscriptions(GROUP) == []

    pressed = await bot.press(GROUP, ALICE, "sub:space", message_id=menu)

    assert pressed.answer().params["text"] == "Subscribed to Space"
    assert await bot.storage.chats.subscriptions(GROUP) == ["space"]


async def test_an_anonymous_group_admin_may_change_subscriptions(bot: BotHarness) -> None:
    make_group(bot, SUPERGROUP)

    exchange = await bot.ask(anonymous_admin_message(bot.fake, SUPERGROUP, "/subscribe science"))

    assert exchange.text(SUPERGROUP) == "Subscribed to Science."
    assert await bot.storage.chats.subscriptions(SUPERGROUP) == ["science"]


# -- channels --------------------------------------------------------------------


async def test_a_channel_admin_configures_the_channel_from_a_private_chat(
    bot: BotHarness,
) -> None:
    await make_channel(bot)

    assert (await bot.say(ALICE, "/subscribe @spacenews space science")).text(ALICE) == (
        "Subscribed for @spacenews to Space, Science."
    )
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["science", "space"]
    assert (await bot.say(ALICE, "/mysubs @spacenews")).text(ALICE) == (
        "@spacenews receives: Space, Science."
    )
    assert (await bot.say(ALICE, f"/unsubscribe {CHANNEL} science")).text(ALICE) == (
        "Unsubscribed for @spacenews from Science."
    )
    assert (await bot.say(ALICE, f"/mysubs {CHANNEL}")).text(ALICE) == (
        "@spacenews receives: Space."
    )
    assert await bot.storage.chats.subscriptions(ALICE) == []  # Alice's own chat is untouched

    # A new space story goes to the channel.
    await publish_space_story(bot, "space-new", "Rocket lands on the Moon")
    card = await bot.fake.wait_for_async(is_card(CHANNEL, "Rocket lands on the Moon"), 15)
    assert card.ok

    assert (await bot.say(ALICE, "/unsubscribe @spacenews all")).text(ALICE) == (
        "Unsubscribed for @spacenews from everything."
    )
    assert await bot.storage.chats.subscriptions(CHANNEL) == []


async def test_a_channel_administrator_may_configure_it_too(bot: BotHarness) -> None:
    await make_channel(bot, alice="administrator")

    assert (await bot.say(ALICE, "/subscribe t.me/spacenews science")).text(ALICE) == (
        "Subscribed for @spacenews to Science."
    )
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["science"]


async def test_a_channel_keyboard_from_a_private_chat_toggles_the_channel(
    bot: BotHarness,
) -> None:
    await make_channel(bot)

    menu = (await bot.say(ALICE, "/subscribe @spacenews")).reply(ALICE)

    assert str(menu.params["text"]) == "Tap to subscribe or unsubscribe for @spacenews:"
    assert data_of(menu)[-1] == f"sub:{LONG_ID}:{CHANNEL}"
    assert all(len(data.encode()) <= 64 for data in data_of(menu))

    pressed = await bot.press(ALICE, ALICE, f"sub:space:{CHANNEL}", message_id=message_id(menu))

    assert pressed.answer().params["text"] == "Subscribed to Space"
    (edit,) = pressed.of("editMessageReplyMarkup")
    assert labels(edit)[0] == "✓ Space"
    assert data_of(edit)[0] == f"unsub:space:{CHANNEL}"
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["space"]
    assert await bot.storage.chats.subscriptions(ALICE) == []


REFUSALS = {
    "user not an admin": "Only admins of @spacenews can change its subscriptions.",
    "bot not an admin": "I'm not an administrator of @spacenews. Add me as an administrator "
    "with the right to post messages, then try again.",
    "bot cannot post": "I'm an administrator of @spacenews but can't post messages there. "
    'Give me the "Post messages" right, then try again.',
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_channel_changes_are_refused_with_the_reason(bot: BotHarness, case: str) -> None:
    if case == "bot not an admin":
        await make_channel(bot, bot_status="member")
    elif case == "bot cannot post":
        await make_channel(bot, can_post=False)
    else:
        await make_channel(bot)
        bot.fake.set_member(CHANNEL, ALICE, "member")

    for command in (
        "/subscribe @spacenews space",
        "/unsubscribe @spacenews all",
        "/mysubs @spacenews",
    ):
        assert (await bot.say(ALICE, command)).text(ALICE) == REFUSALS[case]
    assert await bot.storage.chats.subscriptions(CHANNEL) == []


async def test_a_channel_that_does_not_exist_is_explained(bot: BotHarness) -> None:
    exchange = await bot.say(ALICE, "/subscribe @nosuchchannel space")

    assert exchange.text(ALICE) == (
        "I can't find @nosuchchannel. Add me to the channel as an administrator who can "
        "post messages, then try again."
    )
    (lookup,) = exchange.of("getChat")
    assert lookup.status == 400  # "chat not found"


async def test_channels_are_configured_only_from_a_private_chat(bot: BotHarness) -> None:
    await make_channel(bot)
    make_group(bot)

    text = (await bot.say(GROUP, "/subscribe @spacenews space", user_id=ALICE)).text(GROUP)

    assert text == "Configure channels from a private chat with me."
    assert await bot.storage.chats.subscriptions(CHANNEL) == []


async def test_category_buttons_on_a_channel_post_obey_the_channel_admins(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    menu = (await bot.ask(bot.fake.channel_post(CHANNEL, "/start"))).reply(CHANNEL)

    refused = await bot.press(CHANNEL, BOB, "sub:space", message_id=message_id(menu))
    accepted = await bot.press(CHANNEL, ALICE, "sub:space", message_id=message_id(menu))

    assert refused.answer().params["text"] == (
        "Only admins of @spacenews can change its subscriptions."
    )
    assert accepted.answer().params["text"] == "Subscribed to Space"
    (edit,) = accepted.of("editMessageReplyMarkup")
    assert labels(edit)[0] == "✓ Space"
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["space"]


async def test_a_channel_where_the_bot_cannot_post_gets_no_reply_and_no_change(
    bot: BotHarness,
) -> None:
    # An administrator without the "Post messages" right still sees posts.
    await make_channel(bot, can_post=False)

    exchange = await bot.ask(
        bot.fake.channel_post(CHANNEL, "/subscribe space", username=CHANNEL_NAME),
        bot.fake.channel_post(CHANNEL, "/latest", username=CHANNEL_NAME),
        check=False,
    )

    assert [c for c in exchange.sent(CHANNEL) if c.ok] == []
    assert await bot.storage.chats.subscriptions(CHANNEL) == []


async def test_a_group_where_the_bot_is_muted_gets_no_reply_and_no_error(
    bot: BotHarness,
) -> None:
    make_group(bot)
    bot.fake.set_member(GROUP, BOT_ID, "restricted", can_send_messages=False)

    exchange = await bot.ask(bot.fake.message(GROUP, "/latest", user_id=BOB), check=False)

    (refused,) = exchange.sent(GROUP)
    assert refused.status == 400  # "not enough rights to send text messages"
    # No second try with an apology; the harness fails on any ERROR log.


async def test_commands_posted_inside_a_channel_are_accepted(bot: BotHarness) -> None:
    await make_channel(bot)
    post = bot.fake.channel_post

    exchange = await bot.ask(
        post(CHANNEL, "/subscribe space", username=CHANNEL_NAME),
        post(CHANNEL, "/subscribe@newsbot_test_bot science", username=CHANNEL_NAME),
        post(CHANNEL, "/unsubscribe science", username=CHANNEL_NAME),
        post(CHANNEL, "/mysubs", username=CHANNEL_NAME),
    )

    assert [text.split("\n")[0] for text in exchange.texts(CHANNEL)] == [
        "Subscribed to Space.",
        "Subscribed to Science.",
        "Unsubscribed from Science.",
        "This chat receives: Space.",
    ]
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["space"]


async def test_a_channel_post_naming_the_channel_itself_is_about_the_channel(
    bot: BotHarness,
) -> None:
    await make_channel(bot)

    # Usernames are case-insensitive: @SpaceNews is this channel.
    exchange = await bot.ask(
        bot.fake.channel_post(CHANNEL, "/subscribe @SpaceNews space", username=CHANNEL_NAME)
    )

    assert exchange.text(CHANNEL).startswith("Subscribed to Space.\n")
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["space"]


async def test_a_chat_without_a_username_is_not_at_none(bot: BotHarness) -> None:
    make_group(bot)

    # The group has no username; "@None" is some other chat, not this one.
    exchange = await bot.say(GROUP, "/subscribe @None space", user_id=ALICE)

    assert exchange.text(GROUP) == "Configure channels from a private chat with me."
    assert await bot.storage.chats.subscriptions(GROUP) == []


async def test_a_command_in_a_channel_and_its_answer_are_deleted_when_the_bot_may(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "CHANNEL_CLEANUP_SECONDS", 0.1)
    await make_channel(bot)
    bot.fake.set_member(CHANNEL, BOT_ID, "administrator", can_delete_messages=True)
    command = bot.fake.channel_post(CHANNEL, "/subscribe space", username=CHANNEL_NAME)

    answer = (await bot.ask(command)).reply(CHANNEL)

    text = check_telegram_html(str(answer.params["text"]))
    assert text.startswith("Subscribed to Space.\n\nI'll delete this and your command in 0.1 s.")
    assert f"/subscribe {CHANNEL} …" in text
    await bot.fake.wait_for_async("deleteMessage", chat_id=CHANNEL, count=2)
    assert sorted(c.params["message_id"] for c in bot.fake.calls("deleteMessage")) == sorted(
        [command["channel_post"]["message_id"], message_id(answer)]
    )
    assert all(c.ok for c in bot.fake.calls("deleteMessage"))
    assert await bot.storage.chats.subscriptions(CHANNEL) == ["space"]


def cleanups(bot: BotHarness) -> list[str]:
    job_queue = bot.app.application.job_queue
    assert job_queue is not None
    return [job.name or "" for job in job_queue.jobs() if (job.name or "").startswith("tidy")]


async def test_without_the_delete_right_a_channel_answer_stays_and_says_where_to_configure(
    bot: BotHarness,
) -> None:
    await make_channel(bot)  # may post, may not delete

    exchange = await bot.ask(bot.fake.channel_post(CHANNEL, "/mysubs", username=CHANNEL_NAME))

    text = exchange.text(CHANNEL)
    assert text.startswith("This chat has no subscriptions.")
    assert "Every subscriber sees this: configure from a private chat with me" in text
    assert cleanups(bot) == []  # nothing scheduled (a job would wait 30 s)


async def test_headlines_asked_for_in_a_channel_stay_there(bot: BotHarness) -> None:
    await make_channel(bot)
    bot.fake.set_member(CHANNEL, BOT_ID, "administrator", can_delete_messages=True)

    exchange = await bot.ask(bot.fake.channel_post(CHANNEL, "/latest space 2"))

    assert exchange.text(CHANNEL).startswith("Latest in Space")
    assert "delete" not in exchange.text(CHANNEL)
    assert cleanups(bot) == []


# -- the bot's own membership --------------------------------------------------------


@pytest.mark.parametrize(
    ("chat_id", "removal"),
    [
        (GROUP, ("member", "left")),
        (ALICE, ("member", "kicked")),
        (CHANNEL, ("administrator", "left")),
    ],
    ids=["group removed", "private blocked", "channel removed"],
)
async def test_a_removed_bot_deactivates_the_chat_and_drops_its_pending_cards(
    tmp_path: Path,
    fake_telegram: FakeTelegram,
    feed_server: FeedServer,
    chat_id: int,
    removal: tuple[str, str],
) -> None:
    # Slow pacing holds the second card back, pending, while the first goes out.
    async with running_bot(
        tmp_path, fake_telegram, feed_server, private_chat_interval=60, group_chat_interval=60
    ) as bot:
        if chat_id == CHANNEL:
            await make_channel(bot)
            await bot.ask(bot.fake.channel_post(CHANNEL, "/subscribe space"))
            kind: ChatType = "channel"
        elif chat_id == GROUP:
            make_group(bot)
            await bot.say(GROUP, "/subscribe space", user_id=ALICE)
            kind = "group"
        else:
            await bot.say(ALICE, "/subscribe space")
            kind = "private"
        assert await bot.storage.chats.subscriptions(chat_id) == ["space"]
        bot.feeds.serve(
            "/space.xml",
            space_items(
                item("space-a", "First new story", hours_ago=0.2),
                item("space-b", "Second new story", hours_ago=0.1),
            ),
        )

        async def one_sent_one_pending() -> bool:
            return await bot.storage.outbox.delivery_counts() == {"sent": 1, "pending": 1}

        await eventually(one_sent_one_pending)

        await bot.ask(bot.fake.my_chat_member(chat_id, kind, *removal))

        chat = await bot.storage.chats.get_chat(chat_id)
        assert chat is not None and not chat.active
        assert await bot.storage.outbox.delivery_counts() == {"sent": 1, "dropped": 1}
        # Subscriptions stay, for when the bot is added back.
        assert await bot.storage.chats.subscriptions(chat_id) == ["space"]


@pytest.mark.parametrize(
    ("chat_id", "kind", "removed", "restored"),
    [
        (GROUP, "group", ("member", "kicked"), ("kicked", "member")),
        (ALICE, "private", ("member", "kicked"), ("kicked", "member")),
    ],
    ids=["group", "private"],
)
async def test_a_bot_added_back_can_be_configured_again_and_delivers(
    bot: BotHarness,
    chat_id: int,
    kind: ChatType,
    removed: tuple[str, str],
    restored: tuple[str, str],
) -> None:
    make_group(bot)
    await bot.say(chat_id, "/subscribe space", user_id=ALICE)
    await bot.ask(bot.fake.my_chat_member(chat_id, kind, *removed))
    chat = await bot.storage.chats.get_chat(chat_id)
    assert chat is not None and not chat.active

    await bot.ask(bot.fake.my_chat_member(chat_id, kind, *restored))

    chat = await bot.storage.chats.get_chat(chat_id)
    assert chat is not None and chat.active
    assert (await bot.say(chat_id, "/subscribe science", user_id=ALICE)).text(chat_id) == (
        "Subscribed to Science."
    )
    await publish_space_story(bot, "space-back", "Welcome back launch")
    card = await bot.fake.wait_for_async(is_card(chat_id, "Welcome back launch"), 15)
    assert card.ok


@pytest.mark.parametrize("supergroup_first", [False, True], ids=["group first", "supergroup first"])
async def test_a_group_that_becomes_a_supergroup_keeps_its_subscriptions(
    bot: BotHarness, supergroup_first: bool
) -> None:
    make_group(bot)
    await bot.say(GROUP, "/subscribe space science", user_id=ALICE)

    if supergroup_first:
        # The new supergroup's first messages may arrive before the old
        # group's "migrated to" message; then both chats are known.
        await bot.ask(
            bot.fake.migrate_from(SUPERGROUP, GROUP),
            bot.fake.message(SUPERGROUP, "/start", user_id=BOB),
            bot.fake.migrate(GROUP, SUPERGROUP),
        )
    else:
        await bot.ask(bot.fake.migrate(GROUP, SUPERGROUP), bot.fake.migrate_from(SUPERGROUP, GROUP))

    assert await bot.storage.chats.get_chat(GROUP) is None
    moved = await bot.storage.chats.get_chat(SUPERGROUP)
    assert moved is not None and moved.active and moved.type == "supergroup"
    assert await bot.storage.chats.subscriptions(SUPERGROUP) == ["science", "space"]
    assert (await bot.say(SUPERGROUP, "/mysubs", user_id=BOB)).text(SUPERGROUP) == (
        "This chat receives: Space, Science."
    )
    await publish_space_story(bot, "space-moved", "Supergroup launch window")
    card = await bot.fake.wait_for_async(is_card(SUPERGROUP, "Supergroup launch window"), 15)
    assert card.ok


# -- forged and stale buttons ----------------------------------------------------------


async def test_a_user_cannot_change_another_users_private_subscriptions(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.say(DAVE, "/subscribe space")

    # Bob forges Dave's chat id into a button in his own chat...
    forged = await bot.press(BOB, BOB, f"sub:science:{DAVE}")
    # ... or presses a button on a message in Dave's chat.
    foreign = await bot.press(DAVE, BOB, "unsub:space")
    # ... or names Dave's chat in a command.
    named = await bot.say(BOB, f"/unsubscribe {DAVE} all")
    peek = await bot.say(BOB, f"/mysubs {DAVE}")

    for pressed in (forged, foreign):
        answer = pressed.answer()
        assert answer.params["text"] == "You can only change your own subscriptions."
        assert pressed.sent() == []
        assert pressed.of("editMessageReplyMarkup") == []
    refusal = "You can configure only channels and groups you manage."
    assert named.text(BOB) == refusal
    assert peek.text(BOB) == refusal
    assert await bot.storage.chats.subscriptions(DAVE) == ["space"]
    assert await bot.storage.chats.subscriptions(BOB) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_refusal_about_a_long_channel_title_fits_in_the_alert(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    # A private channel (no @name) is named by its title, up to 128 characters;
    # Telegram allows 200 in a button's alert.
    private_channel = -1_001_111_111_111
    await make_channel(bot, chat_id=private_channel, username=None, title="Ж" * 128, can_post=False)

    pressed = await bot.press(ALICE, ALICE, f"sub:space:{private_channel}")

    answer = pressed.answer()
    assert answer.ok
    assert answer.params["text"].startswith("I'm an administrator of ЖЖЖ")
    assert await bot.storage.chats.subscriptions(private_channel) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_failed_admin_check_asks_to_try_again(bot: BotHarness) -> None:
    make_group(bot)
    bot.fake.fail_next("getChatMember", ApiError.server_error())

    exchange = await bot.say(GROUP, "/subscribe space", user_id=ALICE)

    assert exchange.text(GROUP) == "I couldn't check your admin rights here; please try again."
    assert await bot.storage.chats.subscriptions(GROUP) == []
    # Not remembered: the next try asks Telegram again and succeeds.
    assert (await bot.say(GROUP, "/subscribe space", user_id=ALICE)).text(GROUP) == (
        "Subscribed to Space."
    )


async def test_a_channel_toggle_pressed_by_a_non_admin_is_refused(bot: BotHarness) -> None:
    await make_channel(bot)

    pressed = await bot.press(BOB, BOB, f"sub:space:{CHANNEL}")

    assert pressed.answer().params["text"] == (
        "Only admins of @spacenews can change its subscriptions."
    )
    assert await bot.storage.chats.subscriptions(CHANNEL) == []


FORGED_DATA = [
    "t:deleted_category",
    f"t:deleted_category:{BOB}",
    "t:",
    "t::",
    "t:space:not-a-number",
    "t:space:1:2",
    f"t:space:{GROUP}",  # a group Bob does not administer
    "t:space:0",
    "sub:deleted_category",
    f"unsub:space:{GROUP}",
    "sub:space:0",
    "unsub:",
    "s:abc:x",
    "s:-5:rover",
    "s:5:",
    "s:99999:rover",
    "s:5",
    "x",
    "\x00\x01\x7f garbage",
    "ÿþ<b>&amp;</i>",
    "🤖" * 16,
]


async def test_forged_and_stale_buttons_get_a_quiet_answer(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    make_group(bot)
    await bot.say(BOB, "/subscribe science")

    for data in FORGED_DATA:
        pressed = await bot.press(BOB, BOB, data)

        answer = pressed.answer()
        assert answer.ok, data
        assert pressed.sent() == [], data
        assert pressed.of("editMessageText") == [], data
        assert pressed.of("editMessageReplyMarkup") == [], data
    assert await bot.storage.chats.subscriptions(BOB) == ["science"]
    assert await bot.storage.chats.subscriptions(GROUP) == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_pressing_the_same_more_button_twice_is_quiet(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    results = message_id((await bot.say(ALICE, "/search rover")).reply(ALICE))

    # A double tap: both presses arrive before the edit replaces the button.
    exchange = await bot.ask(
        bot.fake.callback_query(ALICE, ALICE, "s:5:rover", message_id=results),
        bot.fake.callback_query(ALICE, ALICE, "s:5:rover", message_id=results),
    )

    assert len(exchange.of("answerCallbackQuery")) == 2
    first, second = exchange.of("editMessageText")
    assert first.ok
    assert second.status == 400 and "not modified" in str(second.response)
    assert exchange.sent() == []  # no apology from the error handler
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- being added ------------------------------------------------------------------


async def test_a_bot_added_to_a_group_welcomes_it_once_with_how_to_subscribe(
    bot: BotHarness,
) -> None:
    supergroup = -1_009_000_000_001
    channel = -1_009_000_000_002
    added = await bot.ask(
        bot.fake.my_chat_member(GROUP, "group", "left", "member"),
        bot.fake.my_chat_member(supergroup, "supergroup", "kicked", "administrator"),
    )

    for chat_id in (GROUP, supergroup):
        welcome = added.text(chat_id)
        assert welcome.startswith("Hi! I post news headlines by category.")
        assert "Admins: send /subscribe" in welcome
        assert "/subscribe space science" in welcome

    quiet = await bot.ask(
        # Promoted, demoted: already there, nothing to say.
        bot.fake.my_chat_member(GROUP, "group", "member", "administrator"),
        bot.fake.my_chat_member(supergroup, "supergroup", "administrator", "member"),
        # A channel: every subscriber would read it.
        bot.fake.my_chat_member(
            channel, "channel", "left", "administrator", can_post_messages=True
        ),
        # A user who had blocked the bot starts it again.
        bot.fake.my_chat_member(BOB, "private", "kicked", "member"),
    )

    assert quiet.sent() == []


# -- a channel picked by forwarding one of its posts ---------------------------------

PRIVATE_CHANNEL = -1_002_222_333_444


async def test_forwarding_a_post_of_a_private_channel_selects_it_for_subscribing(
    bot: BotHarness,
) -> None:
    await make_channel(bot, chat_id=PRIVATE_CHANNEL, username=None, title="Secret <Space>")

    menu = (
        await bot.ask(bot.fake.forwarded(ALICE, from_channel=PRIVATE_CHANNEL, text="/latest"))
    ).reply(ALICE)

    text = check_telegram_html(str(menu.params["text"]))
    assert text.startswith(f"Secret <Space> (id {PRIVATE_CHANNEL}). Tap to subscribe")
    assert f"/mysubs {PRIVATE_CHANNEL}" in text
    assert f"/unsubscribe {PRIVATE_CHANNEL} all" in text
    assert data_of(menu)[0] == f"sub:space:{PRIVATE_CHANNEL}"
    assert all(len(data.encode()) <= 64 for data in data_of(menu))

    pressed = await bot.press(ALICE, ALICE, data_of(menu)[0], message_id=message_id(menu))

    assert pressed.answer().params["text"] == "Subscribed to Space"
    assert await bot.storage.chats.subscriptions(PRIVATE_CHANNEL) == ["space"]
    assert await bot.storage.chats.subscriptions(ALICE) == []
    # The id the reply showed works with the commands.
    assert (await bot.say(ALICE, f"/mysubs {PRIVATE_CHANNEL}")).text(ALICE) == (
        "Secret <Space> receives: Space."
    )
    assert (await bot.say(ALICE, f"/unsubscribe {PRIVATE_CHANNEL} all")).text(ALICE) == (
        "Unsubscribed for Secret <Space> from everything."
    )


async def test_a_forwarded_post_is_checked_like_a_named_channel(bot: BotHarness) -> None:
    await make_channel(bot, chat_id=PRIVATE_CHANNEL, username=None, can_post=False)
    unknown_channel = -1_002_999_999_999
    bot.fake.add_chat(unknown_channel, "channel", title="Not Mine")
    bot.fake.set_member(unknown_channel, CAROL, "creator")

    exchange = await bot.ask(
        bot.fake.forwarded(ALICE, from_channel=PRIVATE_CHANNEL),  # the bot cannot post
        bot.fake.forwarded(BOB, from_channel=PRIVATE_CHANNEL),  # Bob is no admin there
        bot.fake.forwarded(CAROL, from_channel=unknown_channel),  # Carol is, but the bot is not
    )

    assert "can't post messages there" in exchange.text(ALICE)
    assert exchange.text(BOB) == "Only admins of Space News can change its subscriptions."
    assert "Add me as an administrator" in exchange.text(CAROL)
    assert exchange.of("editMessageReplyMarkup") == []
    assert all("reply_markup" not in c.params for c in exchange.sent())
    assert await bot.storage.chats.subscriptions(PRIVATE_CHANNEL) == []


async def test_a_post_forwarded_from_a_person_or_a_group_gets_a_short_explanation(
    bot: BotHarness,
) -> None:
    exchange = await bot.ask(
        bot.fake.forwarded(ALICE, from_user=BOB),
        bot.fake.forwarded(BOB, from_hidden_user="Someone Hidden"),
        bot.fake.forwarded(CAROL, from_chat=GROUP),
    )

    for chat_id in (ALICE, BOB):
        assert exchange.text(chat_id) == (
            "That message comes from a person, not a channel. To set up a channel, "
            "forward me any post from the channel."
        )
    assert "add me to it and send /subscribe there" in exchange.text(CAROL)
    assert bot.fake.calls("getChat") == []


async def test_a_channel_that_demotes_the_bot_keeps_its_cards_until_the_right_is_back(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    await bot.ask(bot.fake.channel_post(CHANNEL, "/subscribe space"))
    # An admin takes the "Post messages" right away: the next cards are refused.
    bot.fake.set_member(CHANNEL, BOT_ID, "administrator", can_post_messages=False)
    bot.feeds.serve(
        "/space.xml", space_items(item("space-x", "Launch window opens", hours_ago=0.1))
    )

    async def suspended() -> bool:
        return [c.id for c in await bot.storage.chats.suspended_chats()] == [CHANNEL]

    await eventually(suspended)
    assert await bot.storage.outbox.delivery_counts() == {"pending": 1}  # kept, not failed
    health = await bot.say(ALICE, "/health")
    assert f"chat {CHANNEL} @{CHANNEL_NAME} — suspended, 1 card waits" in health.text(ALICE)

    # Telegram tells the bot it may post again: the card goes out by itself.
    refused = len(bot.fake.calls("sendMessage", CHANNEL))
    bot.fake.set_member(CHANNEL, BOT_ID, "administrator", can_post_messages=True)
    await bot.ask(
        bot.fake.my_chat_member(
            CHANNEL, "channel", "administrator", "administrator", can_post_messages=True
        )
    )

    async def delivered() -> bool:
        return await bot.storage.outbox.delivery_counts() == {"sent": 1}

    await eventually(delivered)
    assert await bot.storage.chats.suspended_chats() == []
    cards = [c for c in bot.fake.calls("sendMessage", CHANNEL)[refused:] if c.ok]
    assert [check_telegram_html(c.params["text"]).split("\n")[0] for c in cards] == [
        "Launch window opens"
    ]


async def test_a_bot_demoted_in_a_channel_suspends_it_at_once(bot: BotHarness) -> None:
    await make_channel(bot)
    await bot.ask(bot.fake.channel_post(CHANNEL, "/subscribe space"))
    await bot.ask(bot.fake.my_chat_member(CHANNEL, "channel", "administrator", "member"))
    (suspended,) = await bot.storage.chats.suspended_chats()
    assert suspended.id == CHANNEL and "may not post" in suspended.reason
