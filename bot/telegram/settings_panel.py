"""The ``/settings`` panel: its text, its buttons and their callback data.
Pure (no Telegram calls, no storage).

A button carries what it will do, never "toggle": ``cs:<option><0|1>`` sets
an option to off or on, ``cs:i1`` switches to instant cards, ``cs:h<option>``
only explains which command changes a typed value. A panel for another chat
(a channel set up from a private chat) adds ``:<chat id>``. At most
3 + 2 + 1 + 21 bytes, within Telegram's 64. A button whose value is already
the chat's (the panel was out of date, or it was pressed twice) changes
nothing and refreshes the panel; data that is not one of these is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat_settings import ChatSettings
from bot.i18n import N_, Translator, translator
from bot.local_time import zone_abbreviation
from bot.render import escape

PREFIX = "cs:"
PATTERN = r"^cs:"

# Options a tap switches, by their letter in the callback data.
SWITCHES: dict[str, str] = {
    "p": "link_preview",
    "a": "preview_above_text",
    "s": "summary",
    "f": "photo",
    "n": "silent",
    "z": "paused",
}
INSTANT = "i"
# Typed values: the button says which command changes them.
HINTS: dict[str, str] = {
    "d": N_("Send /digest 08:00 18:00 for a digest at those times."),
    "q": N_("Send /quiet 22:00 07:00 to hold cards at night, /quiet off to end it."),
    "t": N_("Send /timezone Area/City, for example /timezone Europe/Berlin."),
    "l": N_("Send /language to choose the language of my messages."),
    "x": N_("Send /filter to see or change the keyword filters."),
}
_DATA = re.compile(r"^cs:(?:([paszfn])([01])|(i)1|h([dqtlx]))(?::(-?[0-9]{1,20}))?$")

LANGUAGE_NAMES = {
    "en": "English",
    "ru": "Русский",
    "de": "Deutsch",
    "es": "Español",
    "hi": "हिन्दी",
}


@dataclass(frozen=True, slots=True)
class SetOption:
    """Set ``field`` of the chat's settings to ``value``."""

    field: str
    value: bool
    chat_id: int | None  # None: the chat the panel is in


@dataclass(frozen=True, slots=True)
class SwitchToInstant:
    chat_id: int | None


@dataclass(frozen=True, slots=True)
class ExplainOption:
    hint: str  # the English text; translated where shown
    chat_id: int | None


PanelPress = SetOption | SwitchToInstant | ExplainOption


def parse_panel_data(data: str) -> PanelPress | None:
    """What a panel button asks for; None for anything else (forged, mangled)."""
    found = _DATA.match(data)
    if found is None:
        return None
    switch, value, instant, hint, chat = found.groups()
    chat_id = int(chat) if chat is not None else None
    if switch is not None:
        return SetOption(SWITCHES[switch], value == "1", chat_id)
    if instant is not None:
        return SwitchToInstant(chat_id)
    return ExplainOption(HINTS[hint], chat_id)


def _data(body: str, target: int | None) -> str:
    return f"{PREFIX}{body}" if target is None else f"{PREFIX}{body}:{target}"


def set_data(field: str, value: bool, target: int | None = None) -> str:
    letter = next(k for k, v in SWITCHES.items() if v == field)
    return _data(f"{letter}{int(value)}", target)


@dataclass(frozen=True, slots=True)
class PanelFacts:
    """What the panel shows besides the settings themselves."""

    chat_name: str  # plain text
    zone_name: str  # the stored name, or the bot's default zone's
    zone: tzinfo
    filters: int  # keyword filters of the chat
    now: datetime


def language_name(code: str | None) -> str:
    code = code or "en"
    return LANGUAGE_NAMES.get(code, code)


def settings_panel(
    settings: ChatSettings,
    facts: PanelFacts,
    target: int | None = None,
    t: Translator | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The panel's HTML and its keyboard; ``target`` goes into the buttons
    of a panel for another chat; ``t``: the language of the chat it is
    shown in (default: the panel's chat's own choice)."""
    tr = t or translator(settings.language)
    _ = tr.gettext
    on, off = _("on"), _("off")

    def state(value: bool) -> str:
        return on if value else off

    if settings.digest_times:
        mode = _("digest at {times}").format(times=", ".join(settings.digest_times))
    else:
        mode = _("instant")
    quiet = (
        "–".join(settings.quiet_hours) if settings.quiet_hours else _("off")  # en dash: a range
    )
    abbreviation = zone_abbreviation(facts.now, facts.zone)
    local = facts.now.astimezone(facts.zone)
    zone_text = f"{facts.zone_name} ({abbreviation}, {local:%H:%M})"
    filters = (
        tr.ngettext("{count} keyword filter", "{count} keyword filters", facts.filters).format(
            count=facts.filters
        )
        if facts.filters
        else _("none")
    )
    preview = (
        (_("above the text") if settings.preview_above_text else _("below the text"))
        if settings.link_preview
        else off
    )
    lines = [
        _("<b>Settings of {name}</b>").format(name=escape(facts.chat_name)),
        "",
        _("Cards: {mode}").format(mode=escape(mode)),
        _("Quiet hours: {quiet}").format(quiet=escape(quiet)),
        _("Time zone: {zone}").format(zone=escape(zone_text)),
        _("Link preview: {state}").format(state=preview),
        _("Summary: {state}").format(state=state(settings.summary)),
        _("Image as a photo: {state}").format(state=state(settings.photo)),
        _("Silent: {state}").format(state=state(settings.silent)),
        _("Paused: {state}").format(state=_("yes") if settings.paused else _("no")),
        _("Filters: {filters}").format(filters=escape(filters)),
        _("Language: {language}").format(language=escape(language_name(settings.language))),
        "",
        _(
            "Tap a button to change an option; /digest, /quiet, /timezone and /language "
            "set the others."
        ),
    ]
    if settings.paused:
        lines.append(_("While paused, no cards are queued; /resume does not send them later."))

    def switch(label: str, field: str, now_value: bool) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=set_data(field, not now_value, target))

    def hint(label: str, letter: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(label, callback_data=_data(f"h{letter}", target))

    mark = "✓ "
    instant_label = (mark if not settings.digest_times else "") + _("Instant")
    digest_label = (mark if settings.digest_times else "") + _("Digest…")
    instant_button = (
        InlineKeyboardButton(instant_label, callback_data=_data(f"{INSTANT}1", target))
        if settings.digest_times
        else hint(instant_label, "d")
    )
    rows = [
        [instant_button, hint(digest_label, "d")],
        [
            hint(_("Quiet hours: {quiet}").format(quiet=quiet), "q"),
            hint(_("Zone: {abbreviation}").format(abbreviation=abbreviation), "t"),
        ],
        [
            switch(
                _("Preview: {state}").format(state=state(settings.link_preview)),
                "link_preview",
                settings.link_preview,
            ),
            switch(
                _("Preview above") if settings.preview_above_text else _("Preview below"),
                "preview_above_text",
                settings.preview_above_text,
            ),
        ],
        [
            switch(
                _("Summary: {state}").format(state=state(settings.summary)),
                "summary",
                settings.summary,
            ),
            switch(
                _("Photo: {state}").format(state=state(settings.photo)), "photo", settings.photo
            ),
        ],
        [
            switch(
                _("Silent: {state}").format(state=state(settings.silent)), "silent", settings.silent
            ),
            switch(_("▶ Resume") if settings.paused else _("⏸ Pause"), "paused", settings.paused),
        ],
        [
            hint(_("Filters: {filters}").format(filters=filters), "x"),
            hint(_("Language: {language}").format(language=language_name(settings.language)), "l"),
        ],
    ]
    return "\n".join(lines), InlineKeyboardMarkup(rows)
