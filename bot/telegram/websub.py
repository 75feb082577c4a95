"""WebSub push in the running bot: the callback listener, the subscriber job,
and the sender woken as soon as a pushed story has cards.

Runs in the processes that poll (they own the parse workers a pushed body
needs), and only when hubs can call the bot back (``Config.websub_callback_base``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from telegram.ext import ContextTypes, Job, JobQueue

from bot.config import Config
from bot.deliver import Sender
from bot.pipeline import FeedOutcome
from bot.runtime import Runtime
from bot.websub_server import CallbackServer
from bot.websub_subscriber import HubSubscriber

log = logging.getLogger(__name__)


class WebSubPush:
    def __init__(self, config: Config, base: str, runtime: Runtime, sender: Sender | None) -> None:
        self._runtime = runtime
        self._sender = sender
        self.subscriber = HubSubscriber(
            config.websub,
            base,
            runtime.storage,
            runtime.clock,
            runtime.http,
            runtime.untrusted_http,
        )
        self.callbacks = CallbackServer(
            config.websub, runtime.storage, runtime.clock, self.store_pushed
        )
        self._job: Job | None = None  # type: ignore[type-arg]
        # A feed that names a new hub is subscribed now, not a tick later.
        runtime.poller.on_hub_noted = self.wake

    @classmethod
    async def start(
        cls, config: Config, runtime: Runtime, sender: Sender | None
    ) -> WebSubPush | None:
        """Serve the callbacks; None when push is off."""
        base = config.websub_callback_base
        if base is None:
            return None
        push = cls(config, base, runtime, sender)
        try:
            await push.callbacks.start()
        except OSError as error:
            # As with the metrics endpoint: the bot's work goes on (feeds are
            # polled, another process behind the proxy may take the
            # callbacks), and the log says why no push reaches this one.
            log.error("websub: cannot listen on %s: %s", config.websub.listen, error)
        log.info("websub: hubs call back at %s/<subscription id>/<token>", base)
        return push

    def schedule(self, job_queue: JobQueue | None, interval: float) -> None:  # type: ignore[type-arg]
        if job_queue is None:
            raise RuntimeError("python-telegram-bot was installed without the job-queue extra")
        self._job = job_queue.run_repeating(
            self._subscriber_job,
            interval=interval,
            first=0.0,
            name="websub-subscriptions",
            job_kwargs={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    def wake(self) -> None:
        """Run the subscriber job now (one run at a time all the same)."""
        if self._job is not None and not self._job.removed:
            self._job.job.modify(next_run_time=datetime.now(UTC))

    async def _subscriber_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.subscriber.run_once()

    async def store_pushed(
        self, feed_id: int, body: bytes, content_type: str | None
    ) -> FeedOutcome | None:
        outcome = await self._runtime.poller.store_pushed(feed_id, body, content_type)
        if outcome is not None and outcome.deliveries and self._sender is not None:
            self._sender.wake()
        return outcome

    async def stop(self) -> None:
        self._runtime.poller.on_hub_noted = None
        if self._job is not None:
            self._job.schedule_removal()
            self._job = None
        await self.callbacks.stop()
