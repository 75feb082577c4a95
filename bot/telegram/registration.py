"""Which handler answers which update, and the command menu Telegram shows.

The order of registration is the order of precedence: PTB gives an update to
the first handler of a group whose filters match.
"""

from __future__ import annotations

import logging

from telegram import BotCommand
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    ChosenInlineResultHandler,
    CommandHandler,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.i18n import SUPPORTED_LANGUAGES, translator
from bot.telegram import (
    about_handlers,
    digest_handlers,
    feed_button_handlers,
    feed_handlers,
    filter_handlers,
    follow,
    handlers,
    headline_handlers,
    inline,
    language_handlers,
    membership_handlers,
    reload_handlers,
    subscription_handlers,
)
from bot.telegram.error_handler import on_error
from bot.telegram.feed_buttons import PATTERN as FEED_BUTTONS
from bot.telegram.settings_handlers import SETTINGS_COMMANDS, SETTINGS_PATTERN, settings_button

log = logging.getLogger(__name__)


def register_handlers(app: Application) -> None:  # type: ignore[type-arg]
    """Every command, button, inline query and chat event, and the one error
    handler."""
    # Commands work in private chats, groups (also as /cmd@botname) and,
    # with the CHANNEL_POST filter, when posted inside a channel. Edited
    # messages are left out: editing "/subscribe x" should not run it again.
    everywhere = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
    # First: a forwarded post is about its channel, even if its text is a
    # command ("/latest" forwarded from a channel is not a request).
    app.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.FORWARDED,
            subscription_handlers.forwarded,
        )
    )
    # Before /start itself: a deep link's /start PAYLOAD (has_args).
    app.add_handler(
        CommandHandler("start", follow.start_with_payload, filters=everywhere, has_args=True)
    )
    for name, callback in (
        ("start", about_handlers.start),
        ("help", about_handlers.help_command),
        ("categories", subscription_handlers.categories_command),
        ("subscribe", subscription_handlers.subscribe),
        ("unsubscribe", subscription_handlers.unsubscribe),
        ("mysubs", subscription_handlers.mysubs),
        ("filter", filter_handlers.filter_command),
        ("digest", digest_handlers.digest_command),
        ("quiet", digest_handlers.quiet_command),
        ("latest", headline_handlers.latest),
        ("search", headline_handlers.search),
        ("health", about_handlers.health),
        ("whoami", about_handlers.whoami),
        ("link", follow.link_command),
        # The operators' (feed_handlers.OPERATOR_COMMANDS): not in the public menu.
        ("addfeed", feed_handlers.addfeed),
        ("removefeed", feed_handlers.removefeed),
        ("feeds", feed_handlers.feeds_command),
        ("feed", feed_handlers.feed_command),
        ("export", feed_handlers.export_command),
        ("reload", reload_handlers.reload_command),
        *SETTINGS_COMMANDS,
        ("language", language_handlers.language_command),
    ):
        app.add_handler(CommandHandler(name, callback, filters=everywhere))
    app.add_handler(CallbackQueryHandler(follow.confirm_follow, pattern=follow.CONFIRM_PATTERN))
    app.add_handler(CallbackQueryHandler(feed_button_handlers.button, pattern=FEED_BUTTONS))
    app.add_handler(
        MessageHandler(filters.UpdateType.MESSAGE & filters.Document.ALL, feed_handlers.document)
    )
    app.add_handler(CallbackQueryHandler(settings_button, pattern=SETTINGS_PATTERN))
    app.add_handler(
        CallbackQueryHandler(
            subscription_handlers.toggle_button, pattern=subscription_handlers.is_toggle
        )
    )
    app.add_handler(
        CallbackQueryHandler(
            headline_handlers.search_page_button, pattern=headline_handlers.is_search_page
        )
    )
    app.add_handler(CallbackQueryHandler(handlers.expired_button))
    app.add_handler(InlineQueryHandler(inline.inline_query))
    app.add_handler(ChosenInlineResultHandler(inline.chosen_inline_result))
    app.add_handler(
        ChatMemberHandler(membership_handlers.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, membership_handlers.migrate))
    app.add_error_handler(on_error)


async def set_commands(application: Application, default_language: str) -> None:  # type: ignore[type-arg]
    """The command menu in each language the bot speaks: Telegram shows a
    user the list of their app's language, and the one without a language
    (here in ``default_language``) to everyone else."""
    menus: list[tuple[str | None, str]] = [(None, default_language)]
    menus += [(language, language) for language in SUPPORTED_LANGUAGES]
    for language_code, language in menus:
        _ = translator(language).gettext
        commands = [BotCommand(name, _(text)) for name, text in handlers.COMMANDS]
        try:
            await application.bot.set_my_commands(commands, language_code=language_code)
        except TelegramError as error:
            log.warning("telegram: setMyCommands (%s) failed: %s", language_code or "-", error)
