"""Pure parsing of command arguments and callback data (no Telegram calls).

Everything here accepts any string a user can send and returns either a value
or a short, user-facing problem; nothing raises on bad input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.config import CategoryConfig
from bot.i18n import N_, Translator, translator
from bot.services import MAX_LIMIT, resolve_categories

MAX_ARGUMENTS = 20
MAX_CALLBACK_BYTES = 64
_CHAT_REF = re.compile(r"^(@[A-Za-z][A-Za-z0-9_]{3,31}|-?[0-9]{5,20})$")
_PUBLIC_LINK = re.compile(r"^(?:https?://)?t\.me/([A-Za-z][A-Za-z0-9_]{3,31})/?$")


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with the arguments, for the user: English with {named}
    placeholders filled from ``params``, translated where shown (``text``);
    ``unknown``: the words that name no category, with suggestions."""

    template: str
    params: Mapping[str, object] = field(default_factory=dict)
    unknown: Sequence[tuple[str, Sequence[str]]] | None = None

    @property
    def message(self) -> str:
        return self.text()

    def text(self, t: Translator | None = None) -> str:
        if self.unknown is not None:
            return unknown_categories_message(self.unknown, t)
        text = (t or translator(None)).gettext(self.template)
        return text.format(**self.params) if self.params else text


@dataclass(frozen=True, slots=True)
class LatestArgs:
    category: CategoryConfig | None
    limit: int


def split_target(args: Sequence[str]) -> tuple[str | int | None, list[str]]:
    """Split an optional leading channel reference off the arguments:
    ``@channel``, ``t.me/channel`` or a numeric chat id such as -100123..."""
    if not args:
        return None, []
    first = args[0].strip()
    link = _PUBLIC_LINK.match(first)
    if link:
        return "@" + link.group(1), list(args[1:])
    if _CHAT_REF.match(first):
        return (first if first.startswith("@") else int(first)), list(args[1:])
    return None, list(args)


def parse_latest(
    args: Sequence[str], categories: Sequence[CategoryConfig], default: int = 5
) -> LatestArgs | Problem:
    """``/latest [category] [N]`` in either order; the category may be several words."""
    if len(args) > MAX_ARGUMENTS:
        return Problem(N_("Too many arguments. Try /latest space 5"))
    limit = default
    words = []
    for arg in args:
        # isdigit() alone accepts "²", which int() rejects.
        if arg.isascii() and arg.isdigit() and len(arg) <= 6:
            limit = int(arg)
        else:
            words.append(arg)
    if limit < 1:
        return Problem(N_("N must be at least 1."))
    limit = min(limit, MAX_LIMIT)
    if not words:
        return LatestArgs(None, limit)
    lookup = resolve_categories(words, categories)
    if lookup.unknown or len(lookup.found) != 1:
        if len(lookup.found) > 1:
            return Problem(N_("Pick one category, e.g. /latest space 5"))
        return Problem("", unknown=lookup.unknown)
    return LatestArgs(lookup.found[0], limit)


def unknown_categories_message(
    unknown: Sequence[tuple[str, Sequence[str]]], t: Translator | None = None
) -> str:
    """Plain text (the caller escapes it) listing unknown words and suggestions,
    in the language of ``t`` (default English)."""
    _ = (t or translator(None)).gettext
    parts = []
    for word, suggestions in unknown[:5]:
        shown = word if len(word) <= 40 else word[:40] + "…"
        if suggestions:
            parts.append(
                _('Unknown category "{word}". Did you mean {suggestions}?').format(
                    word=shown, suggestions=_(" or ").join(suggestions)
                )
            )
        else:
            parts.append(_('Unknown category "{word}".').format(word=shown))
    parts.append(_("See /categories for the list."))
    return " ".join(parts)


# -- callback data (at most 64 bytes, and never trusted) ---------------------


@dataclass(frozen=True, slots=True)
class Toggle:
    """A category button: what it will do (``subscribe`` True or False), to
    which category, for which chat (None: the chat the button is in).

    ``subscribe`` is None for buttons of the old format ("t:<id>[:<chat>]"),
    which said only "toggle": acted on today's state, a days-old button would
    do the opposite of what its label showed. Such a button only refreshes the
    keyboard."""

    category_id: str
    chat_id: int | None
    subscribe: bool | None


_TOGGLE_PREFIXES = {"sub": True, "unsub": False, "t": None}


def toggle_data(category_id: str, chat_id: int | None = None, *, subscribe: bool) -> str:
    """``sub:<id>[:<chat>]`` or ``unsub:<id>[:<chat>]``: 6 + 32 + 1 + 20 bytes
    at most, within Telegram's 64."""
    prefix = "sub" if subscribe else "unsub"
    return f"{prefix}:{category_id}" if chat_id is None else f"{prefix}:{category_id}:{chat_id}"


def parse_toggle(data: str) -> Toggle | None:
    parts = data.split(":")
    if parts[0] not in _TOGGLE_PREFIXES or len(parts) not in (2, 3) or not parts[1]:
        return None
    chat_id = None
    if len(parts) == 3:
        try:
            chat_id = int(parts[2])
        except ValueError:
            return None
    return Toggle(parts[1], chat_id, _TOGGLE_PREFIXES[parts[0]])


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A "More" button: the page's offset and the query, kept server-side
    under ``key`` (callback data holds 64 bytes, a query 256 characters).
    Buttons sent before queries were kept carry the query's ``words``."""

    offset: int
    key: int | None = None
    words: str | None = None


MAX_SEARCH_OFFSET = 1000


def search_data(key: int, offset: int) -> str:
    return f"q:{key}:{offset}"


def parse_search_data(data: str) -> SearchPage | None:
    parts = data.split(":", 2)
    if len(parts) != 3 or parts[0] not in ("q", "s"):
        return None
    if parts[0] == "q":
        key, offset = parts[1], parts[2]
        if not (_is_number(key) and _is_number(offset)) or int(offset) > MAX_SEARCH_OFFSET:
            return None
        return SearchPage(int(offset), key=int(key))
    offset, words = parts[1], parts[2]
    if not _is_number(offset) or int(offset) > MAX_SEARCH_OFFSET or not words.strip():
        return None
    return SearchPage(int(offset), words=words)


def _is_number(text: str) -> bool:
    # isdigit() alone accepts "²", which int() rejects.
    return text.isascii() and text.isdigit() and len(text) <= 18
