"""PTB's AIORateLimiter, applied to messages only.

Telegram's flood limits (about 30 messages/s per bot, 20 per minute in a
group or channel) count messages. AIORateLimiter throttles every request that
names a chat, so permission checks (getChatMember, getChat) and button
answers in a busy group would use up that group's 20-per-minute budget and
delay the replies themselves. Everything that is not a message goes straight
through.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram.ext import AIORateLimiter

JSONDict = dict[str, Any]

# Methods that post or change a message in a chat.
MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "sendPhoto",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
    }
)


class MessageRateLimiter(AIORateLimiter):
    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        if endpoint not in MESSAGE_METHODS:
            return await callback(*args, **kwargs)
        return await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
