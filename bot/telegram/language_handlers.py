"""``/language [@channel] [xx]``: the language of a chat's texts and cards.

The chat is found and checked exactly as for ``/subscribe`` (here, or a
channel or group named from a private chat by a verified admin); anyone who
may see the chat's subscriptions may see its language.
"""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.i18n import (
    SUPPORTED_LANGUAGES,
    Translator,
    chat_language,
    language_name,
    supported_language,
    translator,
)
from bot.render import escape
from bot.telegram.args import split_target
from bot.telegram.handlers import _chat_name, _target_chat, reply, services
from bot.telegram.translation import chat_translator, forget_chat_translator

SHOWN_WORD = 20  # characters of an unknown language echoed back
# What a user may type besides a code: each language's English name (its
# own name, "Deutsch", is taken too).
_ENGLISH_NAMES = {"en": "english", "ru": "russian", "de": "german", "es": "spanish", "hi": "hindi"}


def _choices(t: Translator) -> str:
    lines = [t.gettext("Choose one:")]
    lines += [f"/language {code} — {escape(language_name(code))}" for code in SUPPORTED_LANGUAGES]
    return "\n".join(lines)


def _language_named(word: str) -> str | None:
    """A language code ("de", "de-AT") or a language's own or English name
    ("Deutsch", "german")."""
    found = supported_language(word)
    if found is not None:
        return found
    folded = word.casefold()
    for code in SUPPORTED_LANGUAGES:
        if folded in (language_name(code).casefold(), _ENGLISH_NAMES.get(code)):
            return code
    return None


async def language_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/language [@channel] [xx]: show or change the chat's language."""
    bot = services(context)
    args = list(context.args or [])
    t = await chat_translator(update, context)
    _ = t.gettext
    if len(args) > 2:
        await reply(
            update,
            context,
            _("Use <code>/language de</code>, or /language alone to see the choices."),
        )
        return
    changing = bool(split_target(args)[1])
    target = await _target_chat(update, context, args, changing=changing)
    if target is None:
        return
    chat, rest = target
    here = update.effective_chat
    this = here is not None and chat.id == here.id
    name = escape(_chat_name(chat))
    storage = bot.runtime.storage
    if not rest:
        # This chat's language is the one answering; another chat's is read.
        current = t.language
        if not this:
            settings = await storage.chats.chat_settings(chat.id)
            current = chat_language(
                settings.language,
                private=chat.type == ChatType.PRIVATE,
                user_language=None,
                default=bot.runtime.config.telegram.default_language,
            )
        text = (
            _("This chat's language: {language}.")
            if this
            else _("The language of {chat}: {language}.")
        ).format(chat=name, language=escape(language_name(current)))
        await reply(update, context, f"{text}\n\n{_choices(t)}")
        return
    language = _language_named(rest[0]) if len(rest) == 1 else None
    if language is None:
        shown = " ".join(rest)
        shown = shown if len(shown) <= SHOWN_WORD else shown[:SHOWN_WORD] + "…"
        text = _('I don\'t speak "{language}".').format(language=escape(shown))
        await reply(update, context, f"{text}\n\n{_choices(t)}")
        return
    await storage.chats.update_chat_settings(
        chat.id, {"language": language}, bot.runtime.clock.now()
    )
    if this:
        # The answer, and everything after it, in the language just chosen.
        forget_chat_translator(context)
        t = translator(language)
        text = t.gettext("From now on I speak {language} here.")
    else:
        text = _("From now on I speak {language} in {chat}.")
    await reply(update, context, text.format(language=escape(language_name(language)), chat=name))
