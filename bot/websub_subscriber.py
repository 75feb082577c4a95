"""The WebSub subscriber's requests to hubs: subscribe, renew, unsubscribe.

One job (``run_once``, every scheduler tick in the processes that poll)
does what the stored subscriptions need:

    unwant_unpolled (feeds removed or paused) | claim_due | next_action
        | mark_requested | POST to the hub (form-encoded, section 5.1)

The request is marked as sent *before* it is sent: a hub may verify (its GET
to the callback, answered by ``bot.websub_server``) before it answers our
POST. The verification, not the POST's answer, makes a subscription active;
a request that is never verified is sent again after ``VERIFY_WAIT``, a
refused one after a growing delay. Leases are renewed by the same path when
their renewal time (``bot.websub.renewal_time``) comes.

A hub named by a feed added at runtime is reached through the public-only
client (``bot.netguard``), like the feed itself: the hub's address comes
from whoever added the feed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.clock import Clock
from bot.config import WebSubConfig
from bot.errors import FetchError, StorageError
from bot.fetch import FeedClient
from bot.storage import Storage
from bot.websub import (
    VERIFY_WAIT,
    HubSubscription,
    Mode,
    callback_url,
    next_action,
    retry_delay,
)

log = logging.getLogger(__name__)

# Subscriptions handled per run; the rest are due still and go next tick.
_BATCH = 50
_REQUEST_TIMEOUT = 20.0


class HubSubscriber:
    def __init__(
        self,
        config: WebSubConfig,
        callback_base: str,
        storage: Storage,
        clock: Clock,
        http: FeedClient,
        untrusted_http: FeedClient | None = None,
    ) -> None:
        """``untrusted_http`` reaches public addresses only; None lets hubs
        of runtime feeds go through ``http`` too (``[security]
        allow_private_addresses``)."""
        self._config = config
        self._callback_base = callback_base
        self._storage = storage
        self._clock = clock
        self._http = http
        self._untrusted_http = untrusted_http

    async def run_once(self) -> int:
        """Send what the due subscriptions need; returns how many requests
        went out. Storage trouble is logged: the next tick tries again."""
        now = self._clock.now()
        try:
            unwanted = await self._storage.websub.unwant_unpolled(now)
            if unwanted:
                log.info("websub: %d feeds no longer polled; unsubscribing", unwanted)
            due = await self._storage.websub.claim_due(
                now, VERIFY_WAIT.total_seconds(), limit=_BATCH
            )
        except StorageError as error:
            log.warning("websub: cannot read the subscriptions: %s", error)
            return 0
        sent = 0
        for subscription in due:
            try:
                sent += await self._act(subscription, now)
            except StorageError as error:
                # Claimed: due again after VERIFY_WAIT, when the database may be back.
                log.warning("websub: subscription %d: %s", subscription.id, error)
        return sent

    async def _act(self, subscription: HubSubscription, now: datetime) -> int:
        action = next_action(subscription, now)
        if action == "forget":
            await self._storage.websub.delete(subscription.id)
            log.info(
                "websub: forgot the subscription to %s at %s",
                subscription.topic_url,
                subscription.hub_url,
            )
            return 0
        await self._request(subscription, action, now)
        return 1

    async def _request(self, subscription: HubSubscription, mode: Mode, now: datetime) -> None:
        form = {
            "hub.mode": mode,
            "hub.topic": subscription.topic_url,
            "hub.callback": callback_url(self._callback_base, subscription),
        }
        if mode == "subscribe":
            form["hub.lease_seconds"] = str(int(self._config.lease))
            form["hub.secret"] = subscription.secret
        await self._storage.websub.mark_requested(subscription.id, mode, now + VERIFY_WAIT)
        client = (
            self._http
            if subscription.trusted or self._untrusted_http is None
            else self._untrusted_http
        )
        try:
            # A hub's redirect is not followed: a POST turned into a GET
            # elsewhere would ask nothing of anyone.
            async with asyncio.timeout(_REQUEST_TIMEOUT):
                status, answer = await client.post_form(subscription.hub_url, form)
        except TimeoutError:
            await self._failed(subscription, mode, f"timed out after {_REQUEST_TIMEOUT:g}s")
            return
        except FetchError as error:  # unreachable, or refused by bot.netguard
            await self._failed(subscription, mode, str(error).removeprefix("fetch: ")[:300])
            return
        if 200 <= status < 300:
            log.info(
                "websub: asked %s to %s to %s",
                subscription.hub_url,
                mode,
                subscription.topic_url,
            )
            return
        said = " ".join(answer[:200].split())
        await self._failed(subscription, mode, f"HTTP {status}" + (f": {said}" if said else ""))

    async def _failed(self, subscription: HubSubscription, mode: Mode, error: str) -> None:
        retry = retry_delay(subscription.attempts + 1)
        log.warning(
            "websub: hub %s refused to %s to %s: %s (again in %ds)",
            subscription.hub_url,
            mode,
            subscription.topic_url,
            error,
            retry.total_seconds(),
        )
        await self._storage.websub.mark_request_failed(
            subscription.id, mode, f"hub: {error}", self._clock.now() + retry
        )
