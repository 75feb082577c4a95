"""The fake Bot API server against the real python-telegram-bot: polling,
handlers, the exceptions PTB raises for Telegram's errors, flood limits, and
getUpdates semantics checked over raw HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from tests import fake_telegram as fake_telegram_module
from tests.fake_telegram import (
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USERNAME,
    ApiError,
    FakeTelegram,
    FloodLimits,
    Hang,
    UploadedFile,
)

# The shared fixture, made visible here whether or not conftest.py imports it
# (assigned rather than imported so that test parameters may shadow it).
fake_telegram = fake_telegram_module.fake_telegram

# PTB 22 warns on every RetryAfter (even when building one) that retry_after will
# become a timedelta; that is PTB's business, not what these tests look at.
ignore_ptb_timedelta_warning = pytest.mark.filterwarnings(
    "ignore::telegram.warnings.PTBDeprecationWarning"
)

Context = ContextTypes.DEFAULT_TYPE


@contextlib.asynccontextmanager
async def polling(app: Application[Any, Any, Any, Any, Any, Any]) -> AsyncIterator[None]:
    """Run ``app`` the way the tests of the bot drive it, and shut it down cleanly."""
    async with app:
        await app.updater.start_polling(poll_interval=0.1)  # type: ignore[union-attr]
        await app.start()
        try:
            yield
        finally:
            await app.updater.stop()  # type: ignore[union-attr]
            await app.stop()


@contextlib.asynccontextmanager
async def bot_for(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with fake.make_bot() as bot:
        yield bot


def retry_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def api(fake: FakeTelegram, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    """One raw Bot API call with a JSON body: (HTTP status, JSON answer). urllib,
    because each new httpx client spends ~60 ms loading CA certificates."""
    request = urllib.request.Request(
        f"{fake.base_url}{fake.token}/{method}",
        data=json.dumps(params).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


# --- PTB end to end -------------------------------------------------------------


async def test_start_command_round_trip(fake_telegram: FakeTelegram) -> None:
    async def start(update: Update, context: Context) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(
            "<b>Welcome</b> to the news &amp; more",
            parse_mode="HTML",
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("start", start))
    async with polling(app):
        assert app.bot.username == DEFAULT_BOT_USERNAME
        fake_telegram.push_update(fake_telegram.message(5, "/start"))
        call = await fake_telegram.wait_for_async("sendMessage", chat_id=5)

    assert call.params["text"] == "<b>Welcome</b> to the news &amp; more"
    assert call.params["parse_mode"] == "HTML"
    # PTB JSON-encodes objects into form fields; the fake decodes them back.
    assert call.params["link_preview_options"] == {"is_disabled": True}
    message = call.result
    assert message["text"] == "Welcome to the news & more"
    assert message["entities"] == [{"type": "bold", "offset": 0, "length": 7}]
    assert message["chat"]["id"] == 5
    assert message["from"]["id"] == DEFAULT_BOT_ID
    assert message["message_id"] == 2  # the user's /start was message 1 in this chat
    assert fake_telegram.sent_texts(5) == ["<b>Welcome</b> to the news &amp; more"]
    # Polling confirmed the update, so a restart would not see it again.
    assert fake_telegram.pending_updates() == []
    assert [c.method for c in fake_telegram.calls()[:3]] == ["getMe", "deleteWebhook", "getUpdates"]


async def test_command_addressed_to_the_bot_in_a_group(fake_telegram: FakeTelegram) -> None:
    seen: list[list[str]] = []

    async def latest(update: Update, context: Context) -> None:
        seen.append(list(context.args or []))
        await context.bot.send_message(update.effective_chat.id, "ok")  # type: ignore[union-attr]

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("latest", latest))
    async with polling(app):
        fake_telegram.push_update(
            fake_telegram.message(-42, f"/latest@{DEFAULT_BOT_USERNAME} tech 5", title="Readers")
        )
        await fake_telegram.wait_for_async("sendMessage", chat_id=-42)
    assert seen == [["tech", "5"]]


async def test_channel_post_commands_need_the_channel_filter(fake_telegram: FakeTelegram) -> None:
    async def latest(update: Update, context: Context) -> None:
        await context.bot.send_message(update.effective_chat.id, "posted")  # type: ignore[union-attr]

    app = fake_telegram.application_builder().build()
    app.add_handler(CommandHandler("latest", latest, filters=filters.UpdateType.CHANNEL_POSTS))
    async with polling(app):
        fake_telegram.push_update(
            fake_telegram.channel_post(-1001234, "/latest", title="News", username="newschan")
        )
        call = await fake_telegram.wait_for_async("sendMessage", chat_id=-1001234)
    # Channel messages are signed by the channel, not the bot.
    assert call.result["sender_chat"]["username"] == "newschan"
    assert "from" not in call.result


async def test_button_press_is_answered_and_the_message_edited(fake_telegram: FakeTelegram) -> None:
    async def pressed(update: Update, context: Context) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Saved")
        await query.edit_message_text(f"You picked {query.data}")

    app = fake_telegram.application_builder().build()
    app.add_handler(CallbackQueryHandler(pressed))
    async with polling(app):
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Tech", callback_data="cat:tech")]])
        sent = await app.bot.send_message(7, "Pick one", reply_markup=keyboard)
        fake_telegram.push_update(
            fake_telegram.callback_query(7, 7, "cat:tech", message_id=sent.message_id)
        )
        edit = await fake_telegram.wait_for_async("editMessageText", chat_id=7)
        # Telegram refuses an edit that changes nothing.
        with pytest.raises(BadRequest, match="Message is not modified"):
            await app.bot.edit_message_text("You picked cat:tech", 7, sent.message_id)

    assert edit.result["text"] == "You picked cat:tech"
    assert edit.result["message_id"] == sent.message_id
    assert fake_telegram.calls("answerCallbackQuery")[0].params["text"] == "Saved"


async def test_my_chat_member_updates_reach_the_handler_and_change_the_fake(
    fake_telegram: FakeTelegram,
) -> None:
    changes: list[tuple[int, str, str]] = []
    done = asyncio.Event()

    async def membership(update: Update, context: Context) -> None:
        change = update.my_chat_member
        assert change is not None
        changes.append(
            (change.chat.id, change.old_chat_member.status, change.new_chat_member.status)
        )
        if len(changes) == 2:
            done.set()

    app = fake_telegram.application_builder().build()
    app.add_handler(ChatMemberHandler(membership, ChatMemberHandler.MY_CHAT_MEMBER))
    async with polling(app):
        fake_telegram.push_update(
            fake_telegram.my_chat_member(
                -1009, "channel", "left", "administrator", can_post_messages=False
            )
        )
        fake_telegram.push_update(fake_telegram.my_chat_member(5, "private", "member", "kicked"))
        await asyncio.wait_for(done.wait(), 5)

        assert changes == [(-1009, "left", "administrator"), (5, "member", "kicked")]
        # The fake now answers as Telegram would after these changes.
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await app.bot.send_message(5, "hello?")
        with pytest.raises(BadRequest, match="Need administrator rights in the channel chat"):
            await app.bot.send_message(-1009, "post")
        member = await app.bot.get_chat_member(-1009, DEFAULT_BOT_ID)
        assert member.status == "administrator"
        assert member.can_post_messages is False


# --- Telegram errors become PTB exceptions -----------------------------------------


@ignore_ptb_timedelta_warning
async def test_retry_after(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", ApiError.retry_after(7))
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(5, "x")
        assert retry_seconds(caught.value) == 7
        await bot.send_message(5, "next one goes through")
    assert [c.status for c in fake_telegram.calls("sendMessage")] == [429, 200]
    assert fake_telegram.calls("sendMessage")[0].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }


@pytest.mark.parametrize(
    ("error", "exception", "message"),
    [
        (ApiError.blocked_by_user(), Forbidden, "Forbidden: bot was blocked by the user"),
        (ApiError.kicked_from_group(), Forbidden, "Forbidden: bot was kicked from the group chat"),
        (ApiError.not_channel_member(), Forbidden, "not a member of the channel chat"),
        (ApiError.user_deactivated(), Forbidden, "user is deactivated"),
        (ApiError.chat_not_found(), BadRequest, "Chat not found"),
        (ApiError.cant_parse_entities(), BadRequest, "Can't parse entities"),
        (ApiError.server_error(), NetworkError, "Internal Server Error"),
        (ApiError.bad_gateway(), NetworkError, "Bad Gateway"),
        (ApiError(409, "Conflict: terminated by other getUpdates request"), Conflict, "Conflict"),
    ],
)
async def test_injected_errors(
    fake_telegram: FakeTelegram, error: ApiError, exception: type[Exception], message: str
) -> None:
    fake_telegram.fail_next("sendMessage", error)
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(exception) as caught:
            await bot.send_message(5, "x")
        assert message in str(caught.value)
        await bot.send_message(5, "only the next call failed")


async def test_chat_migrated(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", ApiError.migrated(-1005550001))
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(-555, "x")
    assert caught.value.new_chat_id == -1005550001


async def test_failures_can_target_one_chat_and_repeat(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", ApiError.blocked_by_user(), chat_id=6, times=2)
    async with bot_for(fake_telegram) as bot:
        await bot.send_message(5, "chat 5 is fine")
        for _ in range(2):
            with pytest.raises(Forbidden):
                await bot.send_message(6, "x")
        await bot.send_message(6, "the rule is used up")
        fake_telegram.fail_next("*", ApiError.server_error(), times=None)
        with pytest.raises(NetworkError):
            await bot.get_me()
        with pytest.raises(NetworkError):
            await bot.send_message(5, "x")
        fake_telegram.clear_failures()
        await bot.send_message(5, "cleared")
    assert len(fake_telegram.sent_messages()) == 3


async def test_hang_makes_the_client_time_out(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", Hang(5))
    async with bot_for(fake_telegram) as bot:
        # Hang(5) answers after 5 s: TimedOut means the client gave up first.
        with pytest.raises(TimedOut):
            await bot.send_message(5, "x", read_timeout=0.3)
        await bot.send_message(5, "the server still answers others")
    # Stopping the server (fixture teardown) cuts the pending hang short.


async def test_hang_then_error(fake_telegram: FakeTelegram) -> None:
    fake_telegram.fail_next("sendMessage", Hang(0.2, then=ApiError.server_error()))
    async with bot_for(fake_telegram) as bot:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="Internal Server Error"):
            await bot.send_message(5, "x")
        assert time.monotonic() - started >= 0.2


async def test_going_offline_and_back(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        await bot.send_message(5, "before")
        port = fake_telegram.port

        fake_telegram.go_offline()
        with pytest.raises(NetworkError):
            await bot.send_message(5, "refused")

        fake_telegram.go_online()
        assert fake_telegram.port == port
        await bot.send_message(5, "after")

        fake_telegram.go_offline("502")
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(5, "through a sick proxy")
        fake_telegram.go_online()
        await bot.send_message(5, "healthy again")

    assert fake_telegram.sent_texts(5) == ["before", "after", "healthy again"]
    assert fake_telegram.offline_hits == 1  # the refused connection never reached us


async def test_wrong_token_is_invalid(fake_telegram: FakeTelegram) -> None:
    bot = Bot("1:not-the-token", base_url=fake_telegram.base_url)
    with pytest.raises(InvalidToken):
        await bot.initialize()


# --- validation Telegram does ------------------------------------------------------


async def test_invalid_html_is_refused_like_telegram(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(BadRequest) as caught:
            await bot.send_message(5, "Headline<p>body</p>", parse_mode="HTML")
        # PTB strips "Bad Request: " and str.capitalize()s the rest (lowercasing it).
        assert caught.value.message == (
            'Can\'t parse entities: unsupported start tag "p" at byte offset 8'
        )
        with pytest.raises(BadRequest, match="Can't parse entities"):
            await bot.send_message(5, "Tom & Jerry", parse_mode="HTML")
        # Without a parse mode the same text is just text.
        await bot.send_message(5, "Tom & Jerry <p>")
    assert fake_telegram.calls("sendMessage")[0].response["description"] == (  # type: ignore[index]
        'Bad Request: can\'t parse entities: Unsupported start tag "p" at byte offset 8'
    )


async def test_lenient_html_mode(fake_telegram: FakeTelegram) -> None:
    fake_telegram.strict_html = False
    async with bot_for(fake_telegram) as bot:
        message = await bot.send_message(5, "Tom & Jerry &nbsp;", parse_mode="HTML")
    assert message.text == "Tom & Jerry &nbsp;"


async def test_message_length_is_counted_in_utf16_after_parsing(
    fake_telegram: FakeTelegram,
) -> None:
    async with bot_for(fake_telegram) as bot:
        await bot.send_message(5, "😀" * 2048)
        await bot.send_message(5, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(5, "😀" * 2049)
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(5, "<b> </b>", parse_mode="HTML")


async def test_callback_data_is_limited_to_64_bytes(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        fits = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="é" * 32)]])
        await bot.send_message(5, "x", reply_markup=fits)
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="é" * 33)]])
        with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
            await bot.send_message(5, "x", reply_markup=too_long)


async def test_commands_are_validated_and_stored_per_scope(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("latest", "News")])
        assert [c.command for c in await bot.get_my_commands()] == ["start", "latest"]
        await bot.set_my_commands([BotCommand("start", "Beginnen")], language_code="de")
        assert len(await bot.get_my_commands()) == 2
        assert fake_telegram.commands(language_code="de") == [
            {"command": "start", "description": "Beginnen"}
        ]
        with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
            await bot.set_my_commands([BotCommand("Latest-News", "bad name")])
        await bot.delete_my_commands()
        assert await bot.get_my_commands() == ()


async def test_chats_members_and_administrators(fake_telegram: FakeTelegram) -> None:
    group = -1001777
    fake_telegram.add_chat(group, "supergroup", title="Readers")
    fake_telegram.set_member(group, 1001, "creator")
    fake_telegram.set_member(group, DEFAULT_BOT_ID, "administrator")
    async with bot_for(fake_telegram) as bot:
        chat = await bot.get_chat(group)
        assert (chat.type, chat.title) == ("supergroup", "Readers")
        assert (await bot.get_chat_member(group, 1001)).status == "creator"
        assert (await bot.get_chat_member(group, 2002)).status == "member"  # not configured
        admins = await bot.get_chat_administrators(group)
        assert {a.user.id for a in admins} == {1001, DEFAULT_BOT_ID}

        fake_telegram.unknown_member = "chat_not_found"
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.get_chat_member(group, 2002)

        assert await bot.leave_chat(group) is True
        with pytest.raises(Forbidden, match="bot is not a member of the supergroup chat"):
            await bot.send_message(group, "still here?")


async def test_strict_chats_refuse_unknown_ids(fake_telegram: FakeTelegram) -> None:
    fake_telegram.strict_chats = True
    fake_telegram.add_chat(5)
    async with bot_for(fake_telegram) as bot:
        await bot.send_message(5, "known")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(6, "unknown")


async def test_migration_moves_the_group(fake_telegram: FakeTelegram) -> None:
    fake_telegram.push_update(fake_telegram.migrate(-555, -1005550001, title="Readers"))
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(ChatMigrated) as caught:
            await bot.send_message(-555, "x")
        assert caught.value.new_chat_id == -1005550001
        sent = await bot.send_message(-1005550001, "x")
    assert sent.chat.type == "supergroup"
    assert sent.chat.title == "Readers"


async def test_unknown_methods_are_recorded_and_succeed(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        assert await bot.do_api_request("someFutureMethod", api_kwargs={"flag": True})
    assert fake_telegram.unknown_methods == ["someFutureMethod"]
    assert fake_telegram.calls("somefuturemethod")[0].params == {"flag": True}


# --- flood limits ------------------------------------------------------------------


@ignore_ptb_timedelta_warning
async def test_flood_limit_for_one_private_chat(fake_telegram: FakeTelegram) -> None:
    # A minute between messages: "too soon" is too soon however slowly this
    # machine sends, and a shorter interval then lets the chat go on.
    fake_telegram.enable_flood_limits(FloodLimits(private_chat_interval=60, tolerance=0.05))
    async with bot_for(fake_telegram) as bot:
        await bot.send_message(5, "first")
        await bot.send_message(6, "another chat is not affected")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(5, "too soon")
        wait = retry_seconds(caught.value)
        assert wait == int(wait) and 1 <= wait <= 60  # whole seconds, the rest of the minute
        fake_telegram.enable_flood_limits(FloodLimits(private_chat_interval=0.3, tolerance=0.05))
        await asyncio.sleep(0.26)  # at least the interval minus tolerance since "first"
        await bot.send_message(5, "in time")
    assert fake_telegram.flood_429_count == 1


@ignore_ptb_timedelta_warning
async def test_flood_limit_per_group_per_minute(fake_telegram: FakeTelegram) -> None:
    fake_telegram.enable_flood_limits(FloodLimits(group_per_minute=3))
    async with bot_for(fake_telegram) as bot:
        for i in range(3):
            await bot.send_message(-42, f"card {i}")
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(-42, "one too many")
        assert 55 <= retry_seconds(caught.value) <= 60
        await bot.send_message(-43, "other groups have their own budget")
    assert fake_telegram.flood_429_count == 1


@ignore_ptb_timedelta_warning
async def test_flood_limit_per_bot(fake_telegram: FakeTelegram) -> None:
    fake_telegram.enable_flood_limits(FloodLimits(per_bot_per_second=5))
    async with bot_for(fake_telegram) as bot:
        for chat_id in range(1, 6):
            await bot.send_message(chat_id, "x")
        with pytest.raises(RetryAfter):
            await bot.send_message(6, "the sixth within a second")
        fake_telegram.disable_flood_limits()
        await bot.send_message(6, "limits off")
    assert fake_telegram.flood_429_count == 1
    assert [c.status for c in fake_telegram.calls("sendMessage")].count(429) == 1


async def test_flood_limits_are_off_by_default(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        for i in range(40):
            await bot.send_message(5, f"burst {i}")
    assert fake_telegram.flood_429_count == 0


# --- getUpdates semantics, over raw HTTP --------------------------------------------


def test_get_updates_hands_out_and_confirms_by_offset(fake_telegram: FakeTelegram) -> None:
    ids = [
        fake_telegram.push_update(fake_telegram.message(5, f"m{i}"))["update_id"] for i in range(3)
    ]

    status, answer = api(fake_telegram, "getUpdates", limit=2)
    assert status == 200
    assert [u["update_id"] for u in answer["result"]] == ids[:2]

    # Not confirmed yet: asked again, the same ones come back.
    _, answer = api(fake_telegram, "getUpdates")
    assert [u["update_id"] for u in answer["result"]] == ids

    _, answer = api(fake_telegram, "getUpdates", offset=ids[1] + 1)
    assert [u["update_id"] for u in answer["result"]] == ids[2:]
    assert [u["update_id"] for u in fake_telegram.pending_updates()] == ids[2:]

    _, answer = api(fake_telegram, "getUpdates", offset=ids[2] + 1, timeout=0)
    assert answer == {"ok": True, "result": []}


def test_negative_offset_keeps_only_the_last_updates(fake_telegram: FakeTelegram) -> None:
    ids = [
        fake_telegram.push_update(fake_telegram.message(5, f"m{i}"))["update_id"] for i in range(4)
    ]
    _, answer = api(fake_telegram, "getUpdates", offset=-1)
    assert [u["update_id"] for u in answer["result"]] == ids[-1:]


def test_long_poll_wakes_up_when_an_update_arrives() -> None:
    answers: list[tuple[int, dict[str, Any]]] = []
    with FakeTelegram(long_poll_cap=30) as fake:
        started = time.monotonic()
        client = threading.Thread(
            target=lambda: answers.append(api(fake, "getUpdates", timeout=30))
        )
        client.start()
        fake.wait_for("getUpdates", answered=False)  # the long poll is waiting
        fake.push_update(fake.message(5, "hi"))
        client.join(timeout=60)  # a hang guard
        _, answer = answers[0]
        assert [u["message"]["text"] for u in answer["result"]] == ["hi"]
        assert time.monotonic() - started < 30  # woken up, not ended by its timeout


def test_long_poll_is_capped() -> None:
    with FakeTelegram(long_poll_cap=0.2) as fake:
        started = time.monotonic()
        _, answer = api(fake, "getUpdates", timeout=30)
        assert answer["result"] == []
        # Held for the cap (0.2 s), not for the 30 s asked for.
        assert 0.15 < time.monotonic() - started < 30


def test_a_second_poller_terminates_the_first(fake_telegram: FakeTelegram) -> None:
    answers: list[tuple[int, dict[str, Any]]] = []
    first = threading.Thread(
        target=lambda: answers.append(api(fake_telegram, "getUpdates", timeout=5))
    )
    first.start()
    fake_telegram.wait_for("getUpdates", answered=False)
    api(fake_telegram, "getUpdates", timeout=0)
    first.join(timeout=5)
    status, answer = answers[0]
    assert status == 409
    assert answer["description"].startswith("Conflict: terminated by other getUpdates request")


def test_allowed_updates_is_remembered(fake_telegram: FakeTelegram) -> None:
    fake_telegram.push_update(fake_telegram.message(5, "text"))
    fake_telegram.push_update(fake_telegram.callback_query(5, 5, "data"))
    _, answer = api(fake_telegram, "getUpdates", allowed_updates=["callback_query"])
    assert [next(k for k in u if k != "update_id") for u in answer["result"]] == ["callback_query"]
    fake_telegram.push_update(fake_telegram.message(5, "text again"))
    _, answer = api(fake_telegram, "getUpdates")  # no allowed_updates: the old setting holds
    assert [next(k for k in u if k != "update_id") for u in answer["result"]] == ["callback_query"]


def test_webhook_blocks_get_updates(fake_telegram: FakeTelegram) -> None:
    status, _ = api(fake_telegram, "setWebhook", url="http://insecure.example/hook")
    assert status == 400
    assert api(fake_telegram, "setWebhook", url="https://example.com/hook")[0] == 200
    _, info = api(fake_telegram, "getWebhookInfo")
    assert info["result"]["url"] == "https://example.com/hook"

    status, answer = api(fake_telegram, "getUpdates")
    assert (status, answer["error_code"]) == (409, 409)
    assert "use deleteWebhook" in answer["description"]

    fake_telegram.push_update(fake_telegram.message(5, "queued"))
    api(fake_telegram, "deleteWebhook", drop_pending_updates=True)
    assert api(fake_telegram, "getUpdates") == (200, {"ok": True, "result": []})


def test_updates_must_be_pushed_in_order(fake_telegram: FakeTelegram) -> None:
    first = fake_telegram.message(5, "first")
    second = fake_telegram.message(5, "second")
    fake_telegram.push_update(second)
    with pytest.raises(ValueError, match="in the order they were built"):
        fake_telegram.push_update(first)
    assigned = fake_telegram.push_update({"message": second["message"]})
    assert assigned["update_id"] > second["update_id"]


# --- request decoding ----------------------------------------------------------------


def test_form_json_multipart_and_query_parameters(fake_telegram: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
    with httpx.Client(base_url=f"{fake_telegram.base_url}{fake_telegram.token}") as http:
        # Form fields as PTB sends them: non-strings JSON-encoded, strings as they are.
        http.post(
            "/sendMessage",
            data={
                "chat_id": "5",
                "text": "123",
                "reply_markup": json.dumps(markup),
                "disable_notification": "true",
            },
        )
        http.post("/sendMessage", json={"chat_id": "@newschan", "text": "true"})
        http.get("/getChat", params={"chat_id": "-1001"})
        http.post(
            "/sendDocument",
            data={"chat_id": "5", "caption": "42"},
            files={"document": ("feed.xml", b"<rss/>", "application/xml")},
        )

    form, as_json, query, multipart = fake_telegram.calls()
    assert form.params == {
        "chat_id": 5,
        "text": "123",
        "reply_markup": markup,
        "disable_notification": True,
    }
    assert form.ok
    assert as_json.params == {"chat_id": "@newschan", "text": "true"}
    assert as_json.response["description"] == "Bad Request: chat not found"  # type: ignore[index]
    assert (query.method, query.params) == ("getChat", {"chat_id": -1001})
    assert multipart.params["caption"] == "42"
    assert multipart.params["document"] == UploadedFile("feed.xml", "application/xml", b"<rss/>")
    assert multipart.ok and fake_telegram.unknown_methods == []


def test_method_names_are_case_insensitive(fake_telegram: FakeTelegram) -> None:
    status, answer = api(fake_telegram, "getme")
    assert status == 200
    assert answer["result"]["username"] == DEFAULT_BOT_USERNAME
    assert fake_telegram.calls("getMe")[0].method == "getMe"


# --- builders --------------------------------------------------------------------------


def test_builders_produce_updates_ptb_understands(fake_telegram: FakeTelegram) -> None:
    bot = fake_telegram.make_bot()
    updates = [
        fake_telegram.message(5, "👋 /start@newsbot_test_bot now", username="alice"),
        fake_telegram.message(-42, "/latest tech", chat_type="group", title="Readers"),
        fake_telegram.channel_post(-1009, "/latest", title="News"),
        fake_telegram.callback_query(5, 5, "cat:tech"),
        fake_telegram.my_chat_member(
            -1009, "channel", "left", "administrator", can_post_messages=True
        ),
        fake_telegram.migrate(-42, -1004200),
        fake_telegram.migrate_from(-1004200, -42),
    ]
    assert [u["update_id"] for u in updates] == sorted(u["update_id"] for u in updates)
    parsed = [Update.de_json(u, bot) for u in updates]

    private, group, post, query, member, migrate, migrate_from = parsed
    assert private.message is not None and private.effective_user is not None
    assert private.effective_user.username == "alice"
    assert private.message.parse_entities([MessageEntity.BOT_COMMAND]) == {
        private.message.entities[0]: "/start@newsbot_test_bot"
    }
    assert private.message.entities[0].offset == 3  # after "👋 ", in UTF-16 units
    assert group.effective_chat is not None and group.effective_chat.type == "group"
    assert post.channel_post is not None and post.channel_post.from_user is None
    assert post.channel_post.sender_chat is not None and post.channel_post.sender_chat.id == -1009
    assert query.callback_query is not None and query.callback_query.message is not None
    assert query.callback_query.data == "cat:tech"
    assert member.my_chat_member is not None
    assert member.my_chat_member.new_chat_member.can_post_messages is True  # type: ignore[attr-defined]
    assert migrate.message is not None and migrate.message.migrate_to_chat_id == -1004200
    assert migrate_from.message is not None and migrate_from.message.migrate_from_chat_id == -42


def test_command_entities_only_for_real_commands(fake_telegram: FakeTelegram) -> None:
    def commands(text: str) -> list[str]:
        update = fake_telegram.message(5, text)
        return [
            text[e["offset"] : e["offset"] + e["length"]]
            for e in update["message"].get("entities", [])
        ]

    assert commands("/start") == ["/start"]
    assert commands("/search rust async") == ["/search"]
    assert commands("see /help, or /about") == ["/help", "/about"]
    assert commands("path/to/file and http://x/y") == []
    assert commands("1/2") == []


# --- waiting -----------------------------------------------------------------------------


def test_sync_wait_for_and_its_failure_message(fake_telegram: FakeTelegram) -> None:
    threading.Timer(0.1, lambda: api(fake_telegram, "sendMessage", chat_id=9, text="late")).start()
    call = fake_telegram.wait_for(lambda c: c.params.get("text") == "late", timeout=5)
    assert call.chat_id == 9 and call.ok

    with pytest.raises(
        AssertionError,
        match=r"no 1× sendMessage to chat 10 within 0.1 s; calls so far: sendMessage\(chat 9\)",
    ):
        fake_telegram.wait_for("sendMessage", timeout=0.1, chat_id=10)


async def test_sync_wait_for_refuses_to_block_the_event_loop(fake_telegram: FakeTelegram) -> None:
    with pytest.raises(RuntimeError, match="wait_for_async"):
        fake_telegram.wait_for("sendMessage", timeout=0.1)


async def test_wait_for_async_counts_calls(fake_telegram: FakeTelegram) -> None:
    async with bot_for(fake_telegram) as bot:
        senders = [asyncio.create_task(bot.send_message(5, f"m{i}")) for i in range(3)]
        third = await fake_telegram.wait_for_async("sendMessage", count=3, chat_id=5)
        await asyncio.gather(*senders)
    assert third.ok
    with pytest.raises(AssertionError, match="no 4× sendMessage"):
        await fake_telegram.wait_for_async("sendMessage", count=4, timeout=0.05)


async def test_async_context_manager_and_restart() -> None:
    async with FakeTelegram(bot_id=77, username="other_bot") as fake, bot_for(fake) as bot:
        assert (bot.id, bot.username) == (77, "other_bot")
    assert not fake.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", fake._port), timeout=1)


def test_stop_cuts_pending_long_polls_and_hangs_short() -> None:
    fake = FakeTelegram(long_poll_cap=30).start()
    fake.fail_next("sendMessage", Hang(30))

    def call(method: str, **params: Any) -> None:
        # The answer, if any, is cut off by the stop: only ending quickly matters.
        with contextlib.suppress(Exception):
            api(fake, method, **params)

    clients = [
        threading.Thread(target=call, args=("getUpdates",), kwargs={"timeout": 30}),
        threading.Thread(target=call, args=("sendMessage",), kwargs={"chat_id": 5, "text": "x"}),
    ]
    for client in clients:
        client.start()
    fake.wait_for("getUpdates", answered=False)
    fake.wait_for("sendMessage", answered=False)

    fake.stop()
    for client in clients:
        client.join(timeout=20)  # far below the 30 s they would otherwise wait
    assert not any(client.is_alive() for client in clients)


def test_internal_errors_are_reported_not_swallowed(fake_telegram: FakeTelegram) -> None:
    status, answer = api(fake_telegram, "getUpdates", offset="not a number")
    assert status == 500
    assert "fake Telegram failed" in answer["description"]
    assert len(fake_telegram.internal_errors) == 1
    fake_telegram.internal_errors.clear()  # else the fixture fails this test


async def test_forwarded_messages_carry_their_origin(fake_telegram: FakeTelegram) -> None:
    fake = fake_telegram
    fake.add_chat(-1001234, "channel", title="Private Channel")
    origins: list[Any] = []
    all_four = asyncio.Event()

    async def on_forward(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        origins.append(update.effective_message.forward_origin)
        if len(origins) == 4:
            all_four.set()

    app = fake.application_builder().build()
    app.add_handler(MessageHandler(filters.FORWARDED, on_forward))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0)
        fake.push_update(fake.forwarded(5, from_channel=-1001234, text="/latest"))
        fake.push_update(fake.forwarded(5, from_user=77))
        fake.push_update(fake.forwarded(5, from_hidden_user="Someone"))
        fake.push_update(fake.forwarded(5, from_chat=-4005))
        await asyncio.wait_for(all_four.wait(), timeout=10)
        await app.updater.stop()
        await app.stop()

    channel, user, hidden, chat = origins
    assert isinstance(channel, MessageOriginChannel)
    assert (channel.chat.id, channel.chat.title, channel.chat.type) == (
        -1001234,
        "Private Channel",
        "channel",
    )
    assert isinstance(user, MessageOriginUser) and user.sender_user.id == 77
    assert isinstance(hidden, MessageOriginHiddenUser) and hidden.sender_user_name == "Someone"
    assert isinstance(chat, MessageOriginChat) and chat.sender_chat.id == -4005
    with pytest.raises(ValueError):
        fake.forwarded(5)


def test_deleting_a_channel_post_needs_the_delete_messages_right(
    fake_telegram: FakeTelegram,
) -> None:
    fake = fake_telegram
    channel = -1001999
    fake.add_chat(channel, "channel", title="News")
    fake.set_member(channel, fake.bot_id, "administrator")
    post = fake.push_update(fake.channel_post(channel, "/subscribe space"))["channel_post"]
    status, own = api(fake, "sendMessage", chat_id=channel, text="Subscribed.")
    assert status == 200

    # The bot's own post goes; an admin's post needs the right.
    assert (
        api(fake, "deleteMessage", chat_id=channel, message_id=own["result"]["message_id"])[0]
        == 200
    )
    status, answer = api(fake, "deleteMessage", chat_id=channel, message_id=post["message_id"])
    assert (status, answer["description"]) == (400, "Bad Request: message can't be deleted")
    status, answer = api(
        fake, "editMessageText", chat_id=channel, message_id=post["message_id"], text="x"
    )
    assert (status, answer["description"]) == (400, "Bad Request: message can't be edited")

    fake.set_member(channel, fake.bot_id, "administrator", can_delete_messages=True)
    assert api(fake, "deleteMessage", chat_id=channel, message_id=post["message_id"])[0] == 200
    status, answer = api(fake, "deleteMessage", chat_id=channel, message_id=post["message_id"])
    assert (status, answer["description"]) == (400, "Bad Request: message to delete not found")

    # In a private chat a bot may delete what the user sent.
    said = fake.push_update(fake.message(5, "hello"))["message"]
    assert api(fake, "deleteMessage", chat_id=5, message_id=said["message_id"])[0] == 200


# --- forum topics -------------------------------------------------------------------


async def test_a_forum_takes_cards_in_open_topics_and_refuses_general_closed_and_deleted(
    fake_telegram: FakeTelegram,
) -> None:
    forum = -1_000_000_007_001
    fake_telegram.add_chat(forum, "supergroup", title="Forum", is_forum=True)
    launches = fake_telegram.create_topic(forum, "Launches")
    lab = fake_telegram.create_topic(forum, "Lab")
    update = fake_telegram.message(forum, "/mysubs", thread_id=launches)
    assert update["message"]["chat"]["is_forum"] is True
    assert update["message"]["message_thread_id"] == launches
    assert update["message"]["reply_to_message"]["forum_topic_created"]["name"] == "Launches"

    async with bot_for(fake_telegram) as bot:
        sent = await bot.send_message(forum, "into the topic", message_thread_id=launches)
        assert sent.message_thread_id == launches and sent.is_topic_message
        general = await bot.send_message(forum, "into General")
        assert general.message_thread_id is None
        # General has no usable thread id.
        with pytest.raises(BadRequest, match="Message thread not found"):
            await bot.send_message(forum, "no", message_thread_id=1)
        fake_telegram.close_topic(forum, launches)
        with pytest.raises(BadRequest, match="Topic_closed"):
            await bot.send_message(forum, "no", message_thread_id=launches)
        fake_telegram.delete_topic(forum, lab)
        with pytest.raises(BadRequest, match="Message thread not found"):
            await bot.send_message(forum, "no", message_thread_id=lab)


# --- inline mode and photos -------------------------------------------------------


def _article_result(result_id: str, text: str = "<b>Story</b>") -> dict[str, Any]:
    return {
        "type": "article",
        "id": result_id,
        "title": "Story",
        "input_message_content": {"message_text": text, "parse_mode": "HTML"},
    }


async def test_inline_queries_reach_the_handler_and_the_answer_is_recorded(
    fake_telegram: FakeTelegram,
) -> None:
    from telegram import InlineQueryResultArticle, InputTextMessageContent
    from telegram.ext import InlineQueryHandler

    async def answer(update: Update, context: Context) -> None:
        query = update.inline_query
        assert query is not None
        results = [
            InlineQueryResultArticle(
                f"r{n}", f"Story {n}", InputTextMessageContent(f"<b>{query.query} {n}</b>", "HTML")
            )
            for n in range(3)
        ]
        await query.answer(results, cache_time=30, next_offset=f"{query.offset or 0}+3")

    app = fake_telegram.application_builder().build()
    app.add_handler(InlineQueryHandler(answer))
    async with polling(app):
        fake_telegram.push_update(fake_telegram.inline_query(7, "mars rover", offset="10"))
        call = await fake_telegram.wait_for_async("answerInlineQuery")
    assert call.ok, call.response
    assert call.params["next_offset"] == "10+3"  # a string, however it looks
    assert call.params["cache_time"] == 30
    assert [r["id"] for r in call.params["results"]] == ["r0", "r1", "r2"]
    posted = fake_telegram.post_inline_result(call, "r1", 7)
    assert posted["text"] == "mars rover 1"
    assert posted["entities"][0]["type"] == "bold"
    assert posted["via_bot"]["id"] == DEFAULT_BOT_ID


def test_answer_inline_query_checks_what_telegram_checks(fake_telegram: FakeTelegram) -> None:
    def query_id() -> str:
        update = fake_telegram.push_update(fake_telegram.inline_query(7, "x"))
        return str(update["inline_query"]["id"])

    refused = {
        "RESULTS_TOO_MUCH": [_article_result(str(n)) for n in range(51)],
        "RESULT_ID_DUPLICATE": [_article_result("a"), _article_result("a")],
        "RESULT_ID_INVALID": [_article_result("x" * 65)],
        "can't parse entities": [_article_result("a", "<b>open")],
        "message is too long": [_article_result("a", "x" * 4097)],
    }
    for description, results in refused.items():
        status, body = api(
            fake_telegram, "answerInlineQuery", inline_query_id=query_id(), results=results
        )
        assert status == 400 and description.lower() in body["description"].lower(), body
    status, body = api(
        fake_telegram,
        "answerInlineQuery",
        inline_query_id=query_id(),
        results=[],
        next_offset="9" * 65,
    )
    assert status == 400 and "NEXT_OFFSET_INVALID" in body["description"]

    fits = query_id()
    results = [_article_result("é" * 32)] + [_article_result(str(n)) for n in range(49)]
    status, body = api(
        fake_telegram,
        "answerInlineQuery",
        inline_query_id=fits,
        results=results,
        next_offset="9" * 64,
    )
    assert status == 200, body
    # One answer per query, and only to queries Telegram sent.
    again = api(fake_telegram, "answerInlineQuery", inline_query_id=fits, results=[])
    unknown = api(fake_telegram, "answerInlineQuery", inline_query_id="123", results=[])
    assert again[0] == unknown[0] == 400


async def test_send_photo_keeps_the_uploaded_file_and_checks_the_caption(
    fake_telegram: FakeTelegram,
) -> None:
    png = (
        b"\x89PNG\r\n\x1a\n"
        + b"\x00\x00\x00\rIHDR"
        + (37).to_bytes(4, "big") * 2
        + b"\x08\x00\x00\x00\x00"
    )
    async with bot_for(fake_telegram) as bot:
        sent = await bot.send_photo(
            5, png, caption="<b>Scan me</b>", parse_mode="HTML", filename="qr.png"
        )
        with pytest.raises(BadRequest, match=r"(?i)caption is too long"):
            await bot.send_photo(5, png, caption="x" * 1025)
        with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
            await bot.send_photo(5, b"not an image", filename="x.png")
        by_url = await bot.send_photo(5, "https://images.example/a.jpg")
    call = fake_telegram.calls("sendPhoto")[0]
    upload = call.params["photo"]
    assert isinstance(upload, UploadedFile) and upload.data == png
    assert sent.caption == "Scan me" and sent.caption_entities[0].type == "bold"
    assert (sent.photo[-1].width, sent.photo[-1].height) == (37, 37)
    assert by_url.photo and by_url.caption is None


async def test_documents_go_up_with_send_document_and_come_back_through_get_file(
    fake_telegram: FakeTelegram,
) -> None:
    data = b'<?xml version="1.0"?><opml version="2.0"><body/></opml>'
    async with bot_for(fake_telegram) as bot:
        sent = await bot.send_document(
            5, data, filename="feeds.opml", caption="<b>Feeds</b>", parse_mode="HTML"
        )
        assert sent.document is not None and sent.document.file_name == "feeds.opml"
        assert sent.document.file_size == len(data) and sent.caption == "Feeds"
        file = await bot.get_file(sent.document.file_id)
        assert bytes(await file.download_as_bytearray()) == data
        # A known file_id is sent again without uploading it.
        again = await bot.send_document(6, sent.document.file_id)
        assert again.document is not None and again.document.file_id == sent.document.file_id
        with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
            await bot.get_file("no-such-file")
        with pytest.raises(BadRequest, match=r"(?i)must be non-empty"):
            await bot.send_document(5, b"", filename="empty.txt")
    upload = fake_telegram.calls("sendDocument")[0].params["document"]
    assert isinstance(upload, UploadedFile) and upload.data == data
    (download,) = fake_telegram.calls("downloadFile")
    assert file.file_path and file.file_path.endswith("/" + download.params["file_path"])


async def test_a_document_a_user_sends_arrives_with_its_size_and_big_ones_cannot_be_fetched(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.push_update(fake_telegram.document_message(5, b"<opml/>", "mine.opml"))
    fake_telegram.push_update(
        fake_telegram.document_message(5, b"x", "huge.xml", file_size=30 * 1024 * 1024)
    )
    async with bot_for(fake_telegram) as bot:
        updates = await bot.get_updates(timeout=0)
        small, huge = (u.message.document for u in updates if u.message)
        assert small is not None and huge is not None
        assert (small.file_name, small.file_size, small.mime_type) == (
            "mine.opml",
            7,
            "application/xml",
        )
        assert huge.file_size == 30 * 1024 * 1024
        file = await bot.get_file(small.file_id)
        assert bytes(await file.download_as_bytearray()) == b"<opml/>"
        with pytest.raises(BadRequest, match=r"(?i)file is too big"):
            await bot.get_file(huge.file_id)


async def test_send_photo_refuses_a_url_telegram_cannot_fetch(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.refuse_photo_url("https://images.example/gone.jpg")
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(BadRequest, match=r"(?i)failed to get http url content"):
            await bot.send_photo(5, "https://images.example/gone.jpg", caption="x")
        fetched = await bot.send_photo(
            5, "https://images.example/fine.jpg", caption="y", disable_notification=True
        )
    refused, accepted = fake_telegram.calls("sendPhoto")
    assert not refused.ok and accepted.ok and fetched.caption == "y"
    assert accepted.params["disable_notification"] is True


async def test_send_photo_into_a_forum_topic_checks_the_topic(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.add_chat(-1001, "supergroup", is_forum=True)
    topic = fake_telegram.create_topic(-1001, "Space")
    fake_telegram.close_topic(-1001, topic)
    async with bot_for(fake_telegram) as bot:
        with pytest.raises(BadRequest):
            await bot.send_photo(-1001, "https://images.example/a.jpg", message_thread_id=topic)


async def test_edits_of_the_bots_messages_are_recorded_and_change_what_they_show(
    fake_telegram: FakeTelegram,
) -> None:
    async with fake_telegram.make_bot() as bot:
        text = await bot.send_message(7, "<b>Old</b> headline", parse_mode="HTML")
        photo = await bot.send_photo(7, "https://news.example/p.jpg", caption="Old caption")
        await bot.edit_message_text("<b>New</b> headline", 7, text.message_id, parse_mode="HTML")
        await bot.edit_message_caption(7, photo.message_id, caption="New caption")
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_caption(7, photo.message_id, caption="New caption")

    assert [p.get("text", p.get("caption")) for p in fake_telegram.edited_messages(7)] == [
        "<b>New</b> headline",
        "New caption",
    ]
    assert fake_telegram.message_content(7, text.message_id) == "New headline"
    assert fake_telegram.message_content(7, photo.message_id) == "New caption"


async def test_edits_that_cannot_be_made_are_refused_in_telegrams_words(
    fake_telegram: FakeTelegram,
) -> None:
    async with fake_telegram.make_bot() as bot:
        text = await bot.send_message(7, "A card")
        photo = await bot.send_photo(7, "https://news.example/p.jpg", caption="A photo card")
        with pytest.raises(BadRequest, match="There is no caption in the message to edit"):
            await bot.edit_message_caption(7, text.message_id, caption="x")
        with pytest.raises(BadRequest, match="There is no text in the message to edit"):
            await bot.edit_message_text("x", 7, photo.message_id)
        with pytest.raises(BadRequest, match="Message_id_invalid"):
            await bot.edit_message_text("x", 7, 0)
        fake_telegram.delete_message(7, text.message_id)
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", 7, text.message_id)
        assert fake_telegram.message_content(7, text.message_id) is None

        # A bot removed from a group (or restricted in it) cannot edit there either.
        group = await bot.send_message(-1005, "In a group")
        fake_telegram.set_member(-1005, DEFAULT_BOT_ID, "restricted", can_send_messages=False)
        with pytest.raises(BadRequest, match="Not enough rights"):
            await bot.edit_message_text("x", -1005, group.message_id)
        fake_telegram.set_member(-1005, DEFAULT_BOT_ID, "kicked")
        with pytest.raises(Forbidden, match="bot was kicked"):
            await bot.edit_message_text("x", -1005, group.message_id)
    assert fake_telegram.edited_messages() == []


@ignore_ptb_timedelta_warning
async def test_edits_count_against_the_flood_limits_like_sends(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.enable_flood_limits(FloodLimits(private_chat_interval=60.0))
    async with fake_telegram.make_bot() as bot:
        sent = await bot.send_message(7, "A card")
        with pytest.raises(RetryAfter):
            await bot.edit_message_text("Edited at once", 7, sent.message_id)
    assert fake_telegram.flood_429_count == 1
    assert fake_telegram.message_content(7, sent.message_id) == "A card"


async def test_a_users_telegram_language_comes_with_their_updates(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.user(4242, language_code="de-AT")
    fake_telegram.push_update(fake_telegram.message(4242, "/start"))
    fake_telegram.user(4343, language_code="")  # a client that sends none
    fake_telegram.push_update(fake_telegram.message(4343, "/start"))
    async with bot_for(fake_telegram) as bot:
        updates = await bot.get_updates(timeout=0)
    users = [u.effective_user for u in updates]
    assert [u.language_code if u else "?" for u in users] == ["de-AT", None]
    # Users nobody configured keep Telegram's usual English.
    assert fake_telegram.user(4444)["language_code"] == "en"
