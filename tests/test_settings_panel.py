"""The /settings panel's pure parts: callback data that says what it does,
parsed strictly, and a panel that shows every option."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat_settings import DEFAULT_SETTINGS, ChatSettings
from bot.i18n import translator
from bot.telegram.settings_panel import (
    HINTS,
    SWITCHES,
    ExplainOption,
    PanelFacts,
    SetOption,
    SwitchToInstant,
    parse_panel_data,
    set_data,
    settings_panel,
)
from bot.timezones import zone
from tests.telegram_html import check_telegram_html

LONGEST_CHAT = -1_009_999_999_999_999_999
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def facts(**overrides: object) -> PanelFacts:
    values: dict[str, object] = {
        "chat_name": "this chat",
        "zone_name": "Europe/Berlin",
        "zone": zone("Europe/Berlin"),
        "filters": 0,
        "now": NOW,
    }
    values.update(overrides)
    return PanelFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", sorted(SWITCHES.values()))
@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("target", [None, LONGEST_CHAT, 12345])
def test_a_switch_button_carries_the_value_it_sets_and_fits_in_64_bytes(
    field: str, value: bool, target: int | None
) -> None:
    data = set_data(field, value, target)
    assert len(data.encode()) <= 64
    assert parse_panel_data(data) == SetOption(field, value, target)


def test_instant_and_hint_buttons_parse() -> None:
    assert parse_panel_data("cs:i1") == SwitchToInstant(None)
    assert parse_panel_data("cs:i1:-100123") == SwitchToInstant(-100123)
    assert parse_panel_data("cs:ht") == ExplainOption(HINTS["t"], None)


@pytest.mark.parametrize(
    "data",
    [
        "",
        "cs:",
        "cs:n",
        "cs:n2",
        "cs:x1",
        "cs:i0",
        "cs:hz",
        "cs:n1:",
        "cs:n1:12a",
        "cs:n1:1:2",
        "sub:space",
        "cs:n1 ",
        "cs:N1",
        "cs:n1:" + "9" * 21,
    ],
)
def test_anything_else_is_not_a_panel_button(data: str) -> None:
    assert parse_panel_data(data) is None


@given(st.text(max_size=70))
def test_parsing_any_data_never_raises(data: str) -> None:
    parse_panel_data(data)


def test_the_panel_shows_every_option_and_its_value() -> None:
    settings = ChatSettings(
        digest_times=("08:00", "18:00"),
        quiet_hours=("22:00", "07:00"),
        timezone="Europe/Berlin",
        link_preview=False,
        silent=True,
        paused=True,
        language="de",
    )
    # Shown in an English chat (a channel's panel in its admin's private chat).
    text, markup = settings_panel(
        settings, facts(filters=3, chat_name="@space <news>"), t=translator("en")
    )
    shown = check_telegram_html(text)
    for line in (
        "Settings of @space <news>",
        "Cards: digest at 08:00, 18:00",
        "Quiet hours: 22:00–07:00",
        "Time zone: Europe/Berlin (CEST, 12:00)",
        "Link preview: off",
        "Summary: on",
        "Image as a photo: off",
        "Silent: on",
        "Paused: yes",
        "Filters: 3 keyword filters",
        "Language: Deutsch",
    ):
        assert line in shown, shown
    for command in ("/digest", "/quiet", "/timezone", "/language"):
        assert command in shown
    # Without a language of its own to be shown in, the panel speaks the chat's.
    german, _ = settings_panel(settings, facts(filters=3, chat_name="@space <news>"))
    assert "Lautlos: an" in check_telegram_html(german)
    labels = [b.text for row in markup.inline_keyboard for b in row]
    assert "✓ Digest…" in labels and "Instant" in labels and "▶ Resume" in labels
    data = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert "cs:i1" in data and set_data("paused", False) in data
    assert set_data("link_preview", True) in data and set_data("silent", False) in data


def test_an_instant_chat_is_told_how_to_get_a_digest() -> None:
    _, markup = settings_panel(DEFAULT_SETTINGS, facts(), target=-100777)
    first_row = markup.inline_keyboard[0]
    assert first_row[0].text == "✓ Instant"
    assert first_row[0].callback_data == "cs:hd:-100777"
    assert all(str(b.callback_data).endswith(":-100777") for r in markup.inline_keyboard for b in r)
