"""Property-based: whatever users type after a command, or whatever a button
carries, the bot answers with HTML Telegram accepts, never an apology from the
error handler, and never logs an ERROR.

Each example goes through the whole bot (PTB, handlers, SQLite, the fake Bot
API), so the examples are few and there is no deadline. One bot serves all
examples of a test: pytest-asyncio runs each example on the test's event
loop, where the bot started by the function-scoped fixture keeps running.
The fake Bot API already refuses invalid HTML and over-long texts with a 400;
``Exchange.check`` asserts every reply was accepted and parses it again.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.bot_harness import ALICE, BOB, BotHarness, message_id, running_bot
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer

# Through the real bot, not a pure function: few examples, no deadline, and
# the running bot (a function-scoped fixture) is meant to be shared by them.
THROUGH_THE_BOT = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# What breaks naive code: FTS5 syntax, SQL, HTML and Markdown that would break
# a reply, Telegram-ish references, numbers at the edges, and odd characters.
# The first entry is what Hypothesis tries most: keep it harmless.
FRAGMENTS = [
    "space",
    "Science",
    "ai and robotics",
    "all",
    '"',
    '"unterminated',
    "*",
    "rover*",
    "AND",
    "OR NOT",
    "NEAR(",
    "NEAR(a b, 3)",
    "title:",
    "summary:rover",
    "(",
    ")",
    "-x",
    "C++",
    "don't",
    "'; DROP TABLE chats; --",
    "1 OR 1=1",
    "%_\\",
    "<b>",
    "</i>",
    "&",
    "&amp;",
    "&#0;",
    "<a href='javascript:x'>",
    "<script>",
    "*bold* _it_ `code` [link](http://x)",
    "🚀",
    "👨‍👩‍👧",
    "\u200b",
    "\u202e",
    "\x00",
    "\x1b[31m",
    "\t",
    "\n",
    ",",
    ";",
    "#space",
    "@",
    "@None",
    "@spacenews",
    "t.me/spacenews",
    "0",
    "21",
    "000000",
    "٣",
    "²",
    "99999999999999999999",
    "-1",
]

unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
word_salad = st.lists(st.one_of(st.sampled_from(FRAGMENTS), unicode_text), max_size=10).map(
    " ".join
)
# Up to Telegram's 4096 characters: one piece repeated.
long_text = st.tuples(
    st.one_of(st.sampled_from(FRAGMENTS), unicode_text.filter(bool)),
    st.integers(min_value=1_000, max_value=4_096),
).map(lambda piece_size: (piece_size[0] + " ") * (piece_size[1] // (len(piece_size[0]) + 1) + 1))
# Punctuation and separators alone: arguments that hold no word at all.
no_words = st.text(st.sampled_from(" ,;#-_*\"'()<>&@\t\n"), min_size=1, max_size=8)
arguments = st.one_of(word_salad, unicode_text, long_text, no_words)


def command(name: str, text: str) -> str:
    """``/name text`` cut to Telegram's 4096 UTF-16 code units (a cut pair is dropped)."""
    message = f"/{name} {text}"
    return message.encode("utf-16-le")[: 2 * 4096].decode("utf-16-le", errors="ignore")


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness
    # Every example checked its own replies; the whole record must agree.
    refused = [c for c in fake_telegram.calls("sendMessage") if not c.ok]
    assert not refused, refused


async def answers_each(
    bot: BotHarness, chat_id: int, texts: list[str], user_id: int | None = None
) -> None:
    """Send ``texts`` to the bot in ``chat_id``: one valid reply each, no ERROR."""
    exchange = await bot.ask(*(bot.fake.message(chat_id, t, user_id=user_id) for t in texts))
    assert len(exchange.sent(chat_id)) == len(texts), exchange.texts(chat_id)
    assert not bot.error_logs


@THROUGH_THE_BOT
@given(text=arguments)
async def test_subscription_commands_answer_any_arguments(bot: BotHarness, text: str) -> None:
    await answers_each(bot, BOB, [command("subscribe", text), command("unsubscribe", text)])


@THROUGH_THE_BOT
@given(text=arguments)
async def test_latest_and_mysubs_answer_any_arguments(bot: BotHarness, text: str) -> None:
    await answers_each(bot, BOB, [command("latest", text), command("mysubs", text)])


@THROUGH_THE_BOT
@given(text=arguments)
async def test_search_answers_any_words_and_its_more_button_works(
    bot: BotHarness, text: str
) -> None:
    exchange = await bot.ask(bot.fake.message(BOB, command("search", text)))
    reply = exchange.reply(BOB)
    assert not bot.error_logs
    markup = reply.params.get("reply_markup") or {}
    for row in markup.get("inline_keyboard", []):
        for button in row:
            pressed = await bot.press(
                BOB, BOB, button["callback_data"], message_id=message_id(reply)
            )
            assert len(pressed.of("answerCallbackQuery")) == 1
            assert not bot.error_logs


@settings(THROUGH_THE_BOT, max_examples=10)
@given(text=arguments)
async def test_commands_without_arguments_ignore_any_given(bot: BotHarness, text: str) -> None:
    names = ["start", "help", "categories", "health"]
    # Alice is an operator: /health answers her.
    await answers_each(bot, ALICE, [command(name, text) for name in names])


_groups = itertools.count(-5001, -1)


@settings(THROUGH_THE_BOT, max_examples=15)
@given(text=arguments)
async def test_group_admins_get_valid_answers_to_any_arguments(bot: BotHarness, text: str) -> None:
    # A fresh group per example: Telegram (and PTB's limiter) allow 20
    # messages a minute in one group.
    group = next(_groups)
    bot.fake.add_chat(group, "group", title=f"Group <{group}> & co")
    bot.fake.set_member(group, ALICE, "administrator")
    await answers_each(
        bot,
        group,
        [command("subscribe@newsbot_test_bot", text), command("unsubscribe", text)],
        user_id=ALICE,
    )


callback_data = st.one_of(
    st.text(max_size=64).filter(lambda d: 1 <= len(d.encode()) <= 64),
    st.builds(
        lambda kind, middle, tail: f"{kind}:{middle}:{tail}"[:64],
        st.sampled_from(["t", "s", "T", "", "t:t", "sub", "unsub"]),
        st.one_of(st.sampled_from(["space", "deleted", "", "5", "-5", "1001"]), unicode_text),
        st.one_of(st.integers().map(str), st.sampled_from(FRAGMENTS), unicode_text),
    ).filter(lambda d: 1 <= len(d.encode()) <= 64),
)


@settings(THROUGH_THE_BOT, max_examples=40)
@given(data=callback_data)
async def test_any_button_data_gets_a_quiet_answer(bot: BotHarness, data: str) -> None:
    pressed = await bot.press(BOB, BOB, data)

    assert len(pressed.of("answerCallbackQuery")) == 1
    assert pressed.sent() == []
    assert not bot.error_logs
