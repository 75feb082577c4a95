"""The WebSub callback listener: hubs verify our requests and push content here.

A small tornado server of its own on ``[websub] listen``, on the bot's event
loop: PTB's webhook server (tornado too) serves exactly one path and offers
no way to add routes, so the reverse proxy that forwards the Telegram
webhook forwards ``/websub/`` here as well. Any path ending in
``/<subscription id>/<token>`` is accepted, so the proxy may keep or strip a
prefix; the token (``bot.websub.callback_token``) is known only to the hub
we sent it to, and a wrong one is answered as if there were no such
subscription.

- ``GET`` is intent verification (section 5.3): the ``hub.challenge`` is
  echoed only for the request we are waiting for (``bot.websub.verification``);
  anything else is 404, so nobody can subscribe the bot to anything.
- ``POST`` is content distribution (section 7). The body must be signed with
  the subscription's secret (``X-Hub-Signature``, section 8); a push without
  a valid signature is ignored, as the spec requires, and still answered
  202, as the spec allows: the answer is the same for a forged push and a
  genuine one, so it tells a forger nothing. A genuine body goes through the
  polling pipeline's own parse, categorize and store (``Poller.store_pushed``).
  A subscription we no longer have is answered 410 Gone (hubs drop it);
  storage trouble 503, so the hub delivers again later.
- Bodies over ``[websub] max_body_bytes`` are refused by tornado before
  they are read whole.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import tornado.httpserver
import tornado.netutil
import tornado.web

from bot.clock import Clock
from bot.config import WebSubConfig
from bot.errors import ParseError, StorageError
from bot.pipeline import FeedOutcome
from bot.storage import Storage
from bot.websub import (
    DENIED_RETRY,
    HubSubscription,
    callback_matches,
    granted_lease,
    renewal_time,
    signature_valid,
    verification,
)

log = logging.getLogger(__name__)

# Stores a pushed body for a feed; None when the feed is not polled any more.
PushHandler = Callable[[int, bytes, str | None], Awaitable[FeedOutcome | None]]


class CallbackServer:
    def __init__(
        self, config: WebSubConfig, storage: Storage, clock: Clock, on_push: PushHandler
    ) -> None:
        self._config = config
        self._storage = storage
        self._clock = clock
        self._on_push = on_push
        self._server: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None  # the bound port (``listen`` may ask for 0)
        self.ignored_pushes = 0  # unsigned or wrongly signed, since start

    async def start(self) -> None:
        host, port = self._config.address
        application = tornado.web.Application(
            [(r".*/([0-9]{1,18})/([0-9a-f]{32})/?", _CallbackHandler, {"callbacks": self})],
            # No tornado access log lines for every hub request.
            log_function=lambda handler: None,
        )
        server = tornado.httpserver.HTTPServer(
            application,
            max_body_size=self._config.max_body_bytes,
            idle_connection_timeout=60,
            body_timeout=60,
        )
        sockets = tornado.netutil.bind_sockets(port, address=host)
        server.add_sockets(sockets)
        self._server = server
        self.port = int(sockets[0].getsockname()[1])
        log.info("websub: callbacks served on %s:%d", host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()

    async def _subscription(self, subscription_id: int, token: str) -> HubSubscription | None:
        found = await self._storage.websub.subscription(subscription_id)
        return found if found is not None and callback_matches(found, token) else None

    async def verify(
        self,
        subscription_id: int,
        token: str,
        mode: str | None,
        topic: str | None,
        challenge: str | None,
        lease: str | None,
        reason: str | None,
    ) -> tuple[int, str]:
        """A hub's verification GET: (status, body)."""
        subscription = await self._subscription(subscription_id, token)
        verdict = verification(subscription, mode, topic)
        now = self._clock.now()
        if verdict == "confirm_subscribe" and challenge and topic:
            seconds = granted_lease(lease, self._config.lease)
            confirmed = await self._storage.websub.confirm_subscribe(
                subscription_id,
                topic,
                lease_seconds=seconds,
                expires_at=now + timedelta(seconds=seconds),
                renew_at=renewal_time(now, seconds),
            )
            if confirmed:
                log.info("websub: subscribed to %s for %ds", topic, seconds)
                return 200, challenge
        elif verdict == "confirm_unsubscribe" and challenge and topic:
            if await self._storage.websub.confirm_unsubscribe(subscription_id, topic):
                log.info("websub: unsubscribed from %s", topic)
                return 200, challenge
        elif verdict == "denied" and topic:
            denial = (reason or "no reason given")[:200]
            await self._storage.websub.record_denied(
                subscription_id, topic, denial, now + DENIED_RETRY
            )
            log.warning("websub: the hub denied the subscription to %s: %s", topic, denial)
            return 200, ""
        return 404, ""

    async def receive(
        self,
        subscription_id: int,
        token: str,
        body: bytes,
        signature: str | None,
        content_type: str | None,
    ) -> int:
        """A hub's push: the status to answer."""
        subscription = await self._subscription(subscription_id, token)
        if subscription is None or not subscription.wanted:
            return 410
        if not signature_valid(subscription.secret, body, signature):
            self.ignored_pushes += 1
            log.warning(
                "websub: ignored a push for %s: %s signature",
                subscription.topic_url,
                "a wrong" if signature else "no",
            )
            return 202
        try:
            outcome = await self._on_push(subscription.feed_id, body, content_type)
        except ParseError as error:
            # Sending it again would not make it a feed.
            log.warning("websub: a push for %s is not a feed: %s", subscription.topic_url, error)
            return 202
        if outcome is None:
            return 410
        log.info(
            "websub: push for %s: new_articles=%d deliveries=%d",
            subscription.topic_url,
            outcome.new_articles,
            outcome.deliveries,
        )
        return 202


class _CallbackHandler(tornado.web.RequestHandler):
    """Thin: reads the request, asks ``CallbackServer``, writes the answer."""

    def initialize(self, callbacks: CallbackServer) -> None:
        self._callbacks = callbacks

    async def get(self, subscription_id: str, token: str) -> None:
        argument = self.get_query_argument
        try:
            status, body = await self._callbacks.verify(
                int(subscription_id),
                token,
                argument("hub.mode", None),
                argument("hub.topic", None),
                argument("hub.challenge", None),
                argument("hub.lease_seconds", None),
                argument("hub.reason", None),
            )
        except StorageError as error:
            log.warning("websub: cannot answer a verification: %s", error)
            status, body = 503, ""
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(body)

    async def post(self, subscription_id: str, token: str) -> None:
        try:
            status = await self._callbacks.receive(
                int(subscription_id),
                token,
                self.request.body,
                self.request.headers.get("X-Hub-Signature"),
                self.request.headers.get("Content-Type"),
            )
        except StorageError as error:
            log.warning("websub: cannot store a push: %s", error)
            status = 503
        self.set_status(status)
        self.finish()
