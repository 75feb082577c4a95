"""Search measurements on newsbot's side, in a fresh process::

    python -m bench.search_side generate DB ARTICLES FEEDS
    python -m bench.search_side generate postgresql://... ARTICLES FEEDS
    python -m bench.search_side query DB-OR-URL QUERIES_FILE LIMIT

``generate`` writes articles straight into a newsbot database (made by
``open_storage``, so the schema and its FTS triggers are the real ones; the
triggers index each row as it is inserted, there is no separate indexing
step). On PostgreSQL the rows go in with ``COPY`` in batches, and the
schema's trigger still computes each row's ``search`` vector and the GIN
index takes it in. Both backends get the same articles with the same ids
(the same seeded generator), so the same sampled queries apply to both.
``query`` times ``Storage.search_articles`` as the bot calls it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
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


def generate(db: Path | str, articles: int, feeds: int) -> dict[str, Any]:
    return _run("generate", str(db), str(articles), str(feeds))


def _is_url(db: Path | str) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


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


def query(
    db: Path | str, queries: list[str], limit: int, *, scratch: Path | None = None
) -> dict[str, Any]:
    """Time the queries in a fresh process; ``scratch`` holds the query
    file when ``db`` is a PostgreSQL URL."""
    if _is_url(db):
        assert scratch is not None
        queries_file = scratch / "postgresql.queries"
    else:
        queries_file = Path(db).with_suffix(".queries")
    queries_file.write_text("\n".join(queries))
    return _run("query", str(db), str(queries_file), str(limit))


def _sample_ids(top: int, count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted({rng.randint(1, top) for _ in range(count)})


def sample_texts_postgres(url: str, count: int, seed: int = 3) -> list[str]:
    """``sample_texts`` of a PostgreSQL database: the same ids, so the same
    texts as from a SQLite database the generator filled alike."""
    import asyncpg

    async def sample() -> list[str]:
        connection = await asyncpg.connect(url)
        try:
            top = await connection.fetchval("SELECT max(id) FROM articles")
            rows = await connection.fetch(
                "SELECT title, summary FROM articles WHERE id = ANY($1::bigint[]) ORDER BY id",
                _sample_ids(top, count, seed),
            )
            return [f"{r['title']} {r['summary']}" for r in rows]
        finally:
            await connection.close()

    return asyncio.run(sample())


def sample_texts(db: Path, count: int, seed: int = 3) -> list[str]:
    """Title and summary of ``count`` random stored articles."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (top,) = connection.execute("SELECT max(id) FROM articles").fetchone()
        ids = _sample_ids(top, count, seed)
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


def _feed_rows(feeds: int) -> list[tuple[int, str, str, str]]:
    return [
        (f + 1, f"https://site{f}.example/feed", f"https://site{f}.example/feed", f"Site {f}")
        for f in range(feeds)
    ]


def _article_batches(articles: int, feeds: int) -> Iterator[list[tuple[Any, ...]]]:
    """(id, feed_id, entry_key, url, title, summary, published_at,
    first_seen_at) rows in batches; the same rows on every call."""
    words = vocabulary()
    rng = random.Random(11)
    made = 0
    while made < articles:
        rows: list[tuple[Any, ...]] = []
        for number in range(made, min(made + _BATCH, articles)):
            feed = number % feeds + 1
            title = words.title(rng)
            summary = " ".join(words.sentence(rng, rng.randint(8, 13)) for _ in range(3))
            url = f"https://site{feed - 1}.example/p/{number}"
            when = _START + number * 30
            rows.append((number + 1, feed, url, url, title, summary, when, when))
        made += len(rows)
        yield rows


def _generate(db: str, articles: int, feeds: int) -> dict[str, Any]:
    from bot.config import StorageConfig
    from bot.storage import open_storage

    if _is_url(db):
        return asyncio.run(_generate_postgres(db, articles, feeds))

    async def create() -> None:
        storage = await open_storage(StorageConfig(path=db))
        await storage.close()

    asyncio.run(create())
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO feeds (id, url, fetch_url, title, ever_fetched) VALUES (?, ?, ?, ?, 1)",
        _feed_rows(feeds),
    )
    connection.execute("COMMIT")
    insert = """
        INSERT INTO articles (id, feed_id, entry_key, url, title, summary, author, image_url,
            categories, published_at, first_seen_at)
        VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, '', ?, ?)
    """
    made = 0
    for rows in _article_batches(articles, feeds):
        connection.execute("BEGIN")
        connection.executemany(insert, rows)
        connection.execute("COMMIT")
        made += len(rows)
    seconds = time.perf_counter() - started
    connection.execute("PRAGMA optimize")
    connection.close()
    return {"articles": made, "seconds": seconds, "bytes": Path(db).stat().st_size}


async def _generate_postgres(url: str, articles: int, feeds: int) -> dict[str, Any]:
    import asyncpg

    from bot.config import StorageConfig
    from bot.storage import open_storage

    storage = await open_storage(StorageConfig(url=url))
    await storage.close()
    connection = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "feeds",
            records=[(*row, True) for row in _feed_rows(feeds)],
            columns=["id", "url", "fetch_url", "title", "ever_fetched"],
        )
        made = 0
        for rows in _article_batches(articles, feeds):
            # COPY fires the BEFORE INSERT row trigger that fills ``search``.
            await connection.copy_records_to_table(
                "articles",
                records=rows,
                columns=[
                    "id",
                    "feed_id",
                    "entry_key",
                    "url",
                    "title",
                    "summary",
                    "published_at",
                    "first_seen_at",
                ],
            )
            made += len(rows)
        seconds = time.perf_counter() - started
        # Explicit ids leave the identities behind; a bot writing here next
        # must not collide with them.
        for table in ("feeds", "articles"):
            await connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        unindexed = await connection.fetchval("SELECT count(*) FROM articles WHERE search IS NULL")
        if unindexed:
            raise RuntimeError(
                f"{unindexed} articles have no search vector: the trigger did not run"
            )
        await connection.execute("VACUUM ANALYZE articles")
        size = await connection.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await connection.close()
    return {"articles": made, "seconds": seconds, "bytes": int(size)}


def _query(db: str, queries_file: str, limit: int) -> dict[str, Any]:
    from bot.config import StorageConfig
    from bot.storage import open_storage

    queries = Path(queries_file).read_text().splitlines()
    config = StorageConfig(url=db) if _is_url(db) else StorageConfig(path=db)

    async def main() -> dict[str, Any]:
        storage = await open_storage(config)
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
