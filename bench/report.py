"""The Markdown report: the machine, then one table of figures and ratios."""

from __future__ import annotations

import os
import platform
import sqlite3
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench import delivery, outbox_side, push
from bench.workloads import (
    CPU_TARGETS,
    INGEST,
    NEWSBOT,
    TARGETS,
    TITLES,
    Results,
    Settings,
    median,
    percentile,
)

SEARCH_TARGETS_MS = {"SQLite": 20, "PostgreSQL": 50}
INLINE_TARGET_MS = 50
# Claims and marks per second the database must sustain so that it never
# limits delivery (Telegram's own limit is about 30 messages a second per bot).
OUTBOX_TARGET = 1000

_PACKAGES = (
    "feedparser",
    "aiohttp",
    "httpx",
    "httpcore",
    "sniffio",
    "aiosqlite",
    "pydantic",
    "reader",
    "requests",
)


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    packages = []
    for name in _PACKAGES:
        try:
            packages.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            packages.append(f"{name} (not installed)")
    return (
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}{memory}\n"
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}, "
        f"SQLite {sqlite3.sqlite_version}\n"
        f"- packages: {', '.join(packages)}"
    )


def _seconds(values: list[float]) -> str:
    return f"{median(values):.2f} s" if values else "—"


def _ms(values: list[float], pct: float) -> str:
    return f"{percentile(values, pct) * 1000:.2f}" if values else "—"


def _verdict(ratio: float, target: float) -> str:
    if ratio != ratio:
        return "—"
    return "✅" if ratio <= target else "❌"


def table(settings: Settings, results: Results) -> str:
    rows = [
        "| workload | newsbot | reader | newsbot / reader | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for workload in INGEST:
        if workload not in results.ran:
            continue
        by_cpu = workload in CPU_TARGETS
        times = results.cpu if by_cpu else results.ingest
        theirs = times[workload].get("reader", [])
        target = TARGETS[workload]
        for backend in settings.backends:
            ours = times[workload].get(NEWSBOT[backend], [])
            ratio = median(ours) / median(theirs) if ours and theirs else float("nan")
            label = (
                f"{TITLES[workload]} (F={settings.feeds}, median of {len(ours)})"
                f"{', CPU time' if by_cpu else ''}"
                f"{' on PostgreSQL' if backend == 'postgresql' else ''}"
            )
            rows.append(
                f"| {label} | {_seconds(ours)} | "
                f"{_seconds(theirs)} | {ratio:.3f} | ≤ {target} | {_verdict(ratio, target)} |"
                if theirs
                else f"| {label} | {_seconds(ours)} | — | — | ≤ {target} | — |"
            )
    for key in ("small", "big", "big-postgresql"):
        found = results.search.get(key)
        if not found:
            continue
        ours = found["newsbot"]["latencies"]
        theirs = found.get("reader", {}).get("latencies", [])
        p95 = percentile(ours, 95) * 1000
        limit = SEARCH_TARGETS_MS[found.get("backend", "SQLite")]
        label = f"search, {found['queries']} two-word queries over {found['articles']:,} articles"
        label += f" on {found['backend']}" if "backend" in found else ""
        rows.append(
            f"| {label}: p50 / p95 ms | {_ms(ours, 50)} / {_ms(ours, 95)} | "
            f"{_ms(theirs, 50) + ' / ' + _ms(theirs, 95) if theirs else '—'} | "
            f"{(percentile(ours, 95) / percentile(theirs, 95)) if theirs else float('nan'):.3f} "
            f"| p95 ≤ {limit} ms | {'✅' if p95 <= limit else '❌'} |".replace("| nan |", "| — |")
        )
    for backend, measured in results.inline.items():
        times = measured["latencies_ms"]
        p95 = percentile(times, 95)
        rows.append(
            f"| inline answers, {measured['queries']} queries (a quarter empty, a quarter "
            f"in a category) over {measured['articles']:,} articles on "
            f"{'PostgreSQL' if backend == 'postgresql' else 'SQLite'}: p50 / p95 ms (warm) "
            f"| {percentile(times, 50):.2f} / {p95:.2f} | — | — | p95 ≤ {INLINE_TARGET_MS} ms "
            f"| {'✅' if p95 <= INLINE_TARGET_MS else '❌'} |"
        )
    for measured in results.outbox:
        backend = "PostgreSQL" if measured["backend"] == "postgresql" else "SQLite"
        rate = min(measured["claims_per_second"], measured["marks_per_second"])
        rows.append(
            f"| outbox on {backend}, {measured['claimers']} claimer(s) "
            f"| {outbox_side.describe(measured)} | — | — | ≥ {OUTBOX_TARGET:,}/s "
            f"| {'✅' if rate >= OUTBOX_TARGET and not measured['problems'] else '❌'} |"
        )
    if results.memory:
        m = results.memory
        mib = 2**20
        rows.append(
            f"| memory, one poll over W1 (F={m['feeds']}): peak RSS parent + workers "
            f"(PSS) | {m['parent_peak_rss'] / mib:.0f} + {m['children_peak_rss'] / mib:.0f} = "
            f"{m['tree_peak_rss'] / mib:.0f} MiB ({m['tree_peak_pss'] / mib:.0f} MiB PSS, "
            f"{m['processes']} processes) | "
            f"{(str(round(max(results.reader_max_rss) / mib)) + ' MiB (one process)') if results.reader_max_rss else '—'} "
            f"| — | ≤ 150 MB | {'✅' if m['tree_peak_rss'] <= 150e6 else '❌'} |"
        )
    if results.scaling:
        base_feeds, base_seconds = results.scaling[0]
        parts = []
        for feeds, seconds in results.scaling:
            parts.append(f"F={feeds}: {seconds:.2f} s ({seconds / feeds * 1000:.1f} ms/feed)")
        last_feeds, last_seconds = results.scaling[-1]
        growth = (last_seconds / base_seconds) / (last_feeds / base_feeds)
        rows.append(
            f"| scaling, W1 round time | {'; '.join(parts)} | — | "
            f"{growth:.2f} × linear from F={base_feeds} to F={last_feeds} | ≈ linear | — |"
        )
    if "delivery" in results.ran:
        result = results.delivery
        met = (
            "—"
            if not result
            else ("✅" if result["share_of_limit"] >= 0.95 and result["flood_429"] == 0 else "❌")
        )
        rows.append(
            f"| {delivery.NAME} | {delivery.describe(result)} | — | — | "
            f"≥ 95% of 30/s, zero 429 | {met} |"
        )
    if "push" in results.ran:
        pushed = results.push
        met = "—" if not pushed else ("✅" if pushed["p95_ms"] <= 1000 else "❌")
        rows.append(f"| {push.NAME} | {push.describe(pushed)} | — | — | p95 ≤ 1 s | {met} |")
    return "\n".join(rows)


def details(settings: Settings, results: Results) -> str:
    lines = []
    if results.internal:
        lines.append(
            "Internal times (newsbot's round without process start-up; reader's update_feeds):"
        )
        for workload in INGEST:
            if workload in results.internal and workload in results.ran:
                parts = [
                    f"{program} {median(values):.2f} s"
                    for program, values in results.internal[workload].items()
                ]
                lines.append(f"- {workload}: " + ", ".join(parts))
    if results.cpu:
        lines.append(
            "CPU time (user + system, parse workers included), median; on a machine with"
            " two free cores newsbot's wall time approaches half its CPU time:"
        )
        for workload in INGEST:
            if workload in results.cpu and workload in results.ran:
                theirs = results.cpu[workload].get("reader", [])
                parts = []
                for backend in settings.backends:
                    program = NEWSBOT[backend]
                    ours = results.cpu[workload].get(program, [])
                    server = results.server_cpu.get(workload, {}).get(program, [])
                    total = (
                        median([a + b for a, b in zip(ours, server, strict=True)])
                        if server
                        else median(ours)
                    )
                    part = f"{program} {median(ours):.2f} s"
                    if server:
                        part += f" + PostgreSQL server {median(server):.2f} s = {total:.2f} s"
                    if theirs:
                        part += f" (ratio {total / median(theirs):.3f})"
                    parts.append(part)
                if theirs:
                    parts.append(f"reader {median(theirs):.2f} s")
                lines.append(f"- {workload}: " + ", ".join(parts))
    if results.search.get("small", {}).get("reader"):
        lines.append(
            f"- reader's enable_search + update_search over {results.search['small']['articles']:,} "
            f"entries: {results.search['small']['reader']['index_seconds']:.2f} s"
        )
    for key in ("small", "big", "big-postgresql"):
        found = results.search.get(key)
        if found:
            hits = found["newsbot"]["with_results"]
            cold = found["newsbot"].get("cold_latencies", [])
            lines.append(
                f"- search {key}: {hits}/{found['queries']} queries found something; the table "
                f"shows the second pass, the first (cold pages) had p50 / p95 "
                f"{_ms(cold, 50)} / {_ms(cold, 95)} ms"
            )
    for key in ("big", "big-postgresql"):
        big = results.search.get(key)
        if big:
            made = big["generate"]
            how = (
                "COPY, search vector filled by the trigger, GIN index updated as inserted"
                if key == "big-postgresql"
                else "indexed by the FTS triggers as inserted"
            )
            lines.append(
                f"- generating {made['articles']:,} articles into "
                f"{big.get('backend', 'SQLite')} ({how}): "
                f"{made['seconds']:.1f} s, {made['bytes'] / 2**20:.0f} MiB database"
                + (" (built by an earlier run and reused)" if made.get("cached") else "")
            )
    for measured in results.outbox:
        lines.append(
            f"- outbox {measured['backend']} ×{measured['claimers']}: seeded "
            f"{measured['cards']:,} cards in {measured['seed_seconds']:.1f} s; claiming took "
            f"{100 * measured['claim_share']:.0f}% of the wall time, longest claim call "
            f"{measured['claim_call_ms_max']:.1f} ms; cards per claimer {measured['per_claimer']}; "
            f"process CPU {measured['process_cpu_seconds']:.1f} s"
        )
    if results.problems:
        lines.append("")
        lines.append("**Checks that failed:**")
        lines += [f"- {p}" for p in results.problems]
    return "\n".join(lines)
