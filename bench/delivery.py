"""Delivery workload: N pending cards to N chats (one each, so only the
overall limit binds) through a fake Bot API that enforces Telegram's flood
limits (≈30 messages/s per bot, 1/s per chat) and answers 429 beyond them.

The fake runs in its own process so its CPU is not billed to the sender. We
report the sustained rate (cards over the span from first to last accepted
send), its share of the 30/s limit, the 429 answers, and the sender process'
CPU time per delivered card (user + system, including PTB and httpx).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

NAME = "delivery: pending cards to as many chats at ≈30 msg/s"
LIMIT_PER_SECOND = 30.0


def _fake_api(conn: Connection) -> None:
    """Child process: the tests' fake Bot API with flood limits on."""
    from tests.fake_telegram import FakeTelegram, FloodLimits

    fake = FakeTelegram(flood_limits=FloodLimits(per_bot_per_second=30, private_chat_interval=1.0))
    fake.start()
    conn.send((fake.base_url, fake.token))
    conn.recv()  # the parent says when it is done
    times = sorted(c.time for c in fake.calls("sendMessage") if c.ok)
    busiest = 0
    start = 0
    for end, stamp in enumerate(times):
        while stamp - times[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    conn.send(
        {
            "accepted": len(times),
            "span": (times[-1] - times[0]) if len(times) > 1 else 0.0,
            "flood_429": fake.flood_429_count,
            "busiest_second": busiest,
        }
    )
    fake.stop()


async def _drain(base_url: str, token: str, cards: int, database: Path) -> dict[str, float]:
    from telegram.ext import ExtBot

    from bot.clock import SystemClock
    from bot.config import DeliveryConfig, StorageConfig
    from bot.deliver import Sender
    from bot.storage import open_storage
    from bot.telegram.ratelimit import MessageRateLimiter

    storage = await open_storage(StorageConfig(path=str(database)))
    try:
        # The test suite's outbox seeding: one new article, pending for each chat.
        from tests.test_delivery import seed

        await seed(storage, dict.fromkeys(range(1, cards + 1), "private"), 1)
        assert (await storage.outbox.delivery_counts()) == {"pending": cards}
        # The same bot set-up as the application: PTB's rate limiter in front.
        bot: ExtBot[Any] = ExtBot(
            token, base_url=base_url, rate_limiter=MessageRateLimiter(max_retries=0)
        )
        async with bot:
            sender = Sender(
                storage, bot.send_message, DeliveryConfig(), SystemClock(), {"space": "Space"}
            )
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            await sender.drain(within=cards / 20 + 120)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        counts = await storage.outbox.delivery_counts()
    finally:
        await storage.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "sent": float(counts.get("sent", 0))}


def run(settings: Any) -> dict[str, Any]:
    cards = int(getattr(settings, "cards", 3000))
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_fake_api, args=(child,))
    process.start()
    try:
        base_url, token = parent.recv()
        database = Path(settings.workdir) / "delivery.db"
        database.unlink(missing_ok=True)
        drained = asyncio.run(_drain(base_url, token, cards, database))
        parent.send("done")
        fake = parent.recv()
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    rate = (fake["accepted"] - 1) / fake["span"] if fake["span"] else 0.0
    return {
        "cards": cards,
        "sent": int(drained["sent"]),
        "accepted": fake["accepted"],
        "seconds": round(drained["wall"], 2),
        "rate": round(rate, 2),
        "share_of_limit": round(rate / LIMIT_PER_SECOND, 3),
        "flood_429": fake["flood_429"],
        "busiest_second": fake["busiest_second"],
        "cpu_ms_per_card": round(1000 * drained["cpu"] / max(1, drained["sent"]), 2),
    }


def describe(result: dict[str, Any] | None) -> str:
    """One table cell."""
    if not result:
        return "not measured"
    return (
        f"{result['sent']}/{result['cards']} sent in {result['seconds']:.1f} s: "
        f"{result['rate']:.2f} msg/s = {100 * result['share_of_limit']:.1f}% of 30/s, "
        f"{result['flood_429']} × 429, busiest second {result['busiest_second']}, "
        f"{result['cpu_ms_per_card']:.2f} ms CPU/card"
    )


if __name__ == "__main__":
    import sys
    import tempfile
    from types import SimpleNamespace

    with tempfile.TemporaryDirectory() as scratch:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
        print(describe(run(SimpleNamespace(cards=count, workdir=scratch))))
