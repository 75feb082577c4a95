"""Inline mode's answer time on newsbot's side::

    python -m bench.inline_side [CORPUS_DIR] [--queries 300]
    python -m bench.inline_side big DB-OR-URL QUERIES_FILE

The first form runs over the real-world corpus.

Stores every feed of the corpus (``shared/feeds/real``) in a fresh SQLite
database, then answers inline queries the way the bot does
(``bot.telegram.inline.parse_inline_query`` and ``find_inline_answer``:
storage, search, rendering the results) and prints the p50/p95 of that
server-side time. Telegram's own round trip is not in it: that is what the
user waits for on top, and the bot must answer within about 10 s in all.

The queries: a quarter empty (latest headlines), a quarter starting with a
category word, the rest one or two words taken from the corpus's titles;
every fifth query is followed by its next page.

The ``big`` form (what ``python -m bench inline`` runs, in a fresh process,
on the generated million-article database of either backend, its articles
spread over the three categories by ``add_categories``) times the same
service calls for the queries in QUERIES_FILE and prints the latencies as
JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.categorize import Categorizer
from bot.clock import SystemClock
from bot.config import Config, parse_config
from bot.models import NewArticle
from bot.parse import parse
from bot.services import NewsService
from bot.storage import Storage, open_storage
from bot.telegram.inline import find_inline_answer, parse_inline_query

CATEGORIES = [
    {"id": "tech", "title": "Technology"},
    {"id": "world", "title": "World"},
    {"id": "science", "title": "Science"},
]
_WORD = re.compile(r"[A-Za-z]{4,}")


def default_corpus() -> Path:
    return Path(os.environ.get("NEWSBOT_FEEDS_DIR", "/work/shared/feeds/real"))


def corpus_config(corpus: Path, database: Path) -> Config:
    feeds = [
        {"url": f"https://corpus.example/{path.name}", "categories": [CATEGORIES[n % 3]["id"]]}
        for n, path in enumerate(sorted(corpus.glob("*.xml")))
    ]
    return parse_config(
        {"storage": {"path": str(database)}, "categories": CATEGORIES, "feeds": feeds}
    )


async def store_corpus(config: Config, corpus: Path, storage: Storage) -> list[str]:
    """Every corpus feed stored as a polling round would; returns the titles."""
    now = datetime.now(UTC)
    await storage.feeds.sync_feeds(config.feeds, now)
    categorizer = Categorizer(config.categories)
    titles: list[str] = []
    for feed in await storage.feeds.due_feeds(now + timedelta(days=3650), limit=10_000):
        path = corpus / feed.url.rsplit("/", 1)[1]
        parsed = parse(path.read_bytes(), feed.url)
        articles = [
            NewArticle(
                key=entry.key,
                url=entry.url,
                title=entry.title,
                summary=entry.summary,
                author=entry.author,
                published=min(entry.published or now, now),
                image_url=entry.image_url,
                categories=categorizer.categorize(
                    feed.categories, entry.tags, entry.title, entry.summary
                ),
            )
            for entry in parsed.entries
        ]
        titles.extend(a.title for a in articles)
        await storage.articles.store_articles(
            feed,
            articles,
            now=now,
            next_check=now + timedelta(hours=1),
            feed_title=parsed.title,
            site_url=parsed.site_url,
            body_hash=path.name,
            etag=None,
            last_modified=None,
            fetch_url=None,
        )
    return titles


def make_queries(titles: list[str], count: int, rand: random.Random) -> list[str]:
    words = [w.lower() for t in titles for w in _WORD.findall(t)]
    queries = []
    for n in range(count):
        kind = n % 4
        if kind == 0:
            queries.append("")
        elif kind == 1:
            queries.append(f"{rand.choice(CATEGORIES)['id']} {rand.choice(words)}")
        else:
            queries.append(" ".join(rand.sample(words, rand.choice((1, 2)))))
    return queries


async def measure(corpus: Path, count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        config = corpus_config(corpus, Path(scratch) / "inline.db")
        storage = await open_storage(config.storage)
        try:
            titles = await store_corpus(config, corpus, storage)
            news = NewsService(config, storage, SystemClock())
            names = {c.id: c.title for c in config.categories}
            timings: list[float] = []
            for n, text in enumerate(make_queries(titles, count, random.Random(7))):
                offset = ""
                for _ in range(2 if n % 5 == 0 else 1):
                    started = time.perf_counter()
                    request = parse_inline_query(text, offset, news.categories)
                    assert request is not None
                    answer = await find_inline_answer(news, request, names, "newsbot")
                    timings.append((time.perf_counter() - started) * 1000)
                    if answer.next_offset is None:
                        break
                    offset = answer.next_offset
            articles = await storage.articles.article_count()
        finally:
            await storage.close()
    cuts = statistics.quantiles(timings, n=20)
    return {
        "articles": articles,
        "answers": len(timings),
        "p50_ms": statistics.median(timings),
        "p95_ms": cuts[18],
        "max_ms": max(timings),
    }


def big_queries(texts: list[str], count: int, seed: int = 7) -> list[str]:
    """``make_queries`` over sampled article texts (titles and summaries)."""
    return make_queries(texts, count, random.Random(seed))


def add_categories(db: Path | str) -> None:
    """Put every generated article in one of ``CATEGORIES`` (by id), as
    storing and routing would have; done once per database."""
    ids = [c["id"] for c in CATEGORIES]
    category = f"CASE id % 3 WHEN 0 THEN '{ids[0]}' WHEN 1 THEN '{ids[1]}' ELSE '{ids[2]}' END"
    fill = (
        "INSERT INTO article_categories (category_id, published_at, article_id) "
        f"SELECT {category}, published_at, id FROM articles"
    )
    # The article's own list too, as storing it does (PostgreSQL's search
    # vector holds the categories from it).
    label = f"UPDATE articles SET categories = {category}"
    if str(db).startswith(("postgresql://", "postgres://")):
        import asyncpg

        async def run() -> None:
            connection = await asyncpg.connect(str(db))
            try:
                if not await connection.fetchval("SELECT count(*) FROM article_categories"):
                    await connection.execute(fill)
                    await connection.execute(label)
                    await connection.execute("VACUUM ANALYZE articles")
                    await connection.execute("ANALYZE article_categories")
            finally:
                await connection.close()

        asyncio.run(run())
        return
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        (present,) = connection.execute("SELECT count(*) FROM article_categories").fetchone()
        if not present:
            with connection:
                connection.execute(fill)
                connection.execute(label)
            connection.execute("ANALYZE")
    finally:
        connection.close()


async def measure_big(db: str, queries: list[str]) -> dict[str, Any]:
    """Server-side answer times (ms) for ``queries`` on a generated database:
    a first pass to warm it, then the measured one."""
    is_url = db.startswith(("postgresql://", "postgres://"))
    storage_config = {"url": db} if is_url else {"path": db}
    config = parse_config(
        {
            "storage": storage_config,
            "categories": CATEGORIES,
            "feeds": [{"url": "https://site0.example/feed", "categories": ["tech"]}],
        }
    )
    storage = await open_storage(config.storage)
    try:
        news = NewsService(config, storage, SystemClock())
        names = {c.id: c.title for c in config.categories}
        passes: list[list[float]] = []
        answered = 0
        for _ in range(2):
            timings: list[float] = []
            for n, text in enumerate(queries):
                offset = ""
                for _page in range(2 if n % 5 == 0 else 1):
                    started = time.perf_counter()
                    request = parse_inline_query(text, offset, news.categories)
                    assert request is not None
                    answer = await find_inline_answer(news, request, names, "newsbot")
                    timings.append((time.perf_counter() - started) * 1000)
                    answered += bool(answer.results)
                    if answer.next_offset is None:
                        break
                    offset = answer.next_offset
            passes.append(timings)
    finally:
        await storage.close()
    return {"cold_ms": passes[0], "latencies_ms": passes[1], "with_results": answered // 2}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["big"]:
        queries = Path(argv[2]).read_text().split("\n")
        print(json.dumps(asyncio.run(measure_big(argv[1], queries))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.inline_side")
    parser.add_argument("corpus", nargs="?", type=Path, default=default_corpus())
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.corpus, args.queries))
    print(
        f"inline answers over {result['articles']} articles: {result['answers']} answers, "
        f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, "
        f"max {result['max_ms']:.1f} ms (server side, SQLite)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
