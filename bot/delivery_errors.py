"""What Telegram's refusals mean, by their words. Pure.

Telegram answers a send or an edit it will not make with an error whose
class (``BadRequest``, ``Forbidden``, ...) says little on its own: whether
the bot lost a right, a forum topic is gone, an image could not be used or
Telegram was not reached at all is in the message. These read it, for the
card sender (``bot.deliver``), the digest and edit senders, and the card's
own fallbacks (``bot.card_messages``). The edit-only words (a message that
cannot be edited, "not modified") are with the edit rules in ``bot.edits``.
"""

from __future__ import annotations

import warnings
from datetime import timedelta

from telegram.error import BadRequest, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning

# Telegram's words for "the bot may not post here (any more)", whichever of
# 400 or 403 they come with: the chat is suspended, not given up on.
_LOST_RIGHTS = (
    "need administrator rights",
    "not enough rights",
    "have no rights to send",
    "chat_write_forbidden",
    "topic_closed",
)
# Telegram's words for a forum topic that cannot take cards any more.
_TOPIC_GONE = ("message thread not found", "topic_closed", "topic_deleted")
# Telegram's words for an image it could not fetch or use.
_PHOTO_REFUSED = (
    "http url content",
    "wrong file identifier",
    "web page content",
    "photo_invalid",
    "image_process_failed",
    "wrong remote file",
    "file must be non-empty",
)
# Telegram's front end answering for a Telegram that is not there.
_UNREACHABLE = ("bad gateway", "service unavailable", "gateway timeout", "(502)", "(503)", "(504)")


def rejects_photo(error: BadRequest) -> bool:
    """Telegram could not use the image behind the URL (unreachable, not an
    image, too big, odd dimensions)."""
    reason = error.message.lower()
    return any(words in reason for words in _PHOTO_REFUSED)


def rejects_markup(error: BadRequest) -> bool:
    """Telegram could not parse the HTML's entities."""
    return "entit" in error.message.lower()


def rejects_buttons(error: BadRequest) -> bool:
    """Telegram refused the inline keyboard (a button or its URL)."""
    reason = error.message.lower()
    return "button" in reason or "url" in reason or "reply markup" in reason


def lost_rights(error: TelegramError) -> bool:
    """Telegram refused a send because the bot may not post there."""
    reason = error.message.lower()
    return any(words in reason for words in _LOST_RIGHTS)


def topic_gone(error: TelegramError) -> bool:
    """Telegram refused a send into a forum topic that was closed or deleted."""
    reason = error.message.lower()
    return any(words in reason for words in _TOPIC_GONE)


def telegram_unreachable(error: TelegramError) -> bool:
    """Telegram could not be reached at all (as opposed to answering no)."""
    text = str(error)
    return (
        isinstance(error, TimedOut)
        or text.startswith("httpx.")  # PTB's wording for transport errors
        or any(words in text.lower() for words in _UNREACHABLE)
    )


def retry_seconds(error: RetryAfter) -> float:
    """How long flood control asks to wait, in seconds."""
    # PTB 22 warns that retry_after becomes a timedelta in a future major
    # version; accept both and keep the warning out of the logs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: float | timedelta = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
