"""Prometheus metrics, and the HTTP endpoint that serves them with /healthz.

Every process serves its own (``[metrics] listen``): a poller's counters
are about fetching, a sender's about cards. The metrics live in a registry
of their own, not prometheus-client's global one, so that two bots in one
process (the tests) never share counters.

The gauges that need the database (outbox rows by state, feeds by state,
subscribed chats by type) are refreshed when a scrape comes, at most every
``REFRESH_EVERY`` seconds: scrapes every few seconds from several
Prometheus servers cost one set of count queries per half minute.

The endpoint is a small HTTP/1.0 server on the bot's own asyncio loop
(``asyncio.start_server``), not prometheus-client's ``start_http_server``:
a scrape can await the database on the loop that owns the connection, and
the server closes with the bot, leaving no thread behind that holds the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.delivery_events import DeliveryEvents, FailureReason
from bot.errors import StorageError
from bot.pipeline import RoundReport
from bot.storage import Storage
from bot.storage.ops import SqlOps

log = logging.getLogger(__name__)

REFRESH_EVERY = 30.0
_REQUEST_TIMEOUT = 10.0
_MAX_REQUEST_BYTES = 16_384
_OUTBOX_STATES = ("pending", "sent", "failed", "dropped")
_FEED_STATES = ("ok", "failing", "disabled")
_CHAT_TYPES = ("private", "group", "supergroup", "channel")
_FETCH_STATUSES = ("new", "unchanged", "not_modified", "failed")
_FAILURE_REASONS: tuple[FailureReason, ...] = ("rejected", "attempts_exhausted", "too_old")


class BotMetrics(DeliveryEvents):
    """The process's metrics; the sender reports to it as its ``events``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.fetches = Counter(
            "newsbot_feed_fetches", "Feed fetches by outcome", ["status"], registry=r
        )
        self.round_seconds = Histogram(
            "newsbot_poll_round_seconds",
            "How long a polling round took",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        self.articles = Counter("newsbot_articles_stored", "New articles stored", registry=r)
        self.cards_sent = Counter("newsbot_cards_sent", "Cards Telegram accepted", registry=r)
        self.flood_waits = Counter(
            "newsbot_telegram_flood_waits", "429 answers (flood control)", registry=r
        )
        self.card_failures = Counter(
            "newsbot_card_failures", "Cards given up on, by reason", ["reason"], registry=r
        )
        self.delivery_delay = Histogram(
            "newsbot_card_delivery_delay_seconds",
            "From an article's card being queued to Telegram accepting it",
            buckets=(1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 86400),
            registry=r,
        )
        self.outbox = Gauge("newsbot_outbox_rows", "Outbox rows by state", ["state"], registry=r)
        self.feeds = Gauge("newsbot_feeds", "Configured feeds by state", ["state"], registry=r)
        self.chats = Gauge(
            "newsbot_subscribed_chats",
            "Active chats with subscriptions, by type",
            ["type"],
            registry=r,
        )
        # Every label shows from the start (a rate over a series that
        # appears late misses its first increase).
        for status in _FETCH_STATUSES:
            self.fetches.labels(status)
        for reason in _FAILURE_REASONS:
            self.card_failures.labels(reason)
        self._refreshed_at = float("-inf")

    # -- what the poller and the sender report --------------------------

    def observe_round(self, report: RoundReport) -> None:
        for outcome in report.outcomes:
            self.fetches.labels(outcome.status).inc()
        self.round_seconds.observe(report.seconds)
        self.articles.inc(report.new_articles)

    def card_sent(self, queued_at: datetime, sent_at: datetime) -> None:
        self.cards_sent.inc()
        self.delivery_delay.observe(max(0.0, (sent_at - queued_at).total_seconds()))

    def told_to_wait(self) -> None:
        self.flood_waits.inc()

    def card_failed(self, reason: FailureReason) -> None:
        self.card_failures.labels(reason).inc()

    # -- what is read from the database ---------------------------------

    async def refresh(self, storage: Storage, *, force: bool = False) -> None:
        """Re-read the gauges, unless they were read less than
        ``REFRESH_EVERY`` seconds ago. A storage error keeps the old values."""
        if not force and time.monotonic() - self._refreshed_at < REFRESH_EVERY:
            return
        self._refreshed_at = time.monotonic()
        ops = SqlOps(storage.db)
        try:
            outbox = await storage.outbox.delivery_counts()
            feeds = await ops.feed_state_counts()
            chats = await ops.subscribed_chat_counts()
        except StorageError as error:
            log.warning("metrics: could not read the counts: %s", error)
            return
        for state in {*_OUTBOX_STATES, *outbox}:
            self.outbox.labels(state).set(outbox.get(state, 0))
        for state in {*_FEED_STATES, *feeds}:
            self.feeds.labels(state).set(feeds.get(state, 0))
        for kind in {*_CHAT_TYPES, *chats}:
            self.chats.labels(kind).set(chats.get(kind, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


Verdict = Callable[[], tuple[bool, str]]


class MetricsServer:
    """GET /metrics and GET /healthz, one request per connection."""

    def __init__(
        self, metrics: BotMetrics, storage: Storage, verdict: Verdict, host: str, port: int
    ) -> None:
        self._metrics = metrics
        self._storage = storage
        self._verdict = verdict
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, for port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        log.info("metrics: serving /metrics and /healthz on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or never finished asking
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_TIMEOUT)
        if len(head) > _MAX_REQUEST_BYTES:
            await _respond(writer, 431, b"request header too large\n")
            return
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            await _respond(writer, 400, b"bad request\n")
            return
        method, target, _version = parts
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await _respond(writer, 405, b"only GET\n", extra={"Allow": "GET, HEAD"})
            return
        if path == "/metrics":
            await self._metrics.refresh(self._storage)
            body = self._metrics.render()
            await _respond(writer, 200, body, CONTENT_TYPE_LATEST, head_only=method == "HEAD")
        elif path == "/healthz":
            healthy, reason = self._verdict()
            await _respond(
                writer, 200 if healthy else 503, reason.encode() + b"\n", head_only=method == "HEAD"
            )
        else:
            await _respond(writer, 404, b"not found: try /metrics or /healthz\n")


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(extra or {}),
    }
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(body)
    await writer.drain()
