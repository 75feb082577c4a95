"""The languages the bot speaks, and the translator of one chat's texts.

Every text a chat sees is written in English in the code as ``_("...")``
(named ``{placeholders}`` filled with ``str.format`` after translation, so a
translation may move them) and translated through the gettext catalogs in
``bot/locale/<language>/LC_MESSAGES/newsbot.mo`` (compiled from the ``.po``
files next to them with ``pybabel compile``; README "Languages").

Which language a chat gets: what it chose (``ChatSettings.language``);
otherwise, in a private chat, the user's Telegram language when the bot
speaks it (``language_for_user``); otherwise ``[telegram] default_language``.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path

from babel import Locale
from babel.dates import format_skeleton, format_time
from babel.numbers import format_decimal

from bot.local_time import zone_abbreviation

DOMAIN = "newsbot"
LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "en"
# English is the source language (the texts in the code); the others have
# catalogs. The order is the one /language shows.
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "ru", "de", "es", "hi")
# Dates in English as the bot always wrote them, day first ("1 Dec 2026"):
# CLDR's plain "en" is American ("Dec 1, 2026").
_DATE_LOCALES = {"en": "en_GB"}


@dataclass(frozen=True, slots=True)
class Translator:
    language: str
    catalog: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.catalog.ngettext(singular, plural, count)

    def date_time(
        self, when: datetime, zone: tzinfo = UTC, *, year: bool = True, zone_name: bool = True
    ) -> str:
        """``when`` in ``zone``, written as this language writes dates, with
        the zone's name: "1 Dec 2026, 12:30 UTC", "1. Dez. 2026, 13:30 CET",
        "1 дек. 2026 г., 15:30 MSK"; without the year and the zone for lists."""
        local = when.astimezone(zone)
        locale = _DATE_LOCALES.get(self.language, self.language)
        day = format_skeleton("yMMMd" if year else "MMMd", local, tzinfo=zone, locale=locale)
        clock = format_time(local, "HH:mm", tzinfo=zone, locale=locale)
        text = f"{day}, {clock}"
        # The zone's letters ("CEST"), or "UTC+4" where tzdata has none.
        return f"{text} {zone_abbreviation(when, zone)}" if zone_name else text

    def number(self, value: int | float) -> str:
        """``value`` with this language's digit grouping ("12,345", "12.345")."""
        return format_decimal(value, locale=self.language)


def translator(language: str | None) -> Translator:
    """The translator for ``language`` (a chat's setting; None or one the bot
    does not speak: the default)."""
    return _translator(language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE)


@cache
def _translator(language: str) -> Translator:
    catalog: gettext.NullTranslations
    if language == DEFAULT_LANGUAGE:
        catalog = gettext.NullTranslations()
    else:
        # A missing catalog is a broken install, not a reason to answer in
        # English without a word: fail where the language is first used.
        catalog = gettext.translation(DOMAIN, LOCALE_DIR, languages=[language])
    return Translator(language, catalog)


def supported_language(code: str | None) -> str | None:
    """The supported language a Telegram ``language_code`` (an IETF tag such
    as "de", "de-AT", "pt-br") or a user's ``/language`` word names, or None."""
    if not code:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].casefold()
    return primary if primary in SUPPORTED_LANGUAGES else None


def chat_language(
    chosen: str | None, *, private: bool, user_language: str | None, default: str
) -> str:
    """The language of a chat's texts: ``chosen`` (its setting) when it has
    one; in a private chat, the user's Telegram language when supported;
    else ``default`` (``[telegram] default_language``)."""
    if chosen in SUPPORTED_LANGUAGES:
        return chosen
    if private:
        found = supported_language(user_language)
        if found is not None:
            return found
    return default


def language_name(language: str) -> str:
    """The language's own name for itself ("Deutsch", "русский", "हिन्दी")."""
    name = Locale.parse(language).get_display_name(language) or language
    return name[:1].upper() + name[1:]


def N_(message: str) -> str:
    """Marks a text for the catalogs where it is defined; it is translated
    where it is shown (``translator(...).gettext(text)``)."""
    return message
