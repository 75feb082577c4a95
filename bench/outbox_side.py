"""Outbox workload: how fast senders claim and mark cards, on either backend.

    python -m bench.outbox_side DB-OR-URL CARDS CLAIMERS

Seeds ``CARDS`` pending cards, one per chat (so every card can be claimed at
once and only the database limits the pace), through the storage API: chats
subscribed to a category, one new article routed to all of them. Then
``CLAIMERS`` asyncio tasks, each with its own worker name, loop
``claim_deliveries(now, 100, worker=..., lease_seconds=60)`` and
``mark_sent`` for every card they claimed, until a claim comes back empty.
On PostgreSQL each claimer opens its own storage (its own connections), as
senders on several machines would; on SQLite they share the process' one
connection, as the roles of one process do.

Reported: cards per wall second (claimed and marked), and claims/s and
marks/s, each over the time claimers spent in that call (the sum over the
claimers divided by their number). Checked: no card is claimed twice, every
card ends ``sent``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import procs

BATCH = 100
LEASE_SECONDS = 60
CATEGORY = "space"


def run(where: str, cards: int, claimers: int) -> dict[str, Any]:
    """Measure in a fresh process (the parent's feed server and imports
    stay out of it)."""
    run = procs.run(
        [sys.executable, "-m", "bench.outbox_side", where, str(cards), str(claimers)],
        timeout=3600,
    )
    if run.returncode != 0:
        raise RuntimeError(f"outbox_side failed ({run.returncode}): {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    result["process_cpu_seconds"] = run.cpu_seconds
    return result


def _config(where: str) -> Any:
    from bot.config import StorageConfig

    if where.startswith(("postgresql://", "postgres://")):
        return StorageConfig(url=where)
    return StorageConfig(path=where)


async def _seed(storage: Any, cards: int, now: datetime) -> None:
    from bot.config import FeedConfig
    from bot.models import NewArticle

    await storage.feeds.sync_feeds(
        [FeedConfig(url="http://127.0.0.1:9/outbox.xml", categories=[CATEGORY])], now
    )
    for chat_id in range(1, cards + 1):
        await storage.chats.upsert_chat(chat_id, "private", f"chat {chat_id}", None, now)
        await storage.chats.subscribe(chat_id, [CATEGORY], now)
    # The first fetch of a feed stores its backlog without cards; the second
    # one's new story goes to every subscribed chat.
    for fetch in range(2):
        (feed,) = await storage.feeds.due_feeds(now + timedelta(days=1))
        article = NewArticle(
            key=f"story-{fetch}",
            url=f"https://news.example/{fetch}",
            title=f"Story {fetch}",
            summary="A summary",
            author=None,
            published=now - timedelta(minutes=2 - fetch),
            image_url=None,
            categories=(CATEGORY,),
        )
        await storage.articles.store_articles(
            feed,
            [article],
            now=now,
            next_check=now,
            feed_title="Outbox feed",
            site_url=None,
            body_hash=str(fetch),
            etag=None,
            last_modified=None,
            fetch_url=None,
        )


async def _claimer(storage: Any, worker: str, record: dict[str, Any], sent: set[int]) -> None:
    while True:
        started = time.perf_counter()
        claimed = await storage.outbox.claim_deliveries(
            datetime.now(UTC), BATCH, worker=worker, lease_seconds=LEASE_SECONDS
        )
        record["claim_calls"].append(time.perf_counter() - started)
        if not claimed:
            return
        record["ids"] += [card.id for card in claimed]
        # A card another claimer had already marked sent by the time this
        # claim returned would go to its chat a second time.
        record["after_sent"] += sum(card.id in sent for card in claimed)
        started = time.perf_counter()
        for card in claimed:
            await storage.outbox.mark_sent(card.id, card.id, datetime.now(UTC))
            sent.add(card.id)
        record["mark_seconds"] += time.perf_counter() - started


async def _measure(where: str, cards: int, claimers: int) -> dict[str, Any]:
    from bot.storage import open_storage

    config = _config(where)
    now = datetime.now(UTC) - timedelta(seconds=5)
    seeding = await open_storage(config)
    started = time.perf_counter()
    await _seed(seeding, cards, now)
    seed_seconds = time.perf_counter() - started
    pending = (await seeding.outbox.delivery_counts()).get("pending", 0)
    postgres = seeding.backend == "postgresql"
    opened = [await open_storage(config) for _ in range(claimers)] if postgres else [seeding]
    records: list[dict[str, Any]] = [
        {"claim_calls": [], "ids": [], "mark_seconds": 0.0, "after_sent": 0}
        for _ in range(claimers)
    ]
    sent: set[int] = set()
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _claimer(opened[n % len(opened)], f"bench-sender-{n}", records[n], sent)
            for n in range(claimers)
        )
    )
    wall = time.perf_counter() - started
    counts = await seeding.outbox.delivery_counts()
    for storage in opened:
        if storage is not seeding:
            await storage.close()
    await seeding.close()

    ids = [i for r in records for i in r["ids"]]
    claim_seconds = sum(sum(r["claim_calls"]) for r in records) / claimers
    mark_seconds = sum(r["mark_seconds"] for r in records) / claimers
    calls = [c for r in records for c in r["claim_calls"]]
    problems = []
    if pending != cards:
        problems.append(f"{pending} cards pending after seeding, expected {cards}")
    if len(ids) != len(set(ids)):
        after_sent = sum(r["after_sent"] for r in records)
        problems.append(
            f"{len(ids) - len(set(ids))} cards claimed twice"
            f" ({after_sent} of them claimed again after they were marked sent)"
        )
    if counts != {"sent": cards}:
        problems.append(f"outbox ended as {counts}, expected {cards} sent")
    return {
        "cards": cards,
        "claimers": claimers,
        "seed_seconds": seed_seconds,
        "wall_seconds": wall,
        "cards_per_second": len(set(ids)) / wall if wall else 0.0,
        "claimed_twice": len(ids) - len(set(ids)),
        "claims_per_second": len(ids) / claim_seconds if claim_seconds else 0.0,
        "marks_per_second": len(ids) / mark_seconds if mark_seconds else 0.0,
        "claim_call_ms_p50": 1000 * statistics.median(calls),
        "claim_call_ms_max": 1000 * max(calls),
        "claim_share": claim_seconds / wall if wall else 0.0,
        "per_claimer": [len(r["ids"]) for r in records],
        "problems": problems,
    }


def describe(result: dict[str, Any]) -> str:
    """One table cell."""
    return (
        f"{result['cards_per_second']:.0f} cards/s end to end "
        f"({result['cards']:,} in {result['wall_seconds']:.1f} s); "
        f"claims {result['claims_per_second']:.0f}/s "
        f"(call of {BATCH}: p50 {result['claim_call_ms_p50']:.1f} ms), "
        f"marks {result['marks_per_second']:.0f}/s"
    )


def main() -> None:
    result = asyncio.run(_measure(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
