"""WebSub push: discovery, intent verification, signed pushes, leases.

The pure decisions (``bot.websub``) are tested on their own; the rest runs
against the loopback hub (``tests/websub_hub.py``), the loopback feed server
and, end to end, the whole bot with the fake Bot API.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main
from bot.clock import ManualClock
from bot.config import WebSubConfig, parse_config
from bot.errors import ParseError
from bot.fetch import FeedClient, make_client, make_public_only_client
from bot.models import NewArticle
from bot.parse import parse
from bot.pipeline import FeedOutcome
from bot.runtime import Runtime
from bot.storage import Storage
from bot.websub import (
    FeedHub,
    HubSubscription,
    callback_url,
    describe_push,
    discover,
    link_header_rels,
    next_action,
    renewal_time,
    sign,
    signature_valid,
    verification,
)
from bot.websub_server import CallbackServer
from bot.websub_subscriber import HubSubscriber
from tests.bot_harness import BotHarness, eventually, item, rss, running_bot
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.support import open_test_storage
from tests.test_webhook import start_webhook_bot, stop
from tests.websub_hub import WebSubHub, post_to

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "https://news.example/feed.xml"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def a_subscription(**changes: Any) -> HubSubscription:
    values: dict[str, Any] = {
        "id": 7,
        "feed_id": 1,
        "hub_url": "https://hub.example/",
        "topic_url": TOPIC,
        "secret": "s" * 64,
        "trusted": True,
        "wanted": True,
        "active": False,
        "pending_mode": "subscribe",
        "lease_seconds": None,
        "expires_at": None,
        "next_attempt_at": NOW,
        "attempts": 1,
        "last_error": None,
    }
    values.update(changes)
    return HubSubscription(**values)


# -- the pure decisions ----------------------------------------------------


def test_the_link_header_names_the_hub_before_the_feed_does() -> None:
    header = '<https://hub.one/>; rel="hub", </feed.xml>; rel="self"'
    links = discover(header, ("https://hub.two/",), "https://other/self", "https://news.example/f")
    assert links is not None
    assert (links.hub, links.topic) == ("https://hub.one/", TOPIC)


def test_a_feed_link_names_the_hub_and_its_self_link_the_topic() -> None:
    links = discover(None, ("javascript:x", "https://hub.two/"), "/self.xml", "https://n.example/f")
    assert links is not None
    assert (links.hub, links.topic) == ("https://hub.two/", "https://n.example/self.xml")


def test_without_a_self_link_the_topic_is_the_fetched_url() -> None:
    links = discover(None, ("https://hub.two/",), None, TOPIC)
    assert links is not None and links.topic == TOPIC
    assert discover(None, (), None, TOPIC) is None
    assert discover('<ftp://hub/>; rel="hub"', (), None, TOPIC) is None


def test_a_link_header_may_name_several_relations_at_once() -> None:
    rels = link_header_rels('<https://h.example/>; rel="hub self"; title="x", <broken', TOPIC)
    assert rels == {"hub": "https://h.example/", "self": "https://h.example/"}
    assert link_header_rels("<https://h.example/>; rel=HUB", TOPIC) == {"hub": "https://h.example/"}


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_a_signature_made_with_the_secret_is_valid(algorithm: str) -> None:
    assert signature_valid("secret", b"body", sign("secret", b"body", algorithm))


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256", "md5=abc", sign("other", b"body"), sign("secret", b"bodY"), "sha256=zz"],
)
def test_a_missing_or_wrong_signature_is_not_valid(header: str | None) -> None:
    assert not signature_valid("secret", b"body", header)


def test_only_the_awaited_request_is_verified() -> None:
    pending = a_subscription()
    assert verification(pending, "subscribe", TOPIC) == "confirm_subscribe"
    assert verification(pending, "subscribe", TOPIC + "?x") == "unknown"
    assert verification(pending, "unsubscribe", TOPIC) == "unknown"
    assert verification(None, "subscribe", TOPIC) == "unknown"
    assert verification(a_subscription(pending_mode=None), "subscribe", TOPIC) == "unknown"
    leaving = a_subscription(wanted=False, pending_mode="unsubscribe")
    assert verification(leaving, "unsubscribe", TOPIC) == "confirm_unsubscribe"
    assert verification(leaving, "subscribe", TOPIC) == "unknown"
    assert verification(pending, "denied", TOPIC) == "denied"


def test_a_lease_is_renewed_before_it_runs_out() -> None:
    for lease in (2, 60, 3600, 10 * 86400, 365 * 86400):
        renew = renewal_time(NOW, lease)
        assert NOW + timedelta(seconds=lease / 2) <= renew < NOW + timedelta(seconds=lease)
    assert renewal_time(NOW, 10 * 86400) == NOW + timedelta(days=9)


def test_what_a_due_subscription_needs() -> None:
    assert next_action(a_subscription(), NOW) == "subscribe"
    leaving = a_subscription(
        wanted=False, active=True, pending_mode=None, expires_at=NOW + timedelta(hours=1)
    )
    assert next_action(leaving, NOW) == "unsubscribe"
    never_confirmed = a_subscription(wanted=False, pending_mode=None)
    assert next_action(never_confirmed, NOW) == "forget"
    expired = a_subscription(wanted=False, active=True, expires_at=NOW - timedelta(seconds=1))
    assert next_action(expired, NOW) == "forget"
    tried = a_subscription(wanted=False, active=True, attempts=3)
    assert next_action(tried, NOW) == "forget"


# -- storage, on both backends ----------------------------------------------


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    opened = await open_test_storage(database_url)
    try:
        yield opened
    finally:
        await opened.close()


async def a_feed(storage: Storage, url: str) -> int:
    await storage.feeds.sync_feeds(
        [parse_config({"feeds": [{"url": url}]}).feeds[0]], NOW - timedelta(hours=1)
    )
    (feed,) = [f for f in await storage.feeds.all_feeds() if f.url == url]
    return feed.id


async def test_a_noted_hub_is_claimed_once_and_a_new_hub_gets_a_new_secret(
    storage: Storage,
) -> None:
    feed_id = await a_feed(storage, TOPIC)
    assert await storage.websub.note_hub(
        feed_id, "https://hub.example/", TOPIC, secret="a" * 64, trusted=True, now=NOW
    )
    assert not await storage.websub.note_hub(
        feed_id, "https://hub.example/", TOPIC, secret="b" * 64, trusted=True, now=NOW
    )
    (claimed,) = await storage.websub.claim_due(NOW, 600)
    assert claimed.secret == "a" * 64 and claimed.wanted and not claimed.active
    assert await storage.websub.claim_due(NOW, 600) == []  # claimed: not due again yet
    assert await storage.websub.note_hub(
        feed_id, "https://hub2.example/", TOPIC, secret="c" * 64, trusted=True, now=NOW
    )
    (moved,) = await storage.websub.subscriptions()
    assert (moved.hub_url, moved.secret, moved.id) == (
        "https://hub2.example/",
        "c" * 64,
        claimed.id,
    )


async def test_a_confirmation_needs_the_pending_request_and_the_same_topic(
    storage: Storage,
) -> None:
    feed_id = await a_feed(storage, TOPIC)
    await storage.websub.note_hub(
        feed_id, "https://hub.example/", TOPIC, secret="a" * 64, trusted=True, now=NOW
    )
    (sub,) = await storage.websub.subscriptions()
    later = NOW + timedelta(days=1)
    confirm = {"lease_seconds": 86400, "expires_at": later, "renew_at": later}
    assert not await storage.websub.confirm_subscribe(sub.id, TOPIC, **confirm)  # never asked
    await storage.websub.mark_requested(sub.id, "subscribe", NOW + timedelta(minutes=10))
    assert not await storage.websub.confirm_subscribe(sub.id, TOPIC + "x", **confirm)
    assert await storage.websub.confirm_subscribe(sub.id, TOPIC, **confirm)
    assert await storage.websub.feeds_with_hubs(NOW) == {
        feed_id: FeedHub("https://hub.example/", TOPIC, pushing=True)
    }
    assert not (await storage.websub.feeds_with_hubs(later))[feed_id].pushing  # lease over
    # Paused: no longer wanted, and no more pushed either.
    await storage.feeds.pause_feed(feed_id)
    assert await storage.websub.unwant_unpolled(NOW) == 1
    assert await storage.websub.feeds_with_hubs(NOW) == {}
    await storage.websub.mark_requested(sub.id, "unsubscribe", NOW + timedelta(minutes=10))
    assert await storage.websub.confirm_unsubscribe(sub.id, TOPIC)
    assert await storage.websub.subscriptions() == []


# -- subscriber and callback listener, with the loopback hub -----------------


class Pushes:
    """Stands in for the pipeline: records what the listener hands on."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, feed_id: int, body: bytes, content_type: str | None) -> FeedOutcome:
        if not body.startswith(b"<"):
            raise ParseError("parse: not an RSS, Atom or RDF feed")
        self.bodies.append(body)
        return FeedOutcome(feed_id, TOPIC, "new", 1, 1)


async def until(condition: Any, what: str) -> None:
    async def holds() -> bool:
        return bool(condition())

    await eventually(holds, what=what)


@pytest.fixture
async def listener(storage: Storage) -> AsyncIterator[tuple[CallbackServer, Pushes, ManualClock]]:
    clock = ManualClock(NOW)
    pushes = Pushes()
    server = CallbackServer(WebSubConfig(listen="127.0.0.1:0"), storage, clock, pushes)
    await server.start()
    try:
        yield server, pushes, clock
    finally:
        await server.stop()


def callback_base(server: CallbackServer) -> str:
    return f"http://127.0.0.1:{server.port}/websub"


def hub_client() -> FeedClient:
    """The client the bot reaches the operator's hubs with (no proxy)."""
    return make_client(parse_config({}).polling, environment_proxies=False)


async def subscribed(
    storage: Storage,
    server: CallbackServer,
    clock: ManualClock,
    hub: WebSubHub,
    http: FeedClient,
    lease: float = 86400,
) -> tuple[HubSubscriber, int]:
    feed_id = await a_feed(storage, TOPIC)
    await storage.websub.note_hub(
        feed_id, hub.url, TOPIC, secret="k" * 64, trusted=True, now=clock.now()
    )
    subscriber = HubSubscriber(
        WebSubConfig(lease=lease), callback_base(server), storage, clock, http
    )
    assert await subscriber.run_once() == 1
    await until(lambda: hub.verified(TOPIC) == 1, "the subscription's verification")
    return subscriber, feed_id


async def test_subscribe_verify_then_only_signed_pushes_are_stored(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, pushes, clock = listener
    async with hub_client() as http:
        await subscribed(storage, server, clock, websub_hub, http)
    (request,) = websub_hub.requests
    assert request.mode == "subscribe" and request.secret == "k" * 64
    (sub,) = await storage.websub.subscriptions()
    assert request.callback == callback_url(callback_base(server), sub)
    assert request.callback.startswith(callback_base(server) + f"/{sub.id}/")
    assert sub.active and sub.pending_mode is None and sub.lease_seconds == 86400

    body = rss(item("pushed-1", "Pushed story"))
    assert await asyncio.to_thread(websub_hub.push, TOPIC, body) == [202]
    assert pushes.bodies == [body]
    # Unsigned or wrongly signed: answered alike, and ignored.
    assert await asyncio.to_thread(websub_hub.push, TOPIC, b"<x/>", signature="none") == [202]
    assert await asyncio.to_thread(websub_hub.push, TOPIC, b"<y/>", signature="wrong") == [202]
    assert pushes.bodies == [body] and server.ignored_pushes == 2
    # A signed body that is no feed is acknowledged (a resend would not help).
    assert await asyncio.to_thread(websub_hub.push, TOPIC, b"not a feed") == [202]
    assert await asyncio.to_thread(websub_hub.push, TOPIC, body, signature="sha1") == [202]
    assert pushes.bodies == [body, body]


async def test_a_verification_nobody_asked_for_is_answered_404(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, _, clock = listener
    base = callback_base(server)
    # No such subscription yet:
    nowhere = f"{base}/1/{'0' * 32}"
    assert await asyncio.to_thread(websub_hub.verify, nowhere, "subscribe", TOPIC) == (404, "")
    async with hub_client() as http:
        await subscribed(storage, server, clock, websub_hub, http)
    (sub,) = await storage.websub.subscriptions()
    own = callback_url(base, sub)
    # Confirmed already: a second "subscribe" is not one we are waiting for.
    assert (await asyncio.to_thread(websub_hub.verify, own, "subscribe", TOPIC))[0] == 404
    assert (await asyncio.to_thread(websub_hub.verify, own, "unsubscribe", TOPIC))[0] == 404
    other = "https://evil.example/feed"
    assert (await asyncio.to_thread(websub_hub.verify, own, "subscribe", other))[0] == 404
    # The right id, but not the token the hub was given: as if there were none.
    guessed = f"{base}/{sub.id}/{'0' * 32}"
    assert sub.pending_mode is None
    await storage.websub.mark_requested(sub.id, "subscribe", NOW + timedelta(minutes=10))
    assert (await asyncio.to_thread(websub_hub.verify, guessed, "subscribe", TOPIC))[0] == 404
    assert (await asyncio.to_thread(websub_hub.verify, guessed, "denied", TOPIC))[0] == 404
    assert await asyncio.to_thread(post_to, guessed, b"<x/>", {}) == 410
    assert (await storage.websub.subscriptions())[0].active  # nothing changed
    # A push for a subscription we do not have: 410, the hub drops it.
    assert await asyncio.to_thread(post_to, f"{base}/999/{'0' * 32}", b"<x/>", {}) == 410


async def test_a_lease_is_renewed_before_it_expires(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, _, clock = listener
    websub_hub.lease_seconds = 1000  # the hub grants less than asked
    async with hub_client() as http:
        subscriber, _ = await subscribed(storage, server, clock, websub_hub, http)
        (sub,) = await storage.websub.subscriptions()
        assert sub.lease_seconds == 1000 and sub.expires_at == NOW + timedelta(seconds=1000)
        clock.set(renewal_time(NOW, 1000) - timedelta(seconds=1))
        assert await subscriber.run_once() == 0
        clock.set(renewal_time(NOW, 1000))
        assert clock.now() < NOW + timedelta(seconds=1000)  # before it runs out
        assert await subscriber.run_once() == 1
        await until(lambda: websub_hub.verified(TOPIC) == 2, "the renewal's verification")
    (renewed,) = await storage.websub.subscriptions()
    assert [r.mode for r in websub_hub.requests] == ["subscribe", "subscribe"]
    assert renewed.active and renewed.expires_at == clock.now() + timedelta(seconds=1000)


async def test_removing_the_feed_unsubscribes_at_the_hub(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, _, clock = listener
    async with hub_client() as http:
        subscriber, _ = await subscribed(storage, server, clock, websub_hub, http)
        await storage.feeds.sync_feeds([], clock.now())  # gone from the configuration
        assert await subscriber.run_once() == 1
        await until(lambda: websub_hub.verified(TOPIC, "unsubscribe") == 1, "the unsubscribe")
    assert websub_hub.requests[-1].mode == "unsubscribe"
    assert await storage.websub.subscriptions() == []
    assert websub_hub.subscribers[TOPIC] == []


async def test_a_refusing_hub_is_asked_again_later(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, _, clock = listener
    websub_hub.refuse_with = 500
    feed_id = await a_feed(storage, TOPIC)
    await storage.websub.note_hub(feed_id, websub_hub.url, TOPIC, secret="k", trusted=True, now=NOW)
    async with hub_client() as http:
        subscriber = HubSubscriber(WebSubConfig(), callback_base(server), storage, clock, http)
        assert await subscriber.run_once() == 1
        (sub,) = await storage.websub.subscriptions()
        assert sub.last_error == "hub: HTTP 500" and sub.pending_mode is None
        assert describe_push(sub, NOW) == (
            f"push via {websub_hub.url}: not subscribed yet; last error: hub: HTTP 500"
        )
        assert sub.next_attempt_at == NOW + timedelta(minutes=1)
        assert await subscriber.run_once() == 0
        websub_hub.refuse_with = None
        clock.advance(60)
        assert await subscriber.run_once() == 1
        await until(lambda: websub_hub.verified(TOPIC) == 1, "the second try's verification")


async def test_the_hub_of_a_runtime_feed_must_be_a_public_address(
    storage: Storage, listener: tuple[CallbackServer, Pushes, ManualClock], websub_hub: WebSubHub
) -> None:
    server, _, clock = listener
    feed_id = await a_feed(storage, TOPIC)
    await storage.websub.note_hub(
        feed_id, websub_hub.url, TOPIC, secret="k", trusted=False, now=NOW
    )

    async def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("a loopback literal is never resolved")

    config = parse_config({}).polling
    async with hub_client() as http, make_public_only_client(config, resolver) as guarded:
        subscriber = HubSubscriber(
            WebSubConfig(), callback_base(server), storage, clock, http, guarded
        )
        assert await subscriber.run_once() == 1
    (sub,) = await storage.websub.subscriptions()
    assert sub.last_error is not None and "refused" in sub.last_error
    assert websub_hub.requests == []


# -- the whole bot ------------------------------------------------------------


def pushed_feed(hub: WebSubHub, feeds: FeedServer, *items: str) -> bytes:
    topic = feeds.url("/pushed.xml")
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>Pushed News</title><link>https://loopback.example/</link>"
        f'<atom:link rel="hub" href="{hub.url}"/>'
        f'<atom:link rel="self" href="{topic}"/>' + "".join(items) + "</channel></rss>"
    ).encode()


async def cards_to(bot: BotHarness, chat_id: int, title: str) -> int:
    return sum(
        1
        for call in bot.fake.calls("sendMessage", chat_id)
        if title in str(call.params.get("text", ""))
    )


async def test_a_signed_push_becomes_a_card_once_and_a_forged_one_never(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    port = free_port()
    topic = feed_server.url("/pushed.xml")
    feed_server.serve("/pushed.xml", pushed_feed(websub_hub, feed_server, item("old-1", "Old")))
    async with running_bot(
        tmp_path,
        fake_telegram,
        feed_server,
        wait_for_articles=False,
        extra_feeds=[{"url": topic, "categories": ["science"]}],
        websub={"listen": f"127.0.0.1:{port}", "callback_url": f"http://127.0.0.1:{port}/websub"},
    ) as bot:
        await bot.say(77, "/subscribe science")
        await asyncio.to_thread(websub_hub.wait_until, lambda: websub_hub.verified(topic) == 1)

        def push(title: str, signature: str = "sha256") -> list[int]:
            body = pushed_feed(websub_hub, feed_server, item(title, title), item("old-1", "Old"))
            return websub_hub.push(topic, body, signature=signature)

        assert await asyncio.to_thread(push, "Forged story", "wrong") == [202]
        assert await asyncio.to_thread(push, "Unsigned story", "none") == [202]
        assert await asyncio.to_thread(push, "Pushed story") == [202]

        async def pushed_card() -> bool:
            return await cards_to(bot, 77, "Pushed story") == 1

        await eventually(pushed_card, what="the pushed story's card")
        # Pushed again (a hub retrying): no second card; a later story still comes.
        assert await asyncio.to_thread(push, "Pushed story") == [202]
        assert await asyncio.to_thread(push, "Second pushed story") == [202]

        async def second_card() -> bool:
            return await cards_to(bot, 77, "Second pushed story") == 1

        await eventually(second_card, what="the second pushed story's card")
        assert await cards_to(bot, 77, "Pushed story") == 1
        assert await cards_to(bot, 77, "Forged story") == 0
        assert await cards_to(bot, 77, "Unsigned story") == 0
        assert await cards_to(bot, 77, "Old") == 0
        # Pushed to: the feed is polled at the fallback interval only.
        (feed,) = [f for f in await bot.storage.feeds.all_feeds() if f.url == topic]
        assert feed.next_check_at is not None
        assert feed.next_check_at > datetime.now(UTC) + timedelta(minutes=30)

        # Paused by the operator: unsubscribed at the hub.
        await bot.storage.feeds.pause_feed(feed.id)
        await asyncio.to_thread(
            websub_hub.wait_until, lambda: websub_hub.verified(topic, "unsubscribe") == 1
        )

        async def forgotten() -> bool:
            return await bot.storage.websub.subscriptions() == []

        await eventually(forgotten, what="the subscription's end")


async def test_a_hub_named_in_the_link_header_is_subscribed(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    port = free_port()
    url = feed_server.url("/linked.xml")
    feed_server.serve(
        "/linked.xml",
        rss(item("l-1", "Linked")),
        websub_links=(websub_hub.url, "https://canonical.example/feed"),
    )
    async with running_bot(
        tmp_path,
        fake_telegram,
        feed_server,
        wait_for_articles=False,
        extra_feeds=[{"url": url, "categories": ["science"]}],
        websub={"listen": f"127.0.0.1:{port}", "callback_url": f"http://127.0.0.1:{port}/websub"},
    ):
        await asyncio.to_thread(
            websub_hub.wait_until, lambda: websub_hub.verified("https://canonical.example/feed")
        )
    (request,) = websub_hub.requests
    assert request.callback.startswith(f"http://127.0.0.1:{port}/websub/")


def test_the_callbacks_live_under_the_webhook_origin_unless_configured() -> None:
    hooked = parse_config({"telegram": {"webhook_url": "https://bot.example:8443/tg/hook"}})
    assert hooked.websub_callback_base == "https://bot.example:8443/websub"
    explicit = parse_config(
        {
            "telegram": {"webhook_url": "https://bot.example/tg"},
            "websub": {"callback_url": "https://push.example/cb/"},
        }
    )
    assert explicit.websub_callback_base == "https://push.example/cb"
    assert parse_config({}).websub_callback_base is None  # long polling, no public URL
    off = parse_config(
        {"telegram": {"webhook_url": "https://b.example/"}, "websub": {"enabled": False}}
    )
    assert off.websub_callback_base is None


def test_in_webhook_mode_the_bot_serves_hub_callbacks_beside_the_webhook(
    tmp_path: Path, fake_telegram: FakeTelegram, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    hook_port, push_port = free_port(), free_port()
    topic = feed_server.url("/pushed.xml")
    feed_server.serve("/pushed.xml", pushed_feed(websub_hub, feed_server, item("old-1", "Old")))
    db = tmp_path / "hook.db"
    config = tmp_path / "config.toml"
    # As behind a reverse proxy: Telegram and the hubs call https://news.example,
    # which forwards /telegram-hook and /websub/ to the two listeners.
    config.write_text(
        f"""
[telegram]
base_url = "{fake_telegram.base_url}"
webhook_url = "https://news.example/telegram-hook"
webhook_listen = "127.0.0.1"
webhook_port = {hook_port}

[websub]
listen = "127.0.0.1:{push_port}"
callback_url = "http://127.0.0.1:{push_port}/websub"

[storage]
path = "{db}"

[polling]
interval = 600
parse_workers = 1

[[categories]]
id = "space"
title = "Space"

[[feeds]]
url = "{topic}"
categories = ["space"]
"""
    )
    bot = start_webhook_bot(config, fake_telegram.token)
    try:
        websub_hub.wait_until(lambda: websub_hub.verified(topic) == 1, timeout=30)
        body = pushed_feed(websub_hub, feed_server, item("new-1", "Pushed in webhook mode"))
        assert websub_hub.push(topic, body) == [202]
        with closing(sqlite3.connect(db)) as connection:
            titles = [r[0] for r in connection.execute("SELECT title FROM articles")]
        assert "Pushed in webhook mode" in titles
    finally:
        log = stop(bot)
    assert " ERROR " not in log, log


async def test_a_push_over_the_body_limit_is_refused_unread(
    storage: Storage, websub_hub: WebSubHub
) -> None:
    clock = ManualClock(NOW)
    pushes = Pushes()
    config = WebSubConfig(listen="127.0.0.1:0", max_body_bytes=4096)
    server = CallbackServer(config, storage, clock, pushes)
    await server.start()
    try:
        async with hub_client() as http:
            await subscribed(storage, server, clock, websub_hub, http)
        small = rss(item("small", "Small enough"))
        assert await asyncio.to_thread(websub_hub.push, TOPIC, small) == [202]
        big = rss(*(item(f"big-{n}", "A long story " * 20) for n in range(20)))
        assert len(big) > 4096
        statuses = await asyncio.to_thread(websub_hub.push, TOPIC, big)
        assert statuses != [202]
        assert pushes.bodies == [small]
    finally:
        await server.stop()


def test_a_json_feed_names_its_websub_hub_and_feed_url() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "feed_url": "https://j.example/feed.json",
            "hubs": [
                {"type": "rssCloud", "url": "https://c.example/"},
                {"type": "WebSub", "url": "https://hub.example/"},
                "junk",
            ],
            "items": [{"id": "1", "url": "https://j.example/1", "title": "One"}],
        }
    ).encode()
    parsed = parse(body, "https://j.example/feed", "application/feed+json")
    assert parsed.hubs == ("https://hub.example/",)
    assert parsed.self_url == "https://j.example/feed.json"
    links = discover(None, parsed.hubs, parsed.self_url, "https://j.example/feed")
    assert links is not None and links.topic == "https://j.example/feed.json"


async def test_health_shows_how_push_stands_for_each_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "health.db"
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\npath = "{db}"\n\n[[feeds]]\nurl = "{TOPIC}"\n')
    storage = await open_test_storage(db)
    try:
        feed_id = await a_feed(storage, TOPIC)
        await storage.websub.note_hub(
            feed_id, "https://hub.example/", TOPIC, secret="k", trusted=True, now=NOW
        )
    finally:
        await storage.close()
    assert await asyncio.to_thread(main, ["--config", str(config), "health"]) == 0
    out = capsys.readouterr().out
    assert "push via https://hub.example/: not subscribed yet" in out


async def test_a_poll_notes_the_hub_and_unsubscribes_when_the_feed_stops_naming_it(
    tmp_path: Path, feed_server: FeedServer, websub_hub: WebSubHub
) -> None:
    url = feed_server.url("/pushed.xml")
    route = feed_server.serve("/pushed.xml", pushed_feed(websub_hub, feed_server, item("a", "A")))
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "poll.db")},
            "polling": {"parse_workers": 1},
            "websub": {"callback_url": "https://bot.example/websub"},
            "feeds": [{"url": url}],
        }
    )
    clock = ManualClock(NOW)
    runtime = await Runtime.open(config, clock=clock)
    try:
        await runtime.poller.run_round(all_feeds=True)
        (noted,) = await runtime.storage.websub.subscriptions()
        assert (noted.hub_url, noted.topic_url, noted.wanted) == (websub_hub.url, url, True)
        assert len(noted.secret) == 64
        # Polled again with a body that still names the hub: nothing changes.
        route.body = pushed_feed(websub_hub, feed_server, item("b", "B"), item("a", "A"))
        clock.advance(3600)
        await runtime.poller.run_round(all_feeds=True)
        assert await runtime.storage.websub.subscriptions() == [noted]
        # The feed no longer names a hub: the subscription is to be cancelled.
        route.body = rss(item("c", "C"), item("b", "B"))
        clock.advance(3600)
        await runtime.poller.run_round(all_feeds=True)
        (left,) = await runtime.storage.websub.subscriptions()
        assert not left.wanted and left.next_attempt_at == clock.now()
    finally:
        await runtime.close()


async def test_a_pushed_body_leaves_a_pollers_claim_and_remembered_items_alone(
    storage: Storage,
) -> None:
    feed_id = await a_feed(storage, TOPIC)
    (feed,) = await storage.feeds.claim_due_feeds(NOW, "poller-a", 600)
    await storage.articles.store_articles(
        feed,
        [],
        now=NOW,
        next_check=NOW,
        feed_title="Feed",
        site_url=None,
        body_hash="h1",
        etag='"e1"',
        last_modified=None,
        fetch_url=None,
        items={"digest-1": "key-1"},
    )
    (feed,) = await storage.feeds.claim_due_feeds(NOW, "poller-a", 600)  # fetching again
    pushed = NewArticle(
        key="pushed",
        url="https://news.example/pushed",
        title="Pushed",
        summary="",
        author=None,
        published=NOW,
        image_url=None,
        categories=(),
    )
    stored = await storage.articles.store_articles(
        feed,
        [pushed],
        now=NOW,
        next_check=NOW + timedelta(hours=1),
        feed_title="Feed",
        site_url=None,
        body_hash="h1",
        etag='"e1"',
        last_modified=None,
        fetch_url=None,
        pushed=True,
    )
    assert stored.new_articles == 1
    assert await storage.feeds.claim_feed(feed_id, NOW, "poller-b", 600) is None  # still a's
    assert await storage.feeds.known_items(feed_id) == {"digest-1": "key-1"}
