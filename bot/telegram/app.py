"""Builds the python-telegram-bot ``Application`` and runs it.

One place wires everything: the handlers, one error handler, the database and
HTTP client (opened in ``post_init``, closed in ``post_shutdown``), the
polling round as a JobQueue job (APScheduler underneath; never two rounds at
once), and the outbox sender as a background task stopped in ``post_stop``.
"""

from __future__ import annotations

import asyncio
import html
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from telegram import BotCommand, Update
from telegram.constants import ParseMode
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.clock import Clock
from bot.config import Config
from bot.deliver import Sender
from bot.errors import ConfigError
from bot.logs import register_secret
from bot.runtime import Runtime
from bot.telegram import handlers
from bot.telegram.permissions import PermissionChecker
from bot.telegram.ratelimit import MessageRateLimiter

log = logging.getLogger(__name__)


class _Application(Application):  # type: ignore[type-arg]
    """PTB's Application, with the polling round stopped first on stop():
    PTB's stop() waits for the running jobs (the polling round among them)
    before post_stop runs, and ``docker stop`` kills after 10 s."""

    def __init__(self, before_stop: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._before_stop = before_stop

    async def stop(self) -> None:
        await self._before_stop()
        await super().stop()


class NewsbotApplication:
    """The bot: a PTB Application plus newsbot's runtime, poller and sender."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        feed_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        token = config.token
        if not token:
            raise ConfigError(
                "telegram.token: no bot token (set NEWSBOT_TOKEN or [telegram] token)"
            )
        register_secret(token)
        # PTB 22 announces that RetryAfter.retry_after becomes a timedelta; the
        # sender accepts both, so the notice is noise in an operator's log.
        # (Set here, not in bot.logs: importing telegram costs every CLI command.)
        warnings.filterwarnings("ignore", ".*retry_after.*", PTBDeprecationWarning)
        self.config = config
        self._clock = clock
        self._feed_transport = feed_transport
        self._sender_task: asyncio.Task[None] | None = None
        self.services: handlers.BotServices | None = None
        builder = (
            Application.builder()
            .application_class(_Application, {"before_stop": self._stop_polling})
            .token(token)
            .defaults(Defaults(parse_mode=ParseMode.HTML))
            # Paces replies too; delivery paces itself below these limits, and
            # max_retries=0 hands RetryAfter to the sender, which reschedules.
            .rate_limiter(MessageRateLimiter(max_retries=0))
            .post_init(self._post_init)
            .post_stop(self._post_stop)
            .post_shutdown(self._post_shutdown)
        )
        if config.telegram.base_url:
            builder = builder.base_url(config.telegram.base_url)
            builder = builder.base_file_url(
                config.telegram.base_file_url
                or config.telegram.base_url.replace("/bot", "/file/bot")
            )
        self.application = builder.build()
        self._register_handlers()

    # -- wiring ----------------------------------------------------------

    def _register_handlers(self) -> None:
        app = self.application
        # Commands work in private chats, groups (also as /cmd@botname) and,
        # with the CHANNEL_POST filter, when posted inside a channel. Edited
        # messages are left out: editing "/subscribe x" should not run it again.
        everywhere = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
        for name, callback in (
            ("start", handlers.start),
            ("help", handlers.help_command),
            ("categories", handlers.categories_command),
            ("subscribe", handlers.subscribe),
            ("unsubscribe", handlers.unsubscribe),
            ("mysubs", handlers.mysubs),
            ("latest", handlers.latest),
            ("search", handlers.search),
            ("health", handlers.health),
        ):
            app.add_handler(CommandHandler(name, callback, filters=everywhere))
        app.add_handler(CallbackQueryHandler(handlers.button))
        app.add_handler(
            ChatMemberHandler(handlers.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, handlers.migrate))
        app.add_error_handler(on_error)

    async def _post_init(self, application: Application) -> None:  # type: ignore[type-arg]
        runtime = await Runtime.open(self.config, clock=self._clock, transport=self._feed_transport)
        try:
            titles = {c.id: c.title for c in self.config.categories}
            sender = Sender(
                runtime.storage,
                application.bot.send_message,
                self.config.delivery,
                runtime.clock,
                titles,
            )
            self.services = handlers.BotServices(
                runtime, sender, PermissionChecker(application.bot)
            )
            application.bot_data["services"] = self.services
            try:
                await application.bot.set_my_commands(
                    [BotCommand(name, text) for name, text in handlers.COMMANDS]
                )
            except TelegramError as error:
                log.warning("telegram: setMyCommands failed: %s", error)
            self._schedule_polling(application)
            self._sender_task = asyncio.create_task(sender.run(), name="newsbot-sender")
        except BaseException:
            await runtime.close()
            raise

    def _schedule_polling(self, application: Application) -> None:  # type: ignore[type-arg]
        tick = self.config.poll_tick
        job_queue = application.job_queue
        if job_queue is None:
            raise RuntimeError("python-telegram-bot was installed without the job-queue extra")
        job_queue.run_repeating(
            self._poll_job,
            interval=tick,
            first=0.0,
            name="poll-feeds",
            job_kwargs={
                # A round that outlasts the tick is not started twice.
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": None,
                # The scheduler starts only after post_init, when first=0 already
                # lies in the past, and APScheduler's interval trigger then skips
                # to the next tick (up to 30 s without news after a start). An
                # explicit first run time is kept as given: poll at once.
                "next_run_time": datetime.now(UTC),
            },
        )

    async def _poll_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self.services is not None
        report = await self.services.runtime.poller.run_round()
        if report is not None and report.deliveries:
            self.services.sender.wake()
        if self.services.sender.token_rejected:
            return  # no heartbeat: the container's health check turns unhealthy
        try:
            self.config.heartbeat_path.touch()
        except OSError as error:
            log.warning("poll: cannot touch heartbeat file: %s", error)

    async def _stop_polling(self) -> None:
        """End the running round at a feed boundary (stored feeds stay stored,
        the others are polled after the restart)."""
        if self.services is not None:
            await self.services.runtime.poller.stop()

    async def _post_stop(self, application: Application) -> None:  # type: ignore[type-arg]
        await self._stop_polling()  # normally stop() has done it; twice is harmless
        await self.stop_sender()

    async def stop_sender(self) -> None:
        if self.services is not None:
            await self.services.sender.stop()
        if self._sender_task is not None:
            try:
                await asyncio.wait_for(self._sender_task, timeout=15)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("deliver: sender did not stop in time")
            self._sender_task = None

    async def _post_shutdown(self, application: Application) -> None:  # type: ignore[type-arg]
        await self.stop_sender()
        if self.services is not None:
            await self.services.runtime.close()
            self.services = None

    # -- running ---------------------------------------------------------

    def run(self) -> None:
        """Block until Ctrl-C or SIGTERM: long polling, or a webhook if configured."""
        telegram = self.config.telegram
        allowed = Update.ALL_TYPES
        try:
            if telegram.webhook_url:
                path = telegram.webhook_url.rstrip("/").rsplit("/", 1)[-1] or "telegram"
                self.application.run_webhook(
                    listen=telegram.webhook_listen,
                    port=telegram.webhook_port,
                    url_path=path,
                    webhook_url=telegram.webhook_url,
                    secret_token=telegram.webhook_secret,
                    allowed_updates=allowed,
                    close_loop=False,
                )
            else:
                self.application.run_polling(allowed_updates=allowed, close_loop=False)
        finally:
            # PTB skips post_stop and post_shutdown when its own stop raises
            # (the polling task ended with InvalidToken: the token was revoked
            # while running). The database would stay open, and its aiosqlite
            # thread, which is not a daemon, would keep the process alive
            # after SIGTERM, forever.
            loop = asyncio.get_event_loop()
            try:
                if self.services is not None:
                    loop.run_until_complete(self._post_shutdown(self.application))
            finally:
                loop.close()

    @asynccontextmanager
    async def running(self, poll_interval: float = 0.1) -> AsyncIterator[NewsbotApplication]:
        """Run inside an existing event loop (tests): the same start and stop
        sequence as ``run``, without signal handling."""
        app = self.application
        await app.initialize()
        try:
            await self._post_init(app)
            assert app.updater is not None
            await app.updater.start_polling(
                poll_interval=poll_interval, allowed_updates=Update.ALL_TYPES
            )
            await app.start()
            try:
                yield self
            finally:
                if app.updater.running:
                    await app.updater.stop()
                if app.running:
                    await app.stop()
                await self._post_stop(app)
        finally:
            await app.shutdown()
            await self._post_shutdown(app)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its traceback (the token is redacted by the log
    filter); tell the user something went wrong, without details."""
    log.error("telegram: error while handling an update", exc_info=context.error)
    if isinstance(context.error, Forbidden):
        return  # the chat blocked us; nobody to tell
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(
                html.escape("Sorry, something went wrong. Please try again later."),
                do_quote=False,
            )
        except TelegramError:
            pass  # the original error is logged; a failed apology changes nothing
    if isinstance(update, Update) and update.callback_query is not None:
        try:
            await update.callback_query.answer("Something went wrong.")
        except TelegramError:
            pass


def run_bot(config: Config) -> int:
    NewsbotApplication(config).run()
    return 0
