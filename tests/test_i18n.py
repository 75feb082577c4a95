"""The catalogs and the language rules: every text translated in every
language with the same placeholders and tags, compiled catalogs in step with
their .po files, the code's texts all in the catalogs, and which language a
chat gets."""

from __future__ import annotations

import io
import re
import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.config import parse_config
from bot.errors import ConfigError
from bot.i18n import (
    DEFAULT_LANGUAGE,
    LOCALE_DIR,
    SUPPORTED_LANGUAGES,
    chat_language,
    language_name,
    supported_language,
    translator,
)
from bot.timezones import zone
from tests.telegram_html import check_telegram_html

ROOT = Path(__file__).resolve().parents[1]
TRANSLATED = [language for language in SUPPORTED_LANGUAGES if language != DEFAULT_LANGUAGE]
_TAG = re.compile(r"</?[a-z][a-z0-9-]*(?:\s[^<>]*)?>")


def catalog(language: str) -> Catalog:
    with open(LOCALE_DIR / language / "LC_MESSAGES" / "newsbot.po", "rb") as po:
        return read_po(po, locale=language)


def messages(language: str) -> list[Message]:
    return [m for m in catalog(language) if m.id]


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def tags(text: str) -> list[str]:
    return _TAG.findall(text)


def forms(message: Message) -> tuple[list[str], list[str]]:
    """(English texts, translations) of a message, plural or not."""
    ids = [message.id] if isinstance(message.id, str) else list(message.id)
    strings = [message.string] if isinstance(message.string, str) else list(message.string)
    return ids, strings


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_is_translated_in_every_language(language: str) -> None:
    found = messages(language)
    assert found
    for message in found:
        _, strings = forms(message)
        assert all(s.strip() for s in strings), f"{language}: untranslated {message.id!r}"
        assert not message.fuzzy, f"{language}: fuzzy {message.id!r}"
    plurals = catalog(language).num_plurals
    for message in found:
        if message.pluralizable:
            assert len(forms(message)[1]) == plurals, f"{language}: {message.id!r}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_babel_finds_nothing_wrong_in_the_catalog(language: str) -> None:
    problems = [(m.id, errors) for m, errors in catalog(language).check()]
    assert problems == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders_and_html_tags_of_the_english_text(
    language: str,
) -> None:
    for message in messages(language):
        ids, strings = forms(message)
        english = ids[-1]
        for text in strings:
            assert placeholders(text) == placeholders(english), (language, english, text)
            # Tags may move with the words, but the same ones, nested the same way.
            assert sorted(tags(text)) == sorted(tags(english)), (language, english, text)
            if tags(english):
                filled = text.format(**{name: "x" for name in placeholders(text)})
                check_telegram_html(filled)


@pytest.mark.parametrize("language", TRANSLATED)
def test_compiled_catalogs_are_up_to_date_with_their_po_files(language: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, catalog(language))
    stored = (LOCALE_DIR / language / "LC_MESSAGES" / "newsbot.mo").read_bytes()
    assert compiled.getvalue() == stored, (
        f"bot/locale/{language}/LC_MESSAGES/newsbot.mo is stale: run "
        "pybabel compile -d bot/locale -D newsbot"
    )


def test_every_text_in_the_code_is_in_every_catalog() -> None:
    """A text added to the code without a catalog update fails here (see
    README "Languages" for the pybabel commands)."""
    in_code = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map=[("bot/**.py", "python")]):
        in_code.add(message if isinstance(message, str) else message[0])
    assert in_code
    for language in TRANSLATED:
        in_catalog = {m.id if isinstance(m.id, str) else m.id[0] for m in messages(language)}
        assert in_code - in_catalog == set(), (
            f"{language}: texts not in the catalog; run the pybabel extract and update "
            'commands of README "Translating", translate, then pybabel compile'
        )
        assert in_catalog - in_code == set(), f"{language}: texts no longer in the code"


def test_the_compiled_catalogs_are_package_data() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"locale/*/LC_MESSAGES/*.mo"' in pyproject
    for language in TRANSLATED:
        assert (LOCALE_DIR / language / "LC_MESSAGES" / "newsbot.mo").is_file()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ru", "ru"),
        ("de-AT", "de"),
        ("DE", "de"),
        ("es_MX", "es"),
        ("hi", "hi"),
        ("en-GB", "en"),
        ("pt", None),
        ("pt-br", None),
        ("", None),
        (None, None),
        ("-", None),
    ],
)
def test_a_telegram_language_code_names_a_supported_language_or_none(
    code: str | None, expected: str | None
) -> None:
    assert supported_language(code) == expected


def test_a_chat_gets_its_choice_then_its_users_language_then_the_default() -> None:
    assert chat_language("es", private=True, user_language="de", default="en") == "es"
    assert chat_language(None, private=True, user_language="de-AT", default="en") == "de"
    assert chat_language(None, private=True, user_language="pt", default="ru") == "ru"
    # A group's members speak many languages: the configured default.
    assert chat_language(None, private=False, user_language="de", default="hi") == "hi"
    # A stored value this version does not speak falls back like none.
    assert chat_language("xx", private=True, user_language=None, default="en") == "en"


def test_an_unknown_language_translates_as_the_default() -> None:
    assert translator("xx").language == DEFAULT_LANGUAGE
    assert translator(None).gettext("Read") == "Read"


@pytest.mark.parametrize(
    ("language", "read", "share"),
    [
        ("en", "Read", "Share"),
        ("ru", "Читать", "Поделиться"),
        ("de", "Lesen", "Teilen"),
        ("es", "Leer", "Compartir"),
        ("hi", "पढ़ें", "शेयर करें"),
    ],
)
def test_each_language_has_its_own_words(language: str, read: str, share: str) -> None:
    t = translator(language)
    assert (t.gettext("Read"), t.gettext("Share")) == (read, share)


@pytest.mark.parametrize(
    ("language", "one", "two", "five", "twenty_one"),
    [
        ("en", "1 feed", "2 feeds", "5 feeds", "21 feeds"),
        ("ru", "1 лента", "2 ленты", "5 лент", "21 лента"),
        ("de", "1 Feed", "2 Feeds", "5 Feeds", "21 Feeds"),
        ("es", "1 fuente", "2 fuentes", "5 fuentes", "21 fuentes"),
        ("hi", "1 फ़ीड", "2 फ़ीड", "5 फ़ीड", "21 फ़ीड"),
    ],
)
def test_plurals_follow_each_languages_rules(
    language: str, one: str, two: str, five: str, twenty_one: str
) -> None:
    t = translator(language)
    shown = [t.ngettext("{count} feed", "{count} feeds", n).format(count=n) for n in (1, 2, 5, 21)]
    assert shown == [one, two, five, twenty_one]


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "1 Dec 2026, 13:30 CET"),
        ("de", "1. Dez. 2026, 13:30 CET"),
        # CLDR keeps "2026 г." together with a narrow no-break space.
        ("ru", "1 дек. 2026\u202fг., 13:30 CET"),
        ("es", "1 dic 2026, 13:30 CET"),
    ],
)
def test_times_are_written_in_the_chats_language_and_zone(language: str, expected: str) -> None:
    when = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    assert translator(language).date_time(when, zone("Europe/Berlin")) == expected


def test_numbers_are_grouped_as_the_language_writes_them() -> None:
    assert translator("en").number(12345) == "12,345"
    assert translator("de").number(12345) == "12.345"


def test_each_language_is_named_in_itself() -> None:
    assert [language_name(code) for code in SUPPORTED_LANGUAGES] == [
        "English",
        "Русский",
        "Deutsch",
        "Español",
        "हिन्दी",
    ]


def _config(**telegram: object) -> dict[str, object]:
    return {
        "telegram": {"token": "1:x", **telegram},
        "categories": [{"id": "space", "title": "Space"}],
        "feeds": [{"url": "https://example.com/feed.xml", "categories": ["space"]}],
    }


def test_the_default_language_is_english_and_may_be_configured() -> None:
    assert parse_config(_config()).telegram.default_language == "en"
    assert parse_config(_config(default_language="de")).telegram.default_language == "de"


@pytest.mark.parametrize("value", ["pt", "deutsch", "de-AT", ""])
def test_a_default_language_the_bot_does_not_speak_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="default_language"):
        parse_config(_config(default_language=value))
