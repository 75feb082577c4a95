"""The bot in each language it speaks, end to end through the fake Bot API:
how a chat gets its language, ``/language``, every command answering in
every language with valid HTML, cards' words and the command menu."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import unquote

import pytest

from bot.i18n import SUPPORTED_LANGUAGES, translator
from tests.bot_harness import (
    ALICE,
    BOB,
    BotHarness,
    buttons,
    item,
    running_bot,
    space_items,
)
from tests.fake_telegram import ApiError, Call, FakeTelegram
from tests.feed_server import FeedServer
from tests.telegram_html import check_telegram_html
from tests.test_permissions import CHANNEL, CHANNEL_NAME, GROUP, make_channel, make_group

# One private chat per language, its user's Telegram app in that language.
READERS = {language: 7100 + n for n, language in enumerate(SUPPORTED_LANGUAGES)}
# What /help starts with in each language: proof that the answer is translated.
COMMANDS_HEADING = {
    "en": "Commands",
    "ru": "Команды",
    "de": "Befehle",
    "es": "Comandos",
    "hi": "कमांड",
}
GREETING = {"en": "Hi!", "ru": "Привет!", "de": "Hallo!", "es": "¡Hola!", "hi": "नमस्ते!"}


@pytest.fixture
async def bot(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> AsyncIterator[BotHarness]:
    async with running_bot(tmp_path, fake_telegram, feed_server) as harness:
        yield harness


def speaks(fake: FakeTelegram, user_id: int, language_code: str) -> None:
    fake.user(user_id, language_code=language_code)


async def stored_language(bot: BotHarness, chat_id: int) -> str | None:
    return (await bot.storage.chats.chat_settings(chat_id)).language


# -- how a chat gets its language -------------------------------------------------


async def test_a_private_chat_in_german_gets_german_without_asking(bot: BotHarness) -> None:
    speaks(bot.fake, BOB, "de")
    text = (await bot.say(BOB, "/start")).text(BOB)
    assert text.startswith("Hallo! Ich poste Schlagzeilen nach Kategorien.")
    # Stored the first time: the user's later choice is the only thing that changes it.
    assert await stored_language(bot, BOB) == "de"


async def test_a_regional_language_code_gets_its_language(bot: BotHarness) -> None:
    speaks(bot.fake, BOB, "de-AT")
    assert (await bot.say(BOB, "/help")).text(BOB).startswith("Befehle")


async def test_a_language_the_bot_does_not_speak_gets_the_default(bot: BotHarness) -> None:
    speaks(bot.fake, BOB, "pt-br")
    assert (await bot.say(BOB, "/help")).text(BOB).startswith("Commands")
    # Nothing stored: a later [telegram] default_language reaches this chat too.
    assert await stored_language(bot, BOB) is None


async def test_a_chosen_language_outlasts_the_users_telegram_language(bot: BotHarness) -> None:
    speaks(bot.fake, BOB, "de")
    await bot.say(BOB, "/language es")
    speaks(bot.fake, BOB, "ru")
    assert (await bot.say(BOB, "/help")).text(BOB).startswith("Comandos")


async def test_groups_and_odd_languages_use_the_configured_default_language(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with running_bot(
        tmp_path, fake_telegram, feed_server, telegram={"default_language": "es"}
    ) as bot:
        make_group(bot)
        # A member's own Telegram language does not decide for the whole group.
        speaks(bot.fake, BOB, "de")
        assert (await bot.say(GROUP, "/help", user_id=BOB)).text(GROUP).startswith("Comandos")
        speaks(bot.fake, 7777, "pt")
        assert (await bot.say(7777, "/help")).text(7777).startswith("Comandos")


# -- /language ----------------------------------------------------------------------


async def test_language_alone_shows_the_current_language_and_the_choices(
    bot: BotHarness,
) -> None:
    text = (await bot.say(ALICE, "/language")).text(ALICE)
    assert text.startswith("This chat's language: English.")
    for code, name in [("en", "English"), ("ru", "Русский"), ("de", "Deutsch"), ("hi", "हिन्दी")]:
        assert f"/language {code} — {name}" in text


async def test_language_changes_the_chats_language_and_answers_in_it(bot: BotHarness) -> None:
    exchange = await bot.ask(
        bot.fake.message(ALICE, "/language ru"), bot.fake.message(ALICE, "/help")
    )
    first, second = exchange.texts(ALICE)
    assert check_telegram_html(first) == "Теперь я говорю здесь на языке: Русский."
    assert check_telegram_html(second).startswith("Команды")
    assert await stored_language(bot, ALICE) == "ru"


@pytest.mark.parametrize("word", ["DE", "de-CH", "Deutsch", "german"])
async def test_language_takes_codes_and_names(bot: BotHarness, word: str) -> None:
    await bot.say(ALICE, f"/language {word}")
    assert await stored_language(bot, ALICE) == "de"


async def test_an_unknown_language_is_refused_with_the_choices(bot: BotHarness) -> None:
    text = (await bot.say(ALICE, "/language <klingon>")).text(ALICE)
    assert text.startswith('I don\'t speak "<klingon>".')
    assert "/language es — Español" in text
    # Alice's Telegram app is in English, stored when she first wrote.
    assert await stored_language(bot, ALICE) == "en"


async def test_only_a_groups_admins_change_its_language(bot: BotHarness) -> None:
    make_group(bot)
    refused = (await bot.say(GROUP, "/language de", user_id=BOB)).text(GROUP)
    assert refused == "Only this group's admins can change its subscriptions."
    assert await stored_language(bot, GROUP) is None
    # Anyone may see it.
    assert (
        (await bot.say(GROUP, "/language", user_id=BOB))
        .text(GROUP)
        .startswith("This chat's language: English.")
    )
    await bot.say(GROUP, "/language de", user_id=ALICE)
    assert (await bot.say(GROUP, "/help", user_id=BOB)).text(GROUP).startswith("Befehle")


async def test_a_channel_admin_sets_the_channels_language_from_a_private_chat(
    bot: BotHarness,
) -> None:
    await make_channel(bot)
    answer = (await bot.say(ALICE, f"/language @{CHANNEL_NAME} hi")).text(ALICE)
    # The answer is in the asking chat's language; the channel's cards in Hindi.
    assert answer == f"From now on I speak हिन्दी in @{CHANNEL_NAME}."
    assert await stored_language(bot, CHANNEL) == "hi"
    shown = (await bot.say(ALICE, f"/language @{CHANNEL_NAME}")).text(ALICE)
    assert shown.startswith(f"The language of @{CHANNEL_NAME}: हिन्दी.")


async def test_someone_who_does_not_manage_a_channel_cannot_set_its_language(
    bot: BotHarness,
) -> None:
    await make_channel(bot, alice="member")
    text = (await bot.say(ALICE, f"/language @{CHANNEL_NAME} de")).text(ALICE)
    assert text == f"Only admins of @{CHANNEL_NAME} can change its subscriptions."
    assert await stored_language(bot, CHANNEL) is None


# -- every command in every language ---------------------------------------------

COMMANDS = [
    "/start",
    "/help",
    "/categories",
    "/subscribe",
    "/subscribe space",
    "/subscribe nonsense",
    "/mysubs",
    "/filter",
    '/filter +mars -"open',
    "/filter robot",
    "/filter +rover",
    "/filter space +rover",
    "/filter clear",
    "/latest",
    "/latest space 2",
    "/latest 0",
    "/latest spase",
    "/search rover",
    "/search",
    "/search zzzzqqq",
    "/link",
    "/link space",
    "/whoami",
    "/health",
    "/language",
    "/language xx",
    "/unsubscribe space",
    "/unsubscribe all",
    "/unsubscribe all",
    "/start sub-space",
    "/start nonsense-payload",
]


def _answers(calls: list[Call], chat_id: int) -> list[str]:
    texts = []
    for call in calls:
        if call.chat_id != chat_id:
            continue
        if call.method == "sendMessage":
            texts.append(str(call.params["text"]))
        elif call.method == "sendPhoto":
            texts.append(str(call.params.get("caption", "")))
    return texts


async def _run_commands(bot: BotHarness, chat_id: int) -> list[list[str]]:
    answers = []
    for command in COMMANDS:
        exchange = await bot.say(chat_id, command)  # checks HTML, no apology
        texts = _answers(exchange.calls, chat_id)
        assert texts, f"no answer to {command}"
        for text in texts:
            check_telegram_html(text)
        answers.append(texts)
    return answers


async def test_every_command_answers_in_every_language_with_valid_html(
    bot: BotHarness,
) -> None:
    # Alice is an operator, so /health answers with the report too.
    by_language: dict[str, list[list[str]]] = {}
    for language in SUPPORTED_LANGUAGES:
        await bot.say(ALICE, f"/language {language}")
        by_language[language] = await _run_commands(bot, ALICE)
        help_text = check_telegram_html(by_language[language][1][0])
        assert help_text.startswith(COMMANDS_HEADING[language])
    english = by_language["en"]
    for language in SUPPORTED_LANGUAGES:
        if language == "en":
            continue
        for command, ours, theirs in zip(COMMANDS, by_language[language], english, strict=True):
            assert ours != theirs, f"{command} answered in English for {language}"


async def test_buttons_answer_in_the_chats_language(bot: BotHarness) -> None:
    await bot.say(ALICE, "/language de")
    exchange = await bot.press(ALICE, ALICE, "sub:space")
    assert exchange.answer().params["text"] == "Space abonniert"
    exchange = await bot.press(ALICE, ALICE, "nonsense")
    assert exchange.answer().params["text"] == "Diese Schaltfläche ist abgelaufen."


# -- a whole run in each language --------------------------------------------------


def _card_buttons(call: Call) -> list[str]:
    return [b["text"] for b in buttons(call)]


async def test_start_subscribe_card_and_latest_in_each_language(bot: BotHarness) -> None:
    fake = bot.fake
    for language, reader in READERS.items():
        speaks(fake, reader, language)
        assert (await bot.say(reader, "/start")).text(reader).startswith(GREETING[language])
        subscribed = (await bot.say(reader, "/subscribe space")).text(reader)
        assert subscribed == translator(language).gettext("Subscribed to {categories}.").format(
            categories="Space"
        )
    bot.feeds.serve("/space.xml", space_items(item("space-new", "Comet seen at dawn", hours_ago=0)))

    def is_card(reader: int) -> Callable[[Call], bool]:
        return lambda c: (
            c.method == "sendMessage"
            and c.chat_id == reader
            and "Comet seen at dawn" in str(c.params["text"])
        )

    for language, reader in READERS.items():
        card = await fake.wait_for_async(is_card(reader), timeout=15)
        t = translator(language)
        assert _card_buttons(card) == [t.gettext("Read"), t.gettext("Share")]
        check_telegram_html(str(card.params["text"]))
        # The text a reader shares carries the bot's link in their language.
        follow = t.gettext("Follow on Telegram: {link}").format(link="")
        assert follow in unquote(buttons(card)[1]["url"])
        latest = (await bot.say(reader, "/latest space 1")).reply(reader)
        heading = t.gettext("Latest in {category}").format(category="Space")
        assert str(latest.params["text"]).startswith(f"<b>{heading}</b>")


async def test_a_channels_cards_come_in_its_language(bot: BotHarness) -> None:
    await make_channel(bot)
    await bot.say(ALICE, f"/subscribe @{CHANNEL_NAME} space")
    await bot.say(ALICE, f"/language @{CHANNEL_NAME} ru")
    bot.feeds.serve("/space.xml", space_items(item("space-ru", "Moon base news", hours_ago=0)))
    card = await bot.fake.wait_for_async(
        lambda c: (
            c.method == "sendMessage"
            and c.chat_id == CHANNEL
            and "Moon base news" in str(c.params["text"])
        ),
        timeout=15,
    )
    assert _card_buttons(card) == ["Читать", "Поделиться"]


# -- the command menu ---------------------------------------------------------------


async def test_the_command_menu_is_set_in_every_language(bot: BotHarness) -> None:
    fake = bot.fake
    codes = [c.params.get("language_code") for c in fake.calls("setMyCommands")]
    assert codes == [None, *SUPPORTED_LANGUAGES]
    assert [c["command"] for c in fake.commands()] == [
        c["command"] for c in fake.commands(language_code="de")
    ]
    german = {c["command"]: c["description"] for c in fake.commands(language_code="de")}
    assert german["language"] == "Die Sprache des Bots hier: /language de"
    assert german["help"] == "So nutzt du den Bot in Chats, Gruppen und Kanälen"
    default = {c["command"]: c["description"] for c in fake.commands()}
    assert default["help"] == "How to use the bot, in chats, groups and channels"
    for language in SUPPORTED_LANGUAGES:
        assert "language" in {c["command"] for c in fake.commands(language_code=language)}


# -- failures ---------------------------------------------------------------------


async def test_the_apology_for_a_failed_command_is_in_the_chats_language(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer
) -> None:
    async with running_bot(tmp_path, fake_telegram, feed_server, expect_error_logs=True) as bot:
        speaks(bot.fake, BOB, "es")
        await bot.say(BOB, "/help")
        bot.fake.fail_next("sendMessage", ApiError(400, "Bad Request: odd failure"), chat_id=BOB)
        exchange = await bot.ask(bot.fake.message(BOB, "/latest"), check=False)
        failed, apology = exchange.sent(BOB)
        assert not failed.ok and apology.ok
        assert check_telegram_html(str(apology.params["text"])) == (
            "Lo siento, algo salió mal. Inténtalo de nuevo más tarde."
        )


# -- inline mode ------------------------------------------------------------------


async def test_inline_results_carry_the_asking_users_language(bot: BotHarness) -> None:
    speaks(bot.fake, BOB, "ru")
    exchange = await bot.ask(bot.fake.inline_query(BOB, "rover"))
    (answer,) = exchange.of("answerInlineQuery")
    results = answer.params["results"]
    if isinstance(results, str):
        results = json.loads(results)
    assert results
    labels = [b["text"] for b in results[0]["reply_markup"]["inline_keyboard"][0]]
    assert labels == ["Читать", "Поделиться"]
    # Personal: another user's language must not get this cached answer.
    assert answer.params["is_personal"] in (True, "true", "True")
