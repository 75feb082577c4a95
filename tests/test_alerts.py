"""Operator alerts: the pure decisions (which outcome is told, which chat
change, which storage spell), the messages' limits, and the "already told"
state on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.alerts import (
    MESSAGE_LIMIT,
    STORAGE_ALERT,
    SUSPENDED_CHATS_KEY,
    ChatSummary,
    FeedAlert,
    OperatorWatch,
    StorageSpell,
    chat_alert_text,
    chat_changes,
    daily_report_text,
    decode_chat_ids,
    encode_chat_ids,
    feed_alert_text,
    feed_alerts,
)
from bot.config import AlertsConfig, MetricsConfig
from bot.errors import ConfigError
from bot.models import FeedHealth
from bot.pipeline import FeedOutcome, Status
from bot.storage.chats import SuspendedChat
from bot.storage.ops import SqlOps
from tests.support import open_test_storage
from tests.telegram_html import check_telegram_html

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
URL = "https://example.org/feed.xml"


def outcome(
    status: Status, errors_before: int, *, disabled: bool = False, error: str | None = "HTTP 500"
) -> FeedOutcome:
    return FeedOutcome(
        1,
        URL,
        status,
        error=error if status == "failed" else None,
        errors_before=errors_before,
        disabled=disabled,
    )


def suspended(chat_id: int, reason: str = "need administrator rights") -> SuspendedChat:
    return SuspendedChat(chat_id, "channel", f"Channel {chat_id}", None, reason, 3)


# -- feeds ---------------------------------------------------------------------


def test_a_feed_is_told_failing_exactly_when_its_count_reaches_the_threshold() -> None:
    told = [n for n in range(0, 20) if feed_alerts([outcome("failed", n)], threshold=5)]
    assert told == [4]  # the fifth failure in a row
    (alert,) = feed_alerts([outcome("failed", 4)], threshold=5)
    assert alert == FeedAlert("failing", URL, 5, "HTTP 500")


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=200))
def test_a_run_of_failures_is_told_at_most_once(threshold: int, run: int) -> None:
    alerts = [a for n in range(run) for a in feed_alerts([outcome("failed", n)], threshold)]
    assert len(alerts) == (1 if run >= threshold else 0)


@pytest.mark.parametrize("status", ["new", "unchanged", "not_modified"])
def test_the_first_success_after_a_failing_alert_is_told_as_a_recovery(status: Status) -> None:
    assert feed_alerts([outcome(status, 7)], threshold=5) == [FeedAlert("recovered", URL, 0, None)]
    assert feed_alerts([outcome(status, 5)], threshold=5)[0].kind == "recovered"


def test_a_success_after_fewer_failures_than_the_threshold_is_not_told() -> None:
    assert feed_alerts([outcome("new", 4)], threshold=5) == []
    assert feed_alerts([outcome("new", 0)], threshold=5) == []


def test_a_feed_disabled_by_410_is_told_whatever_its_count() -> None:
    for before in (0, 3, 4, 9):
        (alert,) = feed_alerts([outcome("failed", before, disabled=True)], threshold=5)
        assert alert.kind == "disabled"
        assert alert.failures == before + 1


def test_a_round_with_many_changes_makes_one_message_within_telegrams_limit() -> None:
    alerts = [
        FeedAlert("failing", f"https://e.org/{n}/" + "x" * 150, 5, "<b>&" * 200) for n in range(80)
    ]
    text = feed_alert_text(alerts)
    assert len(text) <= MESSAGE_LIMIT
    plain = check_telegram_html(text)
    assert "more" in plain.splitlines()[-1]
    assert "<b>&" in plain  # the error's text is escaped, not markup


# -- chats ---------------------------------------------------------------------


def test_chat_changes_are_the_differences_from_what_was_told() -> None:
    changes = chat_changes(frozenset({1, 2}), [suspended(2), suspended(3)])
    assert [c.id for c in changes.suspended] == [3]
    assert changes.cleared == [1]
    assert not chat_changes(frozenset({2}), [suspended(2)])


def test_the_told_set_has_one_spelling_and_survives_bad_values() -> None:
    assert encode_chat_ids([3, -100, 3]) == encode_chat_ids([-100, 3])
    assert decode_chat_ids(encode_chat_ids([5, -1])) == frozenset({5, -1})
    assert decode_chat_ids(None) is None
    assert decode_chat_ids("not json") is None
    assert decode_chat_ids('{"a": 1}') is None
    assert decode_chat_ids('["1"]') is None


def test_chat_messages_are_valid_html_within_the_limit() -> None:
    many = [suspended(-100 - n, "<i>" * 400) for n in range(100)]
    resumed = [ChatSummary(5, "channel", "A & B <news>", None)]
    text = chat_alert_text(many, resumed)
    assert len(text) <= MESSAGE_LIMIT
    check_telegram_html(text)
    assert "A & B <news>" in check_telegram_html(chat_alert_text([], resumed))


# -- storage -------------------------------------------------------------------


def test_storage_trouble_is_told_once_per_spell() -> None:
    spell = StorageSpell()
    looks = [False, True, True, True, False, False, True, True]
    assert [spell.began(t) for t in looks] == [
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
    ]
    check_telegram_html(STORAGE_ALERT)


# -- the daily report ----------------------------------------------------------


def health(n: int, *, errors: int = 0, disabled: bool = False) -> FeedHealth:
    return FeedHealth(
        id=n,
        url=f"https://e.org/{n}.xml",
        fetch_url=f"https://e.org/{n}.xml",
        title=f"Feed <{n}>",
        error_count=errors,
        last_error="HTTP 500" if errors else None,
        disabled=disabled,
        next_check_at=None,
        last_success_at=None,
        articles=0,
    )


def test_the_daily_report_counts_feeds_cards_and_suspended_chats() -> None:
    feeds = [health(1), health(2), health(3, errors=2), health(4, errors=1, disabled=True)]
    text = daily_report_text(feeds, {"sent": 12, "failed": 1}, [suspended(-100)], NOW)
    plain = check_telegram_html(text)
    assert "Feeds: 2 ok, 1 failing, 1 disabled" in plain
    assert "12 sent, 1 failed" in plain
    assert "Suspended chats: 1" in plain
    assert "Feed <3>: 2 failures" in plain


def test_a_daily_report_of_a_thousand_failing_feeds_fits_in_one_message() -> None:
    feeds = [health(n, errors=9) for n in range(1000)]
    text = daily_report_text(feeds, {}, [], NOW)
    assert len(text) <= MESSAGE_LIMIT
    assert "1000 failing" in check_telegram_html(text)


# -- configuration -------------------------------------------------------------


def test_alert_and_metrics_settings_are_checked() -> None:
    assert AlertsConfig().failures == 5
    assert AlertsConfig(daily_report="9:05").daily_report == "09:05"
    assert MetricsConfig(listen="[::1]:9308").address == ("::1", 9308)
    assert MetricsConfig().listen is None
    for bad in ("25:00", "9", "noon"):
        with pytest.raises(ValueError, match="HH:MM"):
            AlertsConfig(daily_report=bad)
    for bad in ("9308", "localhost:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="host:port"):
            MetricsConfig(listen=bad)


def test_a_bad_alerts_setting_names_its_key(tmp_path: object) -> None:
    from bot.config import parse_config

    with pytest.raises(ConfigError, match=r"alerts\.daily_report"):
        parse_config({"alerts": {"daily_report": "24:00"}})


# -- the "already told" state, on both backends ------------------------------


async def test_of_two_watches_only_one_tells_a_chat_change(database_url: str) -> None:
    first = await open_test_storage(database_url)
    second = await open_test_storage(database_url)
    told: list[tuple[str, int, str]] = []

    def sender(name: str):  # type: ignore[no-untyped-def]
        async def send(chat_id: int, text: str) -> None:
            told.append((name, chat_id, text))

        return send

    try:
        a = OperatorWatch([42], first, sender("a"), failures=5)
        b = OperatorWatch([42], second, sender("b"), failures=5)
        await first.chats.upsert_chat(-1001, "channel", "News", None, NOW)
        await a.check_chats(NOW)  # the first look sets the baseline, silently
        await b.check_chats(NOW)
        assert told == []
        await first.chats.suspend_chat(-1001, "need administrator rights", NOW)
        await a.check_chats(NOW)
        await b.check_chats(NOW)
        await a.check_chats(NOW)
        assert [(name, chat) for name, chat, _ in told] == [("a", 42)]
        assert "no longer lets the bot post" in told[0][2]
        await first.chats.resume_chat(-1001, NOW + timedelta(minutes=1))
        await b.check_chats(NOW)
        await a.check_chats(NOW)
        assert [(name, chat) for name, chat, _ in told][1:] == [("b", 42)]
        assert "lets the bot post again" in told[1][2]
        # A restart (a new watch) starts from the stored state: nothing again.
        again = OperatorWatch([42], second, sender("c"), failures=5)
        await again.check_chats(NOW)
        assert len(told) == 2
    finally:
        await first.close()
        await second.close()


async def test_a_chat_that_left_while_suspended_is_not_told_as_resumed(
    database_url: str,
) -> None:
    storage = await open_test_storage(database_url)
    told: list[str] = []

    async def send(chat_id: int, text: str) -> None:
        told.append(text)

    try:
        watch = OperatorWatch([42], storage, send, failures=5)
        await storage.chats.upsert_chat(-1002, "channel", "Gone", None, NOW)
        await storage.chats.suspend_chat(-1002, "need administrator rights", NOW)
        await storage.state.set_state_if_absent(SUSPENDED_CHATS_KEY, "[]", NOW)
        await watch.check_chats(NOW)
        assert len(told) == 1
        await storage.chats.deactivate_chat(-1002, "removed from the chat", NOW)
        await watch.check_chats(NOW)
        assert len(told) == 1
        assert await storage.state.get_state(SUSPENDED_CHATS_KEY) == "[]"
    finally:
        await storage.close()


async def test_replace_state_swaps_only_from_the_expected_value(database_url: str) -> None:
    storage = await open_test_storage(database_url)
    try:
        ops = SqlOps(storage.db)
        assert await ops.replace_state("k", None, "1", NOW)
        assert not await ops.replace_state("k", None, "2", NOW)
        assert not await ops.replace_state("k", "0", "2", NOW)
        assert await ops.replace_state("k", "1", "2", NOW)
        assert await storage.state.get_state("k") == "2"
    finally:
        await storage.close()


async def test_the_operators_are_not_told_when_there_are_none(database_url: str) -> None:
    storage = await open_test_storage(database_url)
    told: list[str] = []

    async def send(chat_id: int, text: str) -> None:
        told.append(text)

    try:
        watch = OperatorWatch([], storage, send, failures=1)
        await watch.after_round([outcome("failed", 0)])
        await watch.check_storage(True)
        await watch.daily_report(NOW)
        assert told == []
    finally:
        await storage.close()


async def test_a_failure_to_notify_is_logged_and_the_others_are_still_told(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await open_test_storage(database_url)
    told: list[int] = []

    async def send(chat_id: int, text: str) -> None:
        if chat_id == 1:
            raise RuntimeError("Forbidden: bot was blocked by the user")
        told.append(chat_id)

    try:
        watch = OperatorWatch([1, 2], storage, send, failures=1)
        await watch.after_round([outcome("failed", 0)])
        assert told == [2]
        assert any("could not tell operator 1" in r.getMessage() for r in caplog.records)
    finally:
        await storage.close()


async def test_the_sender_storage_trouble_reaches_the_operators_once_per_spell(
    database_url: str,
) -> None:
    storage = await open_test_storage(database_url)
    told: list[tuple[int, str]] = []

    async def send(chat_id: int, text: str) -> None:
        told.append((chat_id, text))

    try:
        watch = OperatorWatch([7, 8], storage, send, failures=5)
        for trouble in (False, True, True, False, True):
            await watch.check_storage(trouble)
        assert told == [(7, STORAGE_ALERT), (8, STORAGE_ALERT)] * 2
    finally:
        await storage.close()
