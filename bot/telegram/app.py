"""Builds the python-telegram-bot ``Application`` and runs its life cycle.

One place wires everything: the handlers (``bot.telegram.registration``), the
database and HTTP client (opened in ``post_init``, closed in
``post_shutdown``), the polling round as a JobQueue job (APScheduler
underneath; never two rounds at once), and the outbox sender as a background
task stopped in ``post_stop``.

Before any of that, ``wait_for_telegram`` (``bot.telegram.startup``) retries
getMe while Telegram is unreachable, polling feeds with a plain loop
meanwhile (the database is then opened early and ``post_init`` reuses it).
``bot.telegram.process`` runs it all as the process's main loop; tests and
benchmarks use ``NewsbotApplication.running`` inside their own event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from telegram.constants import ParseMode
from telegram.ext import Application, ContextTypes, Defaults
from telegram.warnings import PTBDeprecationWarning

from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.deliver import Sender
from bot.errors import ConfigError, StorageError
from bot.fetch import NO_NETWORK, Network
from bot.logs import register_secret
from bot.netguard import Resolver, system_resolver
from bot.reload import CurrentConfig, ReloadPlan
from bot.retention import prune
from bot.roles import ALL_ROLES, SENDER_LOCK, UPDATES_LOCK, Role
from bot.runtime import Runtime
from bot.telegram import handlers, reload_handlers
from bot.telegram.alerts import OperatorAlerts
from bot.telegram.leading import leadership_of, read_updates_while_leading, send_while_leading
from bot.telegram.operations import Operations
from bot.telegram.permissions import PermissionChecker
from bot.telegram.ratelimit import MessageRateLimiter
from bot.telegram.registration import register_handlers, set_commands
from bot.telegram.signals import reload_on_hangup, stop_reloading_on_hangup
from bot.telegram.startup import wait_for_telegram
from bot.telegram.webhook import webhook_options, webhook_secret
from bot.telegram.websub import WebSubPush

log = logging.getLogger(__name__)

# How often the pollers prune old cards and articles (see bot.retention).
RETENTION_INTERVAL = 3600.0


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
        register_handlers(self.application)

    @property
    def config(self) -> Config:
        """The configuration in use now (a reload replaces it)."""
        return self.current.config

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
                await set_commands(application, self.config.telegram.default_language)
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
                self._start_sender(runtime, sender)
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
            if not reload_on_hangup(self._hangup_loop, self.reload_config):
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
        if loop is not None:
            stop_reloading_on_hangup(loop)
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            await runtime.close()

    async def wait_for_telegram(self) -> None:
        """Return once Telegram answers getMe (``bot.telegram.startup``).
        Meanwhile feeds are polled and stored, and the heartbeat is kept, so
        that nothing published during the wait is missed. A rejected token
        raises ``InvalidToken`` at once."""
        await wait_for_telegram(self.application.bot, self._open_runtime, self._poll_until)

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

    def _start_sender(self, runtime: Runtime, sender: Sender) -> None:
        leadership = leadership_of(runtime, SENDER_LOCK, "active sender")
        self._sender_task = asyncio.create_task(
            send_while_leading(
                leadership,
                runtime,
                sender,
                stopping=lambda: self._shutting_down,
                sending=self._sending,
            ),
            name="newsbot-sender",
        )

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

    async def close(self) -> None:
        """Close what ``post_shutdown`` closes, if it is still open: PTB skips
        post_stop and post_shutdown when its own stop raises."""
        if self.services is not None or self.runtime is not None:
            await self._post_shutdown(self.application)

    async def webhook_secret(self) -> str:
        """The secret Telegram sends with every update (``bot.telegram.webhook``)."""
        return await webhook_secret(self.config, self._clock or SystemClock())

    # -- running ---------------------------------------------------------

    @asynccontextmanager
    async def running(self, poll_interval: float = 0.1) -> AsyncIterator[NewsbotApplication]:
        """Run inside an existing event loop (tests): the same start and stop
        sequence as ``newsbot run`` (``bot.telegram.process``), without
        signal handling."""
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
        reader of updates (``bot.telegram.leading``)."""
        app = self.application
        assert app.updater is not None and self.runtime is not None
        telegram = self.config.telegram
        if telegram.webhook_url:
            await app.updater.start_webhook(
                **webhook_options(telegram, await self.webhook_secret())
            )
            return
        leadership = leadership_of(self.runtime, UPDATES_LOCK, "reader of Telegram's updates")
        await read_updates_while_leading(leadership, app.updater, poll_interval)
