"""A handler that fails: the traceback goes to the log, the operators hear
about it privately once per distinct error per hour, the user gets a short
apology, and a channel's subscribers hear nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.telegram.alerts import OperatorAlerts, error_key
from tests.bot_harness import ALICE, APOLOGY, BOB, BotHarness, running_bot
from tests.fake_telegram import ApiError, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import MAX_MESSAGE_LENGTH, check_telegram_html, utf16_length

CHANNEL = -1_001_777_000_111
GROUP = -4101
ODD = ApiError(400, "Bad Request: odd <failure> & more")


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server, expect_error_logs=True) as harness:
        yield harness


def alerts_to(bot: BotHarness, chat_id: int) -> list[str]:
    return [
        str(c.params["text"])
        for c in bot.fake.calls("sendMessage", chat_id)
        if "a handler failed" in str(c.params.get("text"))
    ]


async def test_a_failure_in_a_channel_says_nothing_there_and_tells_the_operator_once(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.add_chat(CHANNEL, "channel", title="Space News")
    bot.fake.fail_next("sendMessage", ODD, chat_id=CHANNEL, times=2)

    exchange = await bot.ask(
        bot.fake.channel_post(CHANNEL, "/latest"),
        bot.fake.channel_post(CHANNEL, "/latest"),
        check=False,
    )

    # Only the two failed replies were ever sent to the channel: no apology.
    to_channel = exchange.sent(CHANNEL)
    assert len(to_channel) == 2 and not any(c.ok for c in to_channel)
    assert not any(APOLOGY in str(c.params.get("text")) for c in exchange.calls)
    # The operator got one private message for the two identical failures.
    (alert,) = alerts_to(bot, ALICE)
    shown = check_telegram_html(alert)
    assert "BadRequest: Odd <failure> & more" in shown
    assert "bot/telegram/handlers.py" in shown and "in reply" in shown
    assert f"the command /latest in channel chat {CHANNEL}" in shown
    # And the log has the tracebacks.
    failures = [r for r in caplog.records if "error while handling an update" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


async def test_a_failure_in_a_group_gets_a_short_apology(bot: BotHarness) -> None:
    bot.fake.add_chat(GROUP, "group")
    bot.fake.fail_next("sendMessage", ODD, chat_id=GROUP)

    exchange = await bot.ask(bot.fake.message(GROUP, "/latest", user_id=BOB), check=False)

    failed, apology = exchange.sent(GROUP)
    assert not failed.ok and apology.ok
    assert check_telegram_html(str(apology.params["text"])) == (
        "Sorry, something went wrong. Please try again later."
    )
    assert len(alerts_to(bot, ALICE)) == 1


async def test_an_operator_that_cannot_be_told_is_logged_and_nothing_else_breaks(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.fail_next("sendMessage", ODD, chat_id=BOB)
    bot.fake.fail_next("sendMessage", ApiError.blocked_by_user(), chat_id=ALICE)

    exchange = await bot.ask(bot.fake.message(BOB, "/latest"), check=False)

    # Bob still got his apology after the alert to Alice failed.
    assert [c.ok for c in exchange.sent(BOB)] == [False, True]
    assert any(f"could not tell operator {ALICE}" in r.getMessage() for r in caplog.records)
    # The bot goes on answering.
    assert "Latest headlines" in (await bot.say(BOB, "/latest")).text(BOB)


def raise_at_one_place(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


def raise_at_another_place(error: Exception) -> Exception:
    try:
        raise error
    except Exception as caught:
        return caught


async def test_the_same_error_is_told_again_after_an_hour_and_another_one_at_once() -> None:
    alerts = OperatorAlerts([ALICE, BOB])
    sent: list[tuple[int, str]] = []

    async def send(chat_id: int, text: str) -> None:
        sent.append((chat_id, text))

    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = raise_at_one_place(ValueError("x" * 10_000))
    await alerts.report(first, "a button press", start, send)
    await alerts.report(
        raise_at_one_place(ValueError("y")), "", start + timedelta(minutes=59), send
    )
    assert [chat for chat, _ in sent] == [ALICE, BOB]

    await alerts.report(raise_at_another_place(ValueError("z")), "", start, send)
    await alerts.report(raise_at_one_place(KeyError("k")), "", start, send)
    assert len(sent) == 6

    await alerts.report(raise_at_one_place(ValueError("y")), "", start + timedelta(hours=1), send)
    assert len(sent) == 8
    for _, text in sent:
        assert utf16_length(check_telegram_html(text)) <= MAX_MESSAGE_LENGTH
        assert len(text) < 1200
    assert error_key(first).where.startswith("tests/test_error_handler.py:")
    assert error_key(first) != error_key(raise_at_another_place(ValueError("x")))


async def test_without_operators_nobody_is_told(caplog: pytest.LogCaptureFixture) -> None:
    sent: list[int] = []

    async def send(chat_id: int, text: str) -> None:
        sent.append(chat_id)

    with caplog.at_level(logging.WARNING):
        await OperatorAlerts([]).report(ValueError("x"), "", datetime.now(UTC), send)
    assert sent == []
