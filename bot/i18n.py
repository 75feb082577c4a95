"""The languages the bot speaks, and the translator of one chat's texts.

Every text a chat sees is written in English in the code as ``_("...")``
(named ``{placeholders}`` filled with ``str.format`` after translation, so a
translation may move them) and translated through gettext catalogs for the
chat's language.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True, slots=True)
class Translator:
    language: str
    catalog: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        return self.catalog.gettext(message)

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        return self.catalog.ngettext(singular, plural, count)


def translator(language: str | None) -> Translator:
    """The translator for ``language`` (a chat's setting; None: the default)."""
    return Translator(language or DEFAULT_LANGUAGE, gettext.NullTranslations())


def N_(message: str) -> str:
    """Marks a text for the catalogs where it is defined; it is translated
    where it is shown (``translator(...).gettext(text)``)."""
    return message
