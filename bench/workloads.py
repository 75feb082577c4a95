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

import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import delivery, newsbot_side, procs, reader_side, search_side
from bench.feedgen import ITEMS
from bench.feedserver import FeedServerProcess
from bench.vocab import query_pairs

INGEST = ("w1", "w2", "w3", "w4")
TARGETS = {"w1": 0.5, "w2": 0.5, "w3": 0.1, "w4": 0.5}
TITLES = {
    "w1": "W1 cold: every feed new",
    "w2": "W2 unchanged, conditional GET honoured",
    "w3": "W3 unchanged, conditional GET ignored",
    "w4": "W4 one new item per feed",
}


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
    log: Callable[[str], None] = print


@dataclass
class Results:
    # workload -> program -> wall seconds per repetition
    ingest: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # workload -> program -> internal seconds (newsbot's round, reader's update_feeds)
    internal: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    # workload -> program -> CPU seconds (user + system, workers included)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    reader_max_rss: list[int] = field(default_factory=list)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, Any] | None = None
    scaling: list[tuple[int, float]] = field(default_factory=list)
    delivery: dict[str, Any] | None = None
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
    programs = ["newsbot"] + (["reader"] if settings.reader else [])
    steps = ["w1"] + [w for w in ("w2", "w3", "w4") if w in selected]
    for rep in range(settings.reps):
        folder = settings.workdir / f"ingest-{rep}"
        shutil.rmtree(folder, ignore_errors=True)
        newsbot_dir = folder / "newsbot"
        newsbot_side.write_config(newsbot_dir, urls)
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
                if program == "newsbot":
                    run, summary = newsbot_side.poll_once(newsbot_dir)
                    _check_newsbot(results, workload, summary, feeds)
                    internal = float(summary["seconds"])
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
                    f"  rep {rep + 1} {workload} {program:8s} {run.seconds:7.2f}s"
                    f" (CPU {run.cpu_seconds:.2f}s)"
                )
    results.ran += [w for w in steps if w in selected]


def run_search(settings: Settings, server: FeedServerProcess, results: Results) -> None:
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
    results.ran.append("search")


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


def run_delivery(settings: Settings, results: Results) -> None:
    results.delivery = delivery.run(settings)
    results.ran.append("delivery")


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
    server = FeedServerProcess(needed, settings.hosts)
    settings.log(f"feed server: {needed} feeds ready in {server.startup_seconds:.1f}s")
    try:
        if selected & set(INGEST):
            settings.log("ingest:")
            run_ingest(settings, server, results, selected)
        if "search" in selected:
            settings.log("search:")
            run_search(settings, server, results)
        # A run of its own: sampling /proc takes CPU from the round it watches.
        if "memory" in selected:
            settings.log("memory:")
            run_memory(settings, server, results)
        if "scaling" in selected:
            settings.log("scaling:")
            run_scaling(settings, server, results)
        if "delivery" in selected:
            run_delivery(settings, results)
    finally:
        server.close()
    settings.log(f"done in {time.perf_counter() - started:.0f}s")
    return results


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


percentile = _p
