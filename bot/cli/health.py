"""How the bot is doing: ``newsbot health`` (each feed, push and suspended
chat) and ``newsbot healthcheck`` (Docker's HEALTHCHECK)."""

from __future__ import annotations

import argparse
import sys

from bot.cli.feeds import NO_FEEDS_YET, resume_hint
from bot.clock import SystemClock
from bot.config import Config
from bot.storage import Storage
from bot.websub import describe_push


async def health(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    from bot.feed_admin import feed_state

    feeds = await storage.feeds.feed_health()
    if not feeds:
        print(NO_FEEDS_YET)
    pushed = {s.feed_id: s for s in await storage.websub.subscriptions()}
    now = SystemClock().now()
    for feed in feeds:
        state = feed_state(feed)
        when = feed.last_success_at.strftime("%Y-%m-%d %H:%M") if feed.last_success_at else "never"
        print(
            f"{feed.id:>4}  {state:<9} {feed.articles:5d} articles  last ok {when}  "
            f"{feed.title or feed.url}"
        )
        if feed.last_error:
            print(f"{'':16}{feed.error_count} errors: {feed.last_error}")
        if feed.disabled:
            print(f"{'':16}disabled, not polled: {resume_hint(feed)}")
        if feed.id in pushed:
            print(f"{'':16}{describe_push(pushed[feed.id], now)}")
    for chat in await storage.chats.suspended_chats():
        name = f"@{chat.username}" if chat.username else (chat.title or str(chat.id))
        print(
            f"suspended chat {chat.id} ({chat.type}, {name}): {chat.reason}; "
            f"{chat.pending} cards wait until the bot may post there again"
        )
    return 0


def healthcheck(args: argparse.Namespace, config: Config) -> int:
    from bot.health import heartbeat_verdict

    healthy, verdict = heartbeat_verdict(config)
    print(verdict, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1
