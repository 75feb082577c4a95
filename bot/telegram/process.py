"""The bot as the process's main loop (``newsbot run``): one event loop for
everything, long polling or a webhook, until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os

from telegram import Update

from bot.config import Config
from bot.roles import ALL_ROLES, Role, describe
from bot.telegram.app import NewsbotApplication
from bot.telegram.signals import on_stop_signals
from bot.telegram.webhook import webhook_options

log = logging.getLogger(__name__)


def run_bot(
    config: Config,
    roles: frozenset[Role] = frozenset(ALL_ROLES),
    *,
    config_path: str | os.PathLike[str] | None = None,
) -> int:
    """Run the bot; SIGHUP (and /reload) read ``config_path`` again."""
    newsbot = NewsbotApplication(config, roles=roles, config_path=config_path)
    if config.storage.url:
        _run_with_roles(newsbot)
    else:
        _run(newsbot)
    return 0


def _run(newsbot: NewsbotApplication) -> None:
    """Block until Ctrl-C or SIGTERM: long polling, or a webhook if configured."""
    telegram = newsbot.config.telegram
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # PTB's run_* pick it up
    try:
        if not _wait_for_telegram_in(newsbot, loop):
            return  # stopped while waiting
        if telegram.webhook_url:
            # PTB runs on the current event loop, the one the bot's HTTP
            # client and the runtime were opened on while waiting for
            # Telegram; the secret is read on it too.
            secret = loop.run_until_complete(newsbot.webhook_secret())
            newsbot.application.run_webhook(**webhook_options(telegram, secret), close_loop=False)
        else:
            newsbot.application.run_polling(allowed_updates=Update.ALL_TYPES, close_loop=False)
    finally:
        # PTB skips post_stop and post_shutdown when its own stop raises
        # (the polling task ended with InvalidToken: the token was revoked
        # while running). The database would stay open, and its aiosqlite
        # thread, which is not a daemon, would keep the process alive
        # after SIGTERM, forever.
        try:
            loop.run_until_complete(newsbot.close())
        finally:
            loop.close()
            asyncio.set_event_loop(None)


def _run_with_roles(newsbot: NewsbotApplication) -> None:
    """On PostgreSQL: this process's roles only (``--role``), with the
    active sender and the long-polling reader elected among all the
    processes. Ctrl-C and SIGTERM stop it, also while it waits for
    Telegram at start."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    started = False

    async def serve() -> None:
        nonlocal started
        log.info("newsbot: running as %s", describe(newsbot.roles))
        async with newsbot.running(poll_interval=0.0):
            started = True
            await stop.wait()

    task = loop.create_task(serve())

    def on_signal() -> None:
        if started:
            stop.set()
        else:
            task.cancel()

    try:
        with on_stop_signals(loop, on_signal):
            try:
                loop.run_until_complete(task)
            except asyncio.CancelledError:
                log.info("newsbot: stopped while starting")
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _wait_for_telegram_in(newsbot: NewsbotApplication, loop: asyncio.AbstractEventLoop) -> bool:
    """``wait_for_telegram`` with Ctrl-C and SIGTERM stopping the wait (PTB
    installs its own handlers only later). False if stopped."""
    waiting = loop.create_task(newsbot.wait_for_telegram())
    with on_stop_signals(loop, waiting.cancel):
        try:
            loop.run_until_complete(waiting)
            return True
        except asyncio.CancelledError:
            log.info("telegram: stopped while waiting for the Bot API")
            return False
