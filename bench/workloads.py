"""The workloads, run side by side on the same feeds.

W1 cold: every feed new, 30 items each.
W2 unchanged, the server honouring conditional GET (every answer a 304).
W3 unchanged, the server ignoring conditional GET (every answer the same body).
W4 one new item in every feed.

Each repetition starts from empty databases and runs W1..W4 in order; within
a workload the two programs take turns going first from one repetition to
the next. Every run is checked (new articles, 304s, request counts) so a fast
but wrong run cannot pass for a result.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import (
    delivery,
    inline_side,
    newsbot_side,
    outbox_side,
    procs,
    push,
    reader_side,
    search_side,
)
from bench.feedgen import ITEMS
from bench.feedserver import FeedServerProcess
from bench.vocab import query_pairs

INGEST = ("w1", "w2", "w3", "w4")
# newsbot / reader: wall time, except where CPU_TARGETS names the workload
# (all-304 rounds are too short for wall time to say much; CPU says what
# each side spends).
TARGETS = {"w1": 0.4, "w2": 0.5, "w3": 0.08, "w4": 0.4}
CPU_TARGETS = frozenset({"w2"})
TITLES = {
    "w1": "W1 cold: every feed new",
    "w2": "W2 unchanged, conditional GET honoured",
    "w3": "W3 unchanged, conditional GET ignored",
    "w4": "W4 one new item per feed",
}
BACKENDS = ("sqlite", "postgresql")
# The program's name in the results for newsbot on each backend.
NEWSBOT = {"sqlite": "newsbot", "postgresql": "newsbot-postgresql"}


@dataclass
class Settings:
    feeds: int = 1000
    # Two repetitions keep `all` within about 15-20 minutes on 2 cores:
    # reader needs about 90 s for each of W1, W3 and W4 at 1000 feeds.
    reps: int = 2
    reader: bool = True
    workdir: Path = Path("/tmp/newsbot-bench")
    queries: int = 300
    search_limit: int = 10
    big_articles: int = 1_000_000
    scaling: tuple[int, ...] = (100, 300, 1000, 3000)
    hosts: int = 50
    # The big search database is reused between runs (it takes minutes to
    # build); set to regenerate it.
    fresh_search_db: bool = False
    cards: int = 3000
    # Which storage newsbot runs on in W1..W4, outbox and search.
    backends: tuple[str, ...] = ("sqlite",)
    # PostgreSQL: a server to create databases on (``--postgres-url``), or
    # None to start a throwaway one when a PostgreSQL backend is selected.
    postgres_url: str | None = None
    postgres: Any = None  # the running bench.pg.BenchPostgres
    # The outbox workload: pending cards (one per chat) and claimer counts.
    outbox_cards: int = 20_000
    claimers: tuple[int, ...] = (1, 2, 4)
    # The push workload: WebSub pushes timed one after another.
    pushes: int = 50
    log: Callable[[str], None] = print


@dataclass
class Results:
    # workload -> program -> wall seconds per repetition
    ingest: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # workload -> program -> internal seconds (newsbot's round, reader's update_feeds)
    internal: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # workload -> program -> CPU seconds (user + system, workers included)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # workload -> program -> CPU seconds of the PostgreSQL server in that run
    server_cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    reader_max_rss: list[int] = field(default_factory=list)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, Any] | None = None
    scaling: list[tuple[int, float]] = field(default_factory=list)
    delivery: dict[str, Any] | None = None
    push: dict[str, Any] | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # backend -> inline answer times over the big database
    inline: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)


def _expect(results: Results, condition: bool, message: str) -> None:
    if not condition:
        results.problems.append(message)


def _check_newsbot(results: Results, workload: str, summary: dict[str, Any], feeds: int) -> None:
    expected = {
        "w1": ("new_articles", feeds * ITEMS),
        "w2": ("not_modified", feeds),
        "w3": ("unchanged", feeds),
        "w4": ("new_articles", feeds),
    }[workload]
    _expect(
        results, summary["failed"] == 0, f"newsbot {workload}: {summary['failed']} feeds failed"
    )
    _expect(
        results,
        summary[expected[0]] == expected[1],
        f"newsbot {workload}: {expected[0]}={summary[expected[0]]}, expected {expected[1]}",
    )


def _check_server(
    results: Results, who: str, workload: str, stats: dict[str, int], feeds: int
) -> None:
    _expect(
        results,
        stats["requests"] == feeds,
        f"{who} {workload}: {stats['requests']} requests for {feeds} feeds",
    )
    if workload == "w2":
        _expect(
            results,
            stats["304"] == feeds,
            f"{who} w2: {stats['304']} answers were 304, expected {feeds}",
        )


def run_ingest(
    settings: Settings, server: FeedServerProcess, results: Results, selected: set[str]
) -> None:
    feeds = settings.feeds
    urls = server.urls(feeds)
    programs = [NEWSBOT[b] for b in settings.backends] + (["reader"] if settings.reader else [])
    steps = ["w1"] + [w for w in ("w2", "w3", "w4") if w in selected]
    for rep in range(settings.reps):
        folder = settings.workdir / f"ingest-{rep}"
        shutil.rmtree(folder, ignore_errors=True)
        newsbot_dirs = {}
        for backend in settings.backends:
            newsbot_dirs[NEWSBOT[backend]] = folder / NEWSBOT[backend]
            # A fresh database for every repetition's W1..W4 (each needs the
            # state the one before it left).
            database_url = (
                settings.postgres.fresh_database(f"ingest_{rep}")
                if backend == "postgresql"
                else None
            )
            newsbot_side.write_config(folder / NEWSBOT[backend], urls, database_url)
        reader_db = folder / "reader.sqlite"
        if settings.reader:
            reader_side.add_feeds(reader_db, urls)
        server.state(generation=0, conditional=True)
        for workload in steps:
            if workload == "w2":
                server.state(conditional=True)
            elif workload == "w3":
                server.state(conditional=False)
            elif workload == "w4":
                server.state(conditional=True)
                server.shift()
            order = programs if rep % 2 == 0 else programs[::-1]
            for program in order:
                server.reset_stats()
                if program in newsbot_dirs:
                    server_cpu = settings.postgres.server_cpu() if settings.postgres else None
                    run, summary = newsbot_side.poll_once(newsbot_dirs[program])
                    _check_newsbot(results, workload, summary, feeds)
                    internal = float(summary["seconds"])
                    if program == NEWSBOT["postgresql"] and server_cpu is not None:
                        used = settings.postgres.server_cpu() - server_cpu
                        results.server_cpu.setdefault(workload, {}).setdefault(program, []).append(
                            used
                        )
                else:
                    run, summary = reader_side.update(reader_db)
                    expected_entries = feeds * ITEMS + (feeds if workload == "w4" else 0)
                    _expect(
                        results,
                        summary["entries"] == expected_entries,
                        f"reader {workload}: {summary['entries']} entries, expected {expected_entries}",
                    )
                    _expect(
                        results,
                        summary["broken_feeds"] == 0,
                        f"reader {workload}: {summary['broken_feeds']} broken feeds",
                    )
                    internal = float(summary["seconds"])
                    results.reader_max_rss.append(run.max_rss_single)
                _check_server(results, program, workload, server.stats(), feeds)
                results.ingest.setdefault(workload, {}).setdefault(program, []).append(run.seconds)
                results.internal.setdefault(workload, {}).setdefault(program, []).append(internal)
                results.cpu.setdefault(workload, {}).setdefault(program, []).append(run.cpu_seconds)
                settings.log(
                    f"  rep {rep + 1} {workload} {program:18s} {run.seconds:7.2f}s"
                    f" (CPU {run.cpu_seconds:.2f}s)"
                )
    results.ran += [w for w in steps if w in selected]


def run_search(settings: Settings, server: FeedServerProcess, results: Results) -> None:
    if "sqlite" in settings.backends:
        _run_search_sqlite(settings, server, results)
    if "postgresql" in settings.backends:
        _run_search_postgres(settings, results)
    results.ran.append("search")


def _run_search_postgres(settings: Settings, results: Results) -> None:
    """The big database again, on PostgreSQL: the same generated articles
    (same ids), so the same sampled queries as on SQLite."""
    url = settings.postgres.fresh_database("search")
    feeds = max(1, min(1000, settings.big_articles // 100))
    made = search_side.generate(url, settings.big_articles, feeds)
    settings.log(
        f"  PostgreSQL: generated {made['articles']} articles in {made['seconds']:.1f}s"
        f" ({made['bytes'] / 2**20:.0f} MiB)"
    )
    texts = search_side.sample_texts_postgres(url, settings.queries * 3)
    queries = query_pairs(texts, settings.queries)
    big = search_side.query(url, queries, settings.search_limit, scratch=settings.workdir)
    results.search["big-postgresql"] = {
        "articles": made["articles"],
        "newsbot": big,
        "generate": made,
        "queries": len(queries),
        "backend": "PostgreSQL",
    }
    settings.log(
        f"  PostgreSQL search over {made['articles']} articles: newsbot p95"
        f" {_p(big['latencies'], 95) * 1000:.2f} ms"
    )
    settings.postgres.drop(url)


def _run_search_sqlite(settings: Settings, server: FeedServerProcess, results: Results) -> None:
    # 30k: the databases a W1 + W4 pass leaves (run one if ingest did not).
    folder = settings.workdir / "ingest-0"
    newsbot_db = newsbot_side.database(folder / "newsbot")
    if not newsbot_db.exists():
        run_ingest(settings, server, Results(), {"w1"})
    texts = search_side.sample_texts(newsbot_db, settings.queries * 3)
    queries = query_pairs(texts, settings.queries)
    small = search_side.query(newsbot_db, queries, settings.search_limit)
    articles = _count(newsbot_db)
    results.search["small"] = {"articles": articles, "newsbot": small, "queries": len(queries)}
    settings.log(
        f"  search over {articles} articles: newsbot p95 {_p(small['latencies'], 95) * 1000:.2f} ms"
    )
    reader_db = folder / "reader.sqlite"
    if settings.reader and reader_db.exists():
        peer = reader_side.search(reader_db, queries, settings.search_limit)
        results.search["small"]["reader"] = peer
        settings.log(f"  search reader p95 {_p(peer['latencies'], 95) * 1000:.2f} ms")
    # The big one: generated straight into a newsbot database.
    big_db, made = search_side.big_database(
        settings.big_articles,
        max(1, min(1000, settings.big_articles // 100)),
        settings.workdir,
        fresh=settings.fresh_search_db,
    )
    settings.log(f"  generated {made['articles']} articles in {made['seconds']:.1f}s")
    texts = search_side.sample_texts(big_db, settings.queries * 3)
    queries = query_pairs(texts, settings.queries)
    big = search_side.query(big_db, queries, settings.search_limit)
    results.search["big"] = {
        "articles": made["articles"],
        "newsbot": big,
        "generate": made,
        "queries": len(queries),
    }
    settings.log(
        f"  search over {made['articles']} articles: newsbot p95 {_p(big['latencies'], 95) * 1000:.2f} ms"
    )


def run_inline(settings: Settings, results: Results) -> None:
    """Inline answers (``bot.telegram.inline``: parse the query, search or
    list the latest, build the results; Telegram not included) over the big
    generated database, its articles spread over three categories."""
    feeds = max(1, min(1000, settings.big_articles // 100))
    for backend in settings.backends:
        if backend == "postgresql":
            db: Path | str = settings.postgres.fresh_database("inline")
            search_side.generate(db, settings.big_articles, feeds)
            texts = search_side.sample_texts_postgres(str(db), settings.queries * 3)
            queries_file = settings.workdir / "inline-postgresql.queries"
        else:
            db, _ = search_side.big_database(
                settings.big_articles, feeds, settings.workdir, fresh=settings.fresh_search_db
            )
            texts = search_side.sample_texts(db, settings.queries * 3)
            queries_file = settings.workdir / "inline-sqlite.queries"
        inline_side.add_categories(db)
        queries = inline_side.big_queries(texts, settings.queries)
        queries_file.write_text("\n".join(queries))
        run = procs.run(
            [sys.executable, "-m", "bench.inline_side", "big", str(db), str(queries_file)],
            timeout=3600,
        )
        if run.returncode != 0:
            raise RuntimeError(f"inline_side big failed: {run.stderr[-2000:]}")
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        measured.update(articles=settings.big_articles, queries=len(queries))
        results.inline[backend] = measured
        latencies = measured["latencies_ms"]
        settings.log(
            f"  inline on {backend} over {settings.big_articles} articles: "
            f"p50 {_p(latencies, 50):.2f} ms, p95 {_p(latencies, 95):.2f} ms"
        )
        if backend == "postgresql":
            settings.postgres.drop(db)
    results.ran.append("inline")


def run_memory(settings: Settings, server: FeedServerProcess, results: Results) -> None:
    folder = settings.workdir / "memory"
    shutil.rmtree(folder, ignore_errors=True)
    newsbot_side.write_config(folder, server.urls(settings.feeds))
    server.state(generation=0, conditional=True)
    run, summary = newsbot_side.poll_once(folder, sample_memory=True)
    _check_newsbot(results, "w1", summary, settings.feeds)
    _record_memory(results, run, settings.feeds)
    settings.log(f"  memory: tree peak RSS {results.memory['tree_peak_rss'] / 2**20:.0f} MiB")  # type: ignore[index]


def _record_memory(results: Results, run: procs.Run, feeds: int) -> None:
    assert run.memory is not None
    results.memory = {
        "feeds": feeds,
        "seconds": run.seconds,
        "parent_peak_rss": run.memory.parent_peak_rss,
        "children_peak_rss": run.memory.children_peak_rss,
        "tree_peak_rss": run.memory.tree_peak_rss,
        "tree_peak_pss": run.memory.tree_peak_pss,
        "processes": run.memory.max_processes,
        "max_rss_single": run.max_rss_single,
    }
    if "memory" not in results.ran:
        results.ran.append("memory")


def run_scaling(settings: Settings, server: FeedServerProcess, results: Results) -> None:
    cold = results.ingest.get("w1", {}).get("newsbot", [])
    for feeds in settings.scaling:
        if feeds == settings.feeds and cold:
            # The same cold round as W1: reuse its median instead of a rerun.
            results.scaling.append((feeds, median(cold)))
            settings.log(f"  scaling F={feeds}: {median(cold):.2f}s (W1 median)")
            continue
        folder = settings.workdir / f"scaling-{feeds}"
        shutil.rmtree(folder, ignore_errors=True)
        newsbot_side.write_config(folder, server.urls(feeds))
        server.state(generation=0, conditional=True)
        run, summary = newsbot_side.poll_once(folder)
        _check_newsbot(results, "w1", summary, feeds)
        results.scaling.append((feeds, run.seconds))
        settings.log(f"  scaling F={feeds}: {run.seconds:.2f}s")
    results.ran.append("scaling")


def run_outbox(settings: Settings, results: Results) -> None:
    for backend in settings.backends:
        for claimers in settings.claimers:
            where = (
                settings.postgres.fresh_database(f"outbox_{claimers}")
                if backend == "postgresql"
                else str(settings.workdir / f"outbox-{claimers}.db")
            )
            if backend == "sqlite":
                for stale in settings.workdir.glob(f"outbox-{claimers}.db*"):
                    stale.unlink()
            measured = outbox_side.run(where, settings.outbox_cards, claimers)
            measured["backend"] = backend
            results.outbox.append(measured)
            for problem in measured["problems"]:
                results.problems.append(f"outbox {backend} ×{claimers}: {problem}")
            settings.log(
                f"  outbox {backend} {claimers} claimer(s): {measured['claims_per_second']:.0f}"
                f" claims/s, {measured['marks_per_second']:.0f} marks/s"
                f" (seeded in {measured['seed_seconds']:.1f}s)"
            )
            if backend == "postgresql":
                settings.postgres.drop(where)
    results.ran.append("outbox")


def run_delivery(settings: Settings, results: Results) -> None:
    results.delivery = delivery.run(settings)
    results.ran.append("delivery")


def run_push(settings: Settings, results: Results) -> None:
    results.push = push.run(settings)
    settings.log(f"  {push.describe(results.push)}")
    results.ran.append("push")


def _count(db: Path) -> int:
    import sqlite3

    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(connection.execute("SELECT count(*) FROM articles").fetchone()[0])
    finally:
        connection.close()


def _p(values: list[float], percentile: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(percentile / 100 * len(ordered)) - 1))
    return ordered[index]


def run_all(settings: Settings, selected: set[str]) -> Results:
    results = Results()
    needed = settings.feeds
    if "scaling" in selected:
        needed = max(needed, *settings.scaling)
    settings.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        if "postgresql" in settings.backends:
            from bench.pg import BenchPostgres

            settings.postgres = cleanup.enter_context(BenchPostgres(settings.postgres_url))
            settings.log(f"PostgreSQL: {settings.postgres.description}")
        if "push" in selected:
            # The bot's own loopback servers: no generated feeds needed.
            settings.log("push:")
            run_push(settings, results)
        if selected - {"push"}:
            _run_selected(settings, selected, results, needed)
        settings.postgres = None
    settings.log(f"done in {time.perf_counter() - started:.0f}s")
    return results


def _run_selected(settings: Settings, selected: set[str], results: Results, needed: int) -> None:
    server = FeedServerProcess(needed, settings.hosts)
    settings.log(f"feed server: {needed} feeds ready in {server.startup_seconds:.1f}s")
    try:
        if selected & set(INGEST):
            settings.log("ingest:")
            run_ingest(settings, server, results, selected)
        if "search" in selected:
            settings.log("search:")
            run_search(settings, server, results)
        if "inline" in selected:
            settings.log("inline:")
            run_inline(settings, results)
        # A run of its own: sampling /proc takes CPU from the round it watches.
        if "memory" in selected:
            settings.log("memory:")
            run_memory(settings, server, results)
        if "scaling" in selected:
            settings.log("scaling:")
            run_scaling(settings, server, results)
        if "outbox" in selected:
            settings.log("outbox:")
            run_outbox(settings, results)
        if "delivery" in selected:
            run_delivery(settings, results)
    finally:
        server.close()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


percentile = _p
