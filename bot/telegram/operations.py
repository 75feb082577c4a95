"""The operators' side of a running bot: alerts by private message
(``bot.alerts``) and the metrics endpoint (``bot.metrics``), wired to the
roles this process has.

- Every process: the metrics endpoint, if ``[metrics] listen`` is set.
- The poller: feed alerts after each round, the look at suspended chats
  every tick, and the daily report. The chats' state is shared in the
  database, so one process with the poller role is enough, and several
  never tell twice.
- The sender: storage errors, seen on its ``storage_trouble`` flag, which is
  this process's own.
"""

from __future__ import annotations

import logging
from datetime import UTC, time

from telegram import Bot
from telegram.ext import ContextTypes, JobQueue

from bot.alerts import OperatorWatch
from bot.config import Config
from bot.deliver import Sender
from bot.health import heartbeat_verdict
from bot.metrics import BotMetrics, MetricsServer
from bot.pipeline import RoundReport
from bot.roles import Role
from bot.runtime import Runtime
from bot.telegram.handlers import NO_PREVIEW

log = logging.getLogger(__name__)


class Operations:
    def __init__(
        self,
        config: Config,
        roles: frozenset[Role],
        runtime: Runtime,
        sender: Sender,
        bot: Bot,
    ) -> None:
        self._config = config
        self._roles = roles
        self._runtime = runtime
        self._sender = sender
        self._bot = bot
        self.watch = OperatorWatch(
            config.telegram.admins if config.alerts.enabled else [],
            runtime.storage,
            self._send_private,
            config.alerts.failures,
        )
        self.metrics: BotMetrics | None = None
        self.server: MetricsServer | None = None
        if config.metrics.listen:
            self.metrics = BotMetrics()
            sender.events = self.metrics

    async def _send_private(self, chat_id: int, text: str) -> object:
        return await self._bot.send_message(chat_id, text, link_preview_options=NO_PREVIEW)

    async def start(self, job_queue: JobQueue[ContextTypes.DEFAULT_TYPE]) -> None:
        job_queue.run_repeating(
            self._look_job,
            interval=self._config.poll_tick,
            first=self._config.poll_tick,
            name="operator-alerts",
            job_kwargs={"max_instances": 1, "coalesce": True},
        )
        report_at = self._config.alerts.daily_report
        if report_at is not None and self.watch.admins and "poller" in self._roles:
            hour, minute = (int(part) for part in report_at.split(":"))
            job_queue.run_daily(
                self._daily_report_job, time(hour, minute, tzinfo=UTC), name="daily-report"
            )
        if self.metrics is not None:
            host, port = self._config.metrics.address
            server = MetricsServer(
                self.metrics,
                self._runtime.storage,
                lambda: heartbeat_verdict(self._config),
                host,
                port,
            )
            try:
                await server.start()
            except OSError as error:
                # The bot's work goes on without its endpoint; the log says why.
                log.error("metrics: cannot listen on %s: %s", self._config.metrics.listen, error)
            else:
                self.server = server

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop()

    async def after_round(self, report: RoundReport) -> None:
        if self.metrics is not None:
            self.metrics.observe_round(report)
        await self.watch.after_round(report.outcomes)

    async def _look_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not self.watch.admins:
            return  # nobody to tell: not even the chats' state is read
        if "sender" in self._roles:
            await self.watch.check_storage(self._sender.storage_trouble)
        if "poller" in self._roles:
            await self.watch.check_chats(self._runtime.clock.now())

    async def _daily_report_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.watch.daily_report(self._runtime.clock.now())
