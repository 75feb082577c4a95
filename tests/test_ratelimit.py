"""Only messages count toward Telegram's per-group flood budget."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.telegram.ratelimit import MessageRateLimiter

GROUP = -1001234567890


async def test_permission_checks_in_a_group_do_not_use_its_message_budget() -> None:
    limiter = MessageRateLimiter(max_retries=0)
    await limiter.initialize()
    calls = 0

    async def answer(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"ok": True}

    # AIORateLimiter alone would hold the 21st request to this group for about
    # a minute (20 per minute); these all go straight through.
    async with asyncio.timeout(10):
        for _ in range(60):
            await limiter.process_request(
                answer, (), {}, "getChatMember", {"chat_id": GROUP, "user_id": 1}, None
            )
    assert calls == 60
    await limiter.shutdown()


async def test_messages_to_a_group_are_still_paced() -> None:
    limiter = MessageRateLimiter(max_retries=0)
    await limiter.initialize()
    sent = 0

    async def answer(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        nonlocal sent
        sent += 1
        return {"ok": True}

    async def send_many() -> None:
        for _ in range(25):
            await limiter.process_request(
                answer, (), {}, "sendMessage", {"chat_id": GROUP, "text": "x"}, None
            )

    task = asyncio.create_task(send_many())
    await asyncio.sleep(1.0)
    assert sent <= 20  # the group's 20-per-minute budget holds the rest back
    task.cancel()
    await limiter.shutdown()
