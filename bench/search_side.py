"""Search measurements on newsbot's side, in a fresh process::

    python -m bench.search_side generate DB ARTICLES FEEDS
    python -m bench.search_side query DB QUERIES_FILE LIMIT

``generate`` writes articles straight into a newsbot database (made by
``open_storage``, so the schema and its FTS triggers are the real ones; the
triggers index each row as it is inserted, there is no separate indexing
step). ``query`` times ``Storage.search_articles`` as the bot calls it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench import procs
from bench.vocab import vocabulary

_BATCH = 10_000
GENERATOR_VERSION = 1  # bump when the generated text changes
_START = 1_704_067_200  # 2024-01-01


def _run(*args: str) -> dict[str, Any]:
    run = procs.run([sys.executable, "-m", "bench.search_side", *args], timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"search_side {args[0]} failed: {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def generate(db: Path, articles: int, feeds: int) -> dict[str, Any]:
    return _run("generate", str(db), str(articles), str(feeds))


def big_database(
    articles: int, feeds: int, workdir: Path, *, fresh: bool = False
) -> tuple[Path, dict[str, Any]]:
    """A generated database of ``articles``, kept in a cache folder between
    runs (building a million takes minutes) and rebuilt when the schema or
    the generator changes, or when ``fresh``. Small ones go to ``workdir``."""
    from bot.storage.schema_sqlite import SCHEMA_VERSION

    if articles < 100_000:
        folder = workdir / "search-big"
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "newsbot-bench"
    db = folder / f"search-{articles}-{feeds}-schema{SCHEMA_VERSION}-gen{GENERATOR_VERSION}.db"
    meta = db.with_suffix(".json")
    if fresh or not meta.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(db.name + "*"):
            stale.unlink()
        made = generate(db, articles, feeds)
        meta.write_text(json.dumps(made))
    else:
        made = json.loads(meta.read_text())
        made["cached"] = True
    return db, made


def query(db: Path, queries: list[str], limit: int) -> dict[str, Any]:
    queries_file = db.with_suffix(".queries")
    queries_file.write_text("\n".join(queries))
    return _run("query", str(db), str(queries_file), str(limit))


def sample_texts(db: Path, count: int, seed: int = 3) -> list[str]:
    """Title and summary of ``count`` random stored articles."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (top,) = connection.execute("SELECT max(id) FROM articles").fetchone()
        rng = random.Random(seed)
        ids = sorted({rng.randint(1, top) for _ in range(count)})
        texts = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            texts += [
                f"{title} {summary}"
                for title, summary in connection.execute(
                    f"SELECT title, summary FROM articles WHERE id IN ({marks})", chunk
                )
            ]
        return texts
    finally:
        connection.close()


def _generate(db: str, articles: int, feeds: int) -> dict[str, Any]:
    from bot.config import StorageConfig
    from bot.storage import open_storage

    async def create() -> None:
        storage = await open_storage(StorageConfig(path=db))
        await storage.close()

    asyncio.run(create())
    words = vocabulary()
    rng = random.Random(11)
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO feeds (id, url, fetch_url, title, ever_fetched) VALUES (?, ?, ?, ?, 1)",
        [
            (f + 1, f"https://site{f}.example/feed", f"https://site{f}.example/feed", f"Site {f}")
            for f in range(feeds)
        ],
    )
    connection.execute("COMMIT")
    insert = """
        INSERT INTO articles (feed_id, entry_key, url, title, summary, author, image_url,
            categories, published_at, first_seen_at)
        VALUES (?, ?, ?, ?, ?, NULL, NULL, '', ?, ?)
    """
    made = 0
    while made < articles:
        rows = []
        for number in range(made, min(made + _BATCH, articles)):
            feed = number % feeds + 1
            title = words.title(rng)
            summary = " ".join(words.sentence(rng, rng.randint(8, 13)) for _ in range(3))
            url = f"https://site{feed - 1}.example/p/{number}"
            when = _START + number * 30
            rows.append((feed, url, url, title, summary, when, when))
        connection.execute("BEGIN")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
        made += len(rows)
    seconds = time.perf_counter() - started
    connection.execute("PRAGMA optimize")
    connection.close()
    return {"articles": made, "seconds": seconds, "bytes": Path(db).stat().st_size}


def _query(db: str, queries_file: str, limit: int) -> dict[str, Any]:
    from bot.config import StorageConfig
    from bot.storage import open_storage

    queries = Path(queries_file).read_text().splitlines()

    async def main() -> dict[str, Any]:
        storage = await open_storage(StorageConfig(path=db))
        try:
            # Two passes: the first finds the database's pages wherever they
            # are (after a while on disk: this machine reclaims idle page
            # cache); the second is a bot that keeps serving searches.
            passes = []
            for _ in range(2):
                latencies, hits = [], 0
                for text in queries:
                    started = time.perf_counter()
                    found = await storage.search.search_articles(text, limit)
                    latencies.append(time.perf_counter() - started)
                    hits += bool(found)
                passes.append(latencies)
            return {"latencies": passes[1], "cold_latencies": passes[0], "with_results": hits}
        finally:
            await storage.close()

    return asyncio.run(main())


def main() -> None:
    command = sys.argv[1]
    if command == "generate":
        result = _generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif command == "query":
        result = _query(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
