"""Builds the python-telegram-bot ``Application`` and runs it.

One place wires everything: the handlers, one error handler, the database and
HTTP client (opened in ``post_init``, closed in ``post_shutdown``), the
polling round as a JobQueue job (APScheduler underneath; never two rounds at
once), and the outbox sender as a background task stopped in ``post_stop``.

Before any of that, ``wait_for_telegram`` retries getMe with backoff while
Telegram is unreachable, polling feeds with a plain loop meanwhile (the
database is then opened early and ``post_init`` reuses it).
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import secrets
import signal
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telegram import BotCommand, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    ChosenInlineResultHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    InlineQueryHandler,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.deliver import Sender
from bot.errors import ConfigError, StorageError
from bot.fetch import NO_NETWORK, Network
from bot.i18n import SUPPORTED_LANGUAGES, translator
from bot.logs import register_secret
from bot.netguard import Resolver, system_resolver
from bot.reload import CurrentConfig, ReloadPlan
from bot.retention import prune
from bot.roles import (
    ALL_ROLES,
    SENDER_LOCK,
    UPDATES_LOCK,
    AdvisoryLock,
    Leadership,
    Role,
    SoleProcess,
    describe,
)
from bot.runtime import Runtime
from bot.storage import open_storage
from bot.storage.db import PostgresDatabase
from bot.telegram import (
    digest_handlers,
    feed_handlers,
    filter_handlers,
    follow,
    handlers,
    inline,
    language_handlers,
    reload_handlers,
)
from bot.telegram.alerts import OperatorAlerts
from bot.telegram.feed_buttons import PATTERN as FEED_BUTTONS
from bot.telegram.operations import Operations
from bot.telegram.permissions import PermissionChecker
from bot.telegram.ratelimit import MessageRateLimiter
from bot.telegram.settings_handlers import SETTINGS_COMMANDS, SETTINGS_PATTERN, settings_button
from bot.telegram.translation import chat_translator
from bot.telegram.websub import WebSubPush

log = logging.getLogger(__name__)

# The state key of the generated webhook secret.
WEBHOOK_SECRET_KEY = "webhook_secret"
# Telegram unreachable at start (no network yet, a container whose route comes
# up late): the first retry after this many seconds, doubling up to the cap.
START_RETRY_FIRST = 2.0
START_RETRY_MAX = 300.0
# How often a standby process contends for a role only one may hold, and how
# often the holder checks that its session (and with it the role) is alive.
LEADERSHIP_RETRY = 2.0
# How often the pollers prune old cards and articles (see bot.retention).
RETENTION_INTERVAL = 3600.0
LEADERSHIP_CHECK = 5.0


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
        roles: frozenset[Role] = frozenset(ALL_ROLES),
        clock: Clock | None = None,
        feed_network: Network = NO_NETWORK,
        feed_resolver: Resolver = system_resolver,
        config_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """``config_path``: the file SIGHUP and /reload read again (none: the
        configuration cannot be reloaded)."""
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
        # The one owner of the configuration in use, shared with the runtime.
        self.current = CurrentConfig(config)
        self.config_path = Path(config_path) if config_path is not None else None
        self.roles = roles
        self._clock = clock
        self._feed_network = feed_network
        self._feed_resolver = feed_resolver
        self._sender_task: asyncio.Task[None] | None = None
        self._sending = asyncio.Event()  # set once this process is the active sender
        self._shutting_down = False
        # Opened before Telegram answers, so that feeds are polled meanwhile.
        self.runtime: Runtime | None = None
        self.services: handlers.BotServices | None = None
        self.operations: Operations | None = None  # alerts and metrics
        self._hangup_loop: asyncio.AbstractEventLoop | None = None  # where SIGHUP is handled
        self.websub: WebSubPush | None = None  # hub callbacks, in the processes that poll
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

    @property
    def config(self) -> Config:
        """The configuration in use now (a reload replaces it)."""
        return self.current.config

    # -- wiring ----------------------------------------------------------

    def _register_handlers(self) -> None:
        app = self.application
        # Commands work in private chats, groups (also as /cmd@botname) and,
        # with the CHANNEL_POST filter, when posted inside a channel. Edited
        # messages are left out: editing "/subscribe x" should not run it again.
        everywhere = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST
        # First: a forwarded post is about its channel, even if its text is a
        # command ("/latest" forwarded from a channel is not a request).
        app.add_handler(
            MessageHandler(
                filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.FORWARDED,
                handlers.forwarded,
            )
        )
        # Before /start itself: a deep link's /start PAYLOAD (has_args).
        app.add_handler(
            CommandHandler("start", follow.start_with_payload, filters=everywhere, has_args=True)
        )
        for name, callback in (
            ("start", handlers.start),
            ("help", handlers.help_command),
            ("categories", handlers.categories_command),
            ("subscribe", handlers.subscribe),
            ("unsubscribe", handlers.unsubscribe),
            ("mysubs", handlers.mysubs),
            ("filter", filter_handlers.filter_command),
            ("digest", digest_handlers.digest_command),
            ("quiet", digest_handlers.quiet_command),
            ("latest", handlers.latest),
            ("search", handlers.search),
            ("health", handlers.health),
            ("whoami", handlers.whoami),
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
        app.add_handler(CallbackQueryHandler(feed_handlers.button, pattern=FEED_BUTTONS))
        app.add_handler(
            MessageHandler(
                filters.UpdateType.MESSAGE & filters.Document.ALL, feed_handlers.document
            )
        )
        app.add_handler(CallbackQueryHandler(settings_button, pattern=SETTINGS_PATTERN))
        app.add_handler(CallbackQueryHandler(handlers.button))
        app.add_handler(InlineQueryHandler(inline.inline_query))
        app.add_handler(ChosenInlineResultHandler(inline.chosen_inline_result))
        app.add_handler(
            ChatMemberHandler(handlers.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
        )
        app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, handlers.migrate))
        app.add_error_handler(on_error)

    async def _post_init(self, application: Application) -> None:  # type: ignore[type-arg]
        runtime = await self._open_runtime()
        try:
            titles = {c.id: c.title for c in self.config.categories}
            sender = Sender(
                runtime.storage,
                application.bot.send_message,
                self.config.delivery,
                runtime.clock,
                titles,
                bot_username=application.bot.username,
                current=self.current,
                send_photo=application.bot.send_photo,
                default_timezone=self.config.telegram.default_timezone,
                edit_message_text=application.bot.edit_message_text,
                edit_message_caption=application.bot.edit_message_caption,
                default_language=self.config.telegram.default_language,
            )
            if not application.bot.supports_inline_queries:
                log.info(
                    "telegram: inline mode is off for @%s; switch it on with @BotFather "
                    "/setinline to let users search stories from any chat",
                    application.bot.username,
                )
            self.services = handlers.BotServices(
                runtime,
                sender,
                PermissionChecker(application.bot),
                OperatorAlerts(self.config.telegram.admins),
            )
            application.bot_data["services"] = self.services
            application.bot_data[reload_handlers.RELOAD_KEY] = self.reload_config
            self.operations = Operations(self.config, self.roles, runtime, sender, application.bot)
            assert application.job_queue is not None  # the job-queue extra is a dependency
            await self.operations.start(application.job_queue)
            if "updates" in self.roles:
                await _set_commands(application, self.config.telegram.default_language)
            # The job queue of each process schedules only its own roles' work.
            if "poller" in self.roles:
                self._schedule_polling(application)
                self._schedule_retention(application)
                self.websub = await WebSubPush.start(
                    self.config, runtime, sender if "sender" in self.roles else None
                )
                if self.websub is not None:
                    self.websub.schedule(application.job_queue, self.config.poll_tick)
            else:
                self._schedule_heartbeat(application)
            if "sender" in self.roles:
                self._sender_task = asyncio.create_task(
                    self._send_while_leading(runtime, sender), name="newsbot-sender"
                )
        except BaseException:
            await self._stop_websub()
            if self.operations is not None:
                await self.operations.stop()
            await self._close_runtime()
            raise

    async def _open_runtime(self) -> Runtime:
        if self.runtime is None:
            runtime = await Runtime.open(
                self.current,
                clock=self._clock,
                network=self._feed_network,
                resolver=self._feed_resolver,
            )
            self.runtime = runtime
            self._hangup_loop = asyncio.get_running_loop()
            if not self._install_reload_signal(self._hangup_loop):
                self._hangup_loop = None
            if runtime.storage.backend == "sqlite":
                # The bot is SQLite's one process: a feed claim left in the
                # database belongs to a run that died, and the feed is due
                # now, not when the lease runs out. (On PostgreSQL other
                # pollers may be alive; there the lease decides.)
                await runtime.storage.feeds.release_feeds_of_others(runtime.poller.worker)
        return self.runtime

    async def _close_runtime(self) -> None:
        loop, self._hangup_loop = self._hangup_loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_signal_handler(signal.SIGHUP)
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await runtime.close()

    async def wait_for_telegram(self) -> None:
        """Return once Telegram answers getMe, retrying with backoff (capped at
        ``START_RETRY_MAX``) for as long as it takes, one log line per attempt.
        Meanwhile feeds are polled and stored, and the heartbeat is kept, so
        that nothing published during the wait is missed. A rejected token
        raises ``InvalidToken`` at once."""
        bot = self.application.bot
        delay = START_RETRY_FIRST
        attempt = 0
        stop_polling = asyncio.Event()
        polling: asyncio.Task[None] | None = None
        try:
            while True:
                attempt += 1
                try:
                    await bot.initialize()  # getMe, which also checks the token
                except BadRequest:
                    raise  # a NetworkError in PTB's hierarchy, but Telegram did answer
                except (NetworkError, RetryAfter) as error:
                    wait = delay
                    if isinstance(error, RetryAfter):
                        wait = max(delay, _seconds(error.retry_after))
                    log.warning(
                        "telegram: cannot reach the Bot API (attempt %d): %s; "
                        "polling feeds meanwhile, next try in %gs",
                        attempt,
                        error,
                        wait,
                    )
                else:
                    if attempt > 1:
                        log.info("telegram: the Bot API answered after %d attempts", attempt)
                    return
                if polling is None:
                    runtime = await self._open_runtime()
                    polling = asyncio.create_task(
                        self._poll_until(runtime, stop_polling), name="newsbot-offline-polling"
                    )
                await asyncio.sleep(wait)
                delay = min(delay * 2, START_RETRY_MAX)
        finally:
            if polling is not None:
                # Let a running round finish: the JobQueue's first round starts
                # right after this, and two rounds must never overlap.
                stop_polling.set()
                await polling

    async def _poll_until(self, runtime: Runtime, stop: asyncio.Event) -> None:
        """Polling rounds every tick until ``stop`` is set (while Telegram, and
        with it the JobQueue, is not running yet)."""
        while not stop.is_set():
            try:
                await self._poll_round(runtime, None)
            except Exception:  # a round never stops the bot; the next tick tries again
                log.exception("poll: round failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_tick)
            except TimeoutError:
                pass

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

    def _schedule_heartbeat(self, application: Application) -> None:  # type: ignore[type-arg]
        """A process that does not poll still tells its health check it lives."""
        job_queue = application.job_queue
        if job_queue is None:
            raise RuntimeError("python-telegram-bot was installed without the job-queue extra")
        job_queue.run_repeating(
            self._heartbeat_job, interval=self.config.poll_tick, first=0.0, name="heartbeat"
        )

    async def _heartbeat_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self.services is not None
        self._beat(self.services.sender)

    def _beat(self, sender: Sender | None) -> None:
        if sender is not None and not sender.healthy:
            # No heartbeat: the token was rejected, or sent cards cannot be
            # recorded; the container's health check turns unhealthy.
            return
        try:
            self.config.heartbeat_path.touch()
        except OSError as error:
            log.warning("poll: cannot touch heartbeat file: %s", error)

    def _schedule_retention(self, application: Application) -> None:  # type: ignore[type-arg]
        job_queue = application.job_queue
        assert job_queue is not None  # checked by _schedule_polling
        job_queue.run_repeating(
            self._retention_job,
            interval=RETENTION_INTERVAL,
            first=60.0,
            name="retention",
            job_kwargs={"max_instances": 1, "coalesce": True},
        )

    async def _retention_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self.services is not None
        runtime = self.services.runtime
        try:
            await prune(runtime.storage, self.config.storage, runtime.clock.now())
        except StorageError as error:
            log.warning("retention: pruning failed, trying again later: %s", error)

    async def _poll_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self.services is not None
        await self._poll_round(self.services.runtime, self.services.sender)

    async def _poll_round(self, runtime: Runtime, sender: Sender | None) -> None:
        """One round, then the heartbeat; ``sender`` is None while Telegram is
        unreachable at start (cards wait in the outbox)."""
        report = await runtime.poller.run_round()
        if sender is not None and report is not None and report.deliveries:
            sender.wake()
        if self.operations is not None and report is not None:
            await self.operations.after_round(report)
        self._beat(sender)

    async def reload_config(self) -> ReloadPlan:
        """Read the configuration file again and run with it (SIGHUP and
        /reload). Raises ``ConfigError`` (the file does not validate, or
        there is no file to read) or ``StorageError``; the running
        configuration is then kept."""
        if self.config_path is None:
            raise ConfigError("this bot was started without a configuration file to read again")
        runtime = self.runtime
        if runtime is None:
            raise ConfigError("the bot is still starting; reload once it runs")
        plan = await runtime.reload(self.config_path)
        # Who is told about failures follows [telegram] admins (whether
        # alerts are on at all is fixed at start, see bot.reload).
        admins = plan.config.telegram.admins
        if self.services is not None:
            self.services.alerts.admins = list(admins)
        if self.operations is not None and plan.config.alerts.enabled:
            self.operations.watch.admins = list(admins)
        return plan

    async def _reload_on_signal(self) -> None:
        """SIGHUP: reload, and log what changed or why the file was refused."""
        try:
            plan = await self.reload_config()
        except (ConfigError, StorageError) as error:
            log.error("config: reload refused, the running configuration is kept: %s", error)
            return
        for line in plan.summary():
            log.info("config: reloaded: %s", line)

    def _install_reload_signal(self, loop: asyncio.AbstractEventLoop) -> bool:
        """SIGHUP reloads the configuration; False where signals cannot be
        handled here (not the main thread, or not POSIX)."""
        reloads: set[asyncio.Task[None]] = set()

        def on_hangup() -> None:
            task = loop.create_task(self._reload_on_signal(), name="newsbot-reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        try:
            loop.add_signal_handler(signal.SIGHUP, on_hangup)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError):
            return False
        return True

    async def _stop_websub(self) -> None:
        websub, self.websub = self.websub, None
        if websub is not None:
            await websub.stop()

    async def _stop_polling(self) -> None:
        """End the running round at a feed boundary (stored feeds stay stored,
        the others are polled after the restart); no more pushes either."""
        await self._stop_websub()
        if self.services is not None:
            await self.services.runtime.poller.stop()

    async def _post_stop(self, application: Application) -> None:  # type: ignore[type-arg]
        await self._stop_polling()  # normally stop() has done it; twice is harmless
        await self.stop_sender()
        if self.operations is not None:
            await self.operations.stop()

    def _leadership(self, runtime: Runtime, key: int, what: str) -> Leadership:
        """What only one process may hold: on PostgreSQL an advisory lock,
        on SQLite (one process) always this process."""
        db = runtime.storage.db
        return AdvisoryLock(db, key, what) if isinstance(db, PostgresDatabase) else SoleProcess()

    async def _send_while_leading(self, runtime: Runtime, sender: Sender) -> None:
        """Send cards while this process is the active sender; stand by while
        another one is, and take over when it dies (its lock goes with its
        session)."""
        leadership = self._leadership(runtime, SENDER_LOCK, "active sender")
        try:
            while not self._shutting_down:
                if not await leadership.try_acquire():
                    await asyncio.sleep(LEADERSHIP_RETRY)
                    continue
                self._sending.set()
                try:
                    freed = await runtime.storage.outbox.take_over_claims(sender.worker)
                    freed += await runtime.storage.edits.take_over_edit_claims(sender.worker)
                except StorageError as error:
                    # Their leases will run out and free them all the same.
                    log.warning("deliver: could not take over claimed cards: %s", error)
                else:
                    if freed:
                        log.info("deliver: took over %d cards a stopped sender claimed", freed)
                watch = asyncio.create_task(self._watch_leadership(leadership, sender))
                try:
                    await sender.run()
                finally:
                    watch.cancel()
                    self._sending.clear()
                if not self._shutting_down and not sender.token_rejected:
                    log.warning("deliver: no longer the active sender; standing by")
                    sender.resume()
                elif sender.token_rejected:
                    return
        finally:
            await leadership.release()

    async def _watch_leadership(self, leadership: Leadership, sender: Sender) -> None:
        await _until_lost(leadership)
        await sender.stop()

    async def stop_sender(self) -> None:
        self._shutting_down = True
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
        if self.operations is not None:
            await self.operations.stop()
            self.operations = None
        self.services = None
        await self._close_runtime()

    # -- running ---------------------------------------------------------

    def run(self) -> None:
        """Block until Ctrl-C or SIGTERM: long polling, or a webhook if configured."""
        if self.config.storage.url:
            self._run_with_roles()
            return
        telegram = self.config.telegram
        allowed = Update.ALL_TYPES
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # PTB's run_* pick it up
        try:
            if not self._wait_for_telegram_in(loop):
                return  # stopped while waiting
            if telegram.webhook_url:
                # PTB runs on the current event loop, the one the bot's HTTP
                # client and the runtime were opened on while waiting for
                # Telegram; the secret is read on it too.
                secret = loop.run_until_complete(self._webhook_secret())
                path = telegram.webhook_url.rstrip("/").rsplit("/", 1)[-1] or "telegram"
                self.application.run_webhook(
                    listen=telegram.webhook_listen,
                    port=telegram.webhook_port,
                    url_path=path,
                    webhook_url=telegram.webhook_url,
                    secret_token=secret,
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
            try:
                if self.services is not None or self.runtime is not None:
                    loop.run_until_complete(self._post_shutdown(self.application))
            finally:
                loop.close()
                asyncio.set_event_loop(None)

    def _run_with_roles(self) -> None:
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
            log.info("newsbot: running as %s", describe(self.roles))
            async with self.running(poll_interval=0.0):
                started = True
                await stop.wait()

        task = loop.create_task(serve())

        def on_signal() -> None:
            if started:
                stop.set()
            else:
                task.cancel()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass  # no signal handlers here: Ctrl-C still raises
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            log.info("newsbot: stopped while starting")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            loop.close()
            asyncio.set_event_loop(None)

    def _wait_for_telegram_in(self, loop: asyncio.AbstractEventLoop) -> bool:
        """``wait_for_telegram`` with Ctrl-C and SIGTERM stopping the wait (PTB
        installs its own handlers only later). False if stopped."""
        waiting = loop.create_task(self.wait_for_telegram())
        signals = (signal.SIGINT, signal.SIGTERM)
        installed = []
        for sig in signals:
            try:
                loop.add_signal_handler(sig, waiting.cancel)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass  # no signal handlers in this environment: Ctrl-C still raises
        try:
            loop.run_until_complete(waiting)
            return True
        except asyncio.CancelledError:
            log.info("telegram: stopped while waiting for the Bot API")
            return False
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _webhook_secret(self) -> str:
        """The secret Telegram sends with every update, so the listener can
        refuse updates from anyone else: without it, whoever finds the path
        could post an update "from" a real admin and change subscriptions.

        The configured one, else one generated once and kept in the database,
        so every restart and every process registers the same secret.
        """
        secret = self.config.telegram.webhook_secret
        if secret is None:
            clock = self._clock or SystemClock()
            storage = await open_storage(self.config.storage)
            # token_urlsafe: A-Z a-z 0-9 _ - only, as Telegram requires; 32
            # bytes make 43 characters (Telegram allows 1-256). Redacted before
            # it is stored: aiosqlite logs statement parameters at DEBUG.
            candidate = secrets.token_urlsafe(32)
            register_secret(candidate)
            try:
                secret = await storage.state.set_state_if_absent(
                    WEBHOOK_SECRET_KEY, candidate, clock.now()
                )
            finally:
                await storage.close()
        register_secret(secret)  # PTB logs setWebhook's parameters at DEBUG
        return secret

    @asynccontextmanager
    async def running(self, poll_interval: float = 0.1) -> AsyncIterator[NewsbotApplication]:
        """Run inside an existing event loop (tests): the same start and stop
        sequence as ``run``, without signal handling."""
        app = self.application
        try:
            await self.wait_for_telegram()
        except BaseException:
            await self._close_runtime()
            raise
        await app.initialize()
        reading: asyncio.Task[None] | None = None
        try:
            await self._post_init(app)
            await app.start()
            if "updates" in self.roles:
                reading = asyncio.create_task(self._read_updates(poll_interval))
            try:
                yield self
            finally:
                if reading is not None:
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)
                assert app.updater is not None
                if app.updater.running:
                    await app.updater.stop()
                if app.running:
                    await app.stop()
                await self._post_stop(app)
        finally:
            await app.shutdown()
            await self._post_shutdown(app)

    async def _read_updates(self, poll_interval: float) -> None:
        """Serve the webhook, or long-poll while this process is the one
        reader of updates: Telegram answers a second poller 409 Conflict, so
        the others wait for the lock of the one that polls."""
        app = self.application
        assert app.updater is not None and self.runtime is not None
        telegram = self.config.telegram
        if telegram.webhook_url:
            path = telegram.webhook_url.rstrip("/").rsplit("/", 1)[-1] or "telegram"
            await app.updater.start_webhook(
                listen=telegram.webhook_listen,
                port=telegram.webhook_port,
                url_path=path,
                webhook_url=telegram.webhook_url,
                secret_token=await self._webhook_secret(),
                allowed_updates=Update.ALL_TYPES,
            )
            return
        leadership = self._leadership(self.runtime, UPDATES_LOCK, "reader of Telegram's updates")
        try:
            while True:
                if not await leadership.try_acquire():
                    await asyncio.sleep(LEADERSHIP_RETRY)
                    continue
                await app.updater.start_polling(
                    poll_interval=poll_interval, allowed_updates=Update.ALL_TYPES
                )
                await _until_lost(leadership)
                log.warning("telegram: no longer the reader of updates; standing by")
                await app.updater.stop()
        finally:
            await leadership.release()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its traceback (the token is redacted by the log
    filter), tell the operators once per distinct error per hour, and tell
    the user something went wrong, without details; in a channel, nobody:
    every subscriber would read the apology."""
    error = context.error
    log.error("telegram: error while handling an update", exc_info=error)
    if error is None:
        return
    found = context.bot_data.get("services")
    if isinstance(found, handlers.BotServices):

        async def send_private(chat_id: int, text: str) -> object:
            return await context.bot.send_message(
                chat_id, text, link_preview_options=handlers.NO_PREVIEW
            )

        await found.alerts.report(error, _describe(update), found.runtime.clock.now(), send_private)
    if isinstance(error, Forbidden) or not isinstance(update, Update):
        return  # the chat blocked us, or a job failed: no user to tell
    try:
        _ = (await chat_translator(update, context)).gettext
    except Exception:  # the apology must not fail on what failed the handler
        _ = translator(None).gettext
    message = update.effective_message
    chat = update.effective_chat
    if (
        message is not None
        and update.callback_query is None
        and (chat is None or chat.type != ChatType.CHANNEL)
    ):
        try:
            await message.reply_text(
                html.escape(_("Sorry, something went wrong. Please try again later.")),
                do_quote=False,
            )
        except TelegramError:
            pass  # the original error is logged; a failed apology changes nothing
    if update.callback_query is not None:
        # An answer to a button press is shown to the presser alone.
        try:
            await update.callback_query.answer(_("Something went wrong."))
        except TelegramError:
            pass


async def _set_commands(application: Application, default_language: str) -> None:  # type: ignore[type-arg]
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


def _describe(update: object) -> str:
    """What was being handled, for the operators: the kind of update and the
    chat, never the user's text."""
    if not isinstance(update, Update):
        return "a background job, outside any update"
    chat = update.effective_chat
    where = f" in {chat.type} chat {chat.id}" if chat is not None else ""
    if update.callback_query is not None:
        return f"a button press{where}"
    message = update.effective_message
    if message is not None and message.text and message.text.startswith("/"):
        command = message.text.split(maxsplit=1)[0].split("@", 1)[0][:40]
        return f"the command {command}{where}"
    return f"an update{where}"


def _seconds(value: object) -> float:
    """RetryAfter.retry_after: an int today, a timedelta in later PTB versions."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) if isinstance(value, int | float) else START_RETRY_MAX


async def _until_lost(leadership: Leadership) -> None:
    """Return when the session that holds ``leadership`` is gone."""
    while True:
        await asyncio.sleep(LEADERSHIP_CHECK)
        if not await leadership.still_held():
            return


def run_bot(
    config: Config,
    roles: frozenset[Role] = frozenset(ALL_ROLES),
    *,
    config_path: str | os.PathLike[str] | None = None,
) -> int:
    """Run the bot; SIGHUP (and /reload) read ``config_path`` again."""
    NewsbotApplication(config, roles=roles, config_path=config_path).run()
    return 0
