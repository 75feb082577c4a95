"""Push workload: from a WebSub hub's push to the card reaching Telegram.

The whole bot runs in this process (``NewsbotApplication.running``) with the
callback listener on loopback, against the tests' fake Bot API, loopback
feed server and loopback hub (each a thread of its own). One private chat
follows the feed; then, one at a time, the hub pushes a signed body with one
new story and we time until the fake Bot API receives its sendMessage
(``Call.time``, stamped when the request arrives). Measured: the push's
HTTP answer (signature check, parse in a worker process, categorize, store
in one transaction) and push-to-card (that, plus the sender waking up,
claiming the card, rendering and sending it).

The chat's pacing (``private_chat_interval``, 1 s in production) is set to
10 ms so that back-to-back pushes measure the path, not the pacing.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "push: WebSub push to card at the Bot API"
CHAT = 4242


def _percentile(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(percentile / 100 * len(ordered)) - 1))
    return ordered[index]


def _feed(hub_url: str, topic: str, titles: list[str]) -> bytes:
    from tests.bot_harness import item

    # Keyed by title: a story keeps its key (and link) from push to push.
    items = "".join(
        item(title.lower().replace(" ", "-"), title, hours_ago=0.01) for title in titles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        "<title>Pushed News</title><link>https://loopback.example/</link>"
        f'<atom:link rel="hub" href="{hub_url}"/><atom:link rel="self" href="{topic}"/>'
        f"{items}</channel></rss>"
    ).encode()


async def _measure(workdir: Path, pushes: int) -> dict[str, Any]:
    import socket

    from bot.config import parse_config
    from bot.telegram.app import NewsbotApplication
    from tests.fake_telegram import FakeTelegram
    from tests.feed_server import FeedServer
    from tests.websub_hub import WebSubHub

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    fake = FakeTelegram()
    fake.start()
    feeds = FeedServer().start()
    hub = WebSubHub().start()
    try:
        topic = feeds.url("/pushed.xml")
        feeds.serve("/pushed.xml", _feed(hub.url, topic, ["Already there"]))
        config = parse_config(
            {
                "telegram": {"token": fake.token, "base_url": fake.base_url},
                "storage": {"path": str(workdir / "push.db")},
                "polling": {"interval": 600, "parse_workers": 1},
                "delivery": {"private_chat_interval": 0.01},
                "alerts": {"enabled": False},
                "websub": {
                    "listen": f"127.0.0.1:{port}",
                    "callback_url": f"http://127.0.0.1:{port}/websub",
                },
                "categories": [{"id": "news", "title": "News"}],
                "feeds": [{"url": topic, "categories": ["news"]}],
            }
        )
        app = NewsbotApplication(config)
        async with app.running(poll_interval=0.0):
            fake.push_update(fake.message(CHAT, "/subscribe news"))
            await fake.wait_for_async("sendMessage", chat_id=CHAT, timeout=30)
            await asyncio.to_thread(hub.wait_until, lambda: hub.verified(topic) == 1, 60)
            answers: list[float] = []
            latencies: list[float] = []
            titles = ["Already there"]
            for n in range(pushes):
                title = f"Pushed story number {n}"
                titles.insert(0, title)
                body = _feed(hub.url, topic, titles[:20])
                sent_before = len(fake.calls("sendMessage", CHAT))
                started = time.monotonic()
                statuses = await asyncio.to_thread(hub.push, topic, body)
                answered = time.monotonic()
                assert statuses == [202], statuses
                card = await fake.wait_for_async(
                    "sendMessage", chat_id=CHAT, count=sent_before + 1, timeout=30
                )
                assert title in str(card.params["text"]), card.params
                answers.append(answered - started)
                latencies.append(card.time - started)
    finally:
        hub.close()
        feeds.close()
        fake.stop()
    return {
        "pushes": pushes,
        "answer_p50_ms": round(1000 * statistics.median(answers), 1),
        "answer_p95_ms": round(1000 * _percentile(answers, 95), 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * _percentile(latencies, 95), 1),
        "max_ms": round(1000 * max(latencies), 1),
    }


def run(settings: Any) -> dict[str, Any]:
    pushes = int(getattr(settings, "pushes", 50))
    workdir = Path(getattr(settings, "workdir", tempfile.gettempdir()))
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("push.db*"):
        stale.unlink()
    return asyncio.run(_measure(workdir, pushes))


def describe(result: dict[str, Any] | None) -> str:
    """One table cell."""
    if not result:
        return "not measured"
    return (
        f"{result['pushes']} pushes: push to card p50 {result['p50_ms']:.0f} ms, "
        f"p95 {result['p95_ms']:.0f} ms, max {result['max_ms']:.0f} ms "
        f"(hub's answer p50 {result['answer_p50_ms']:.0f} ms, p95 {result['answer_p95_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    from types import SimpleNamespace

    print(describe(run(SimpleNamespace(pushes=50))))
