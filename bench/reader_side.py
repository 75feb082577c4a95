"""The peer, lemon24's ``reader``, driven the way its docs show, in its own
process (so it never shares an interpreter with newsbot's event loop)::

    python -m bench.reader_side add DB URLS_FILE
    python -m bench.reader_side update DB
    python -m bench.reader_side search DB QUERIES_FILE LIMIT

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import procs

WORKERS = 16


def available() -> bool:
    return importlib.util.find_spec("reader") is not None


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("reader")


def _run(*args: str) -> tuple[procs.Run, dict[str, Any]]:
    run = procs.run([sys.executable, "-m", "bench.reader_side", *args])
    if run.returncode != 0:
        raise RuntimeError(f"reader {args[0]} failed ({run.returncode}): {run.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return run, result


def add_feeds(db: Path, urls: list[str]) -> None:
    urls_file = db.with_suffix(".urls")
    urls_file.write_text("\n".join(urls))
    _run("add", str(db), str(urls_file))


def update(db: Path) -> tuple[procs.Run, dict[str, Any]]:
    return _run("update", str(db))


def search(db: Path, queries: list[str], limit: int) -> dict[str, Any]:
    queries_file = db.with_suffix(".queries")
    queries_file.write_text("\n".join(queries))
    return _run("search", str(db), str(queries_file), str(limit))[1]


def main() -> None:
    from reader import make_reader

    command, db = sys.argv[1], sys.argv[2]
    reader = make_reader(db)
    result: dict[str, Any] = {}
    if command == "add":
        for url in Path(sys.argv[3]).read_text().split():
            reader.add_feed(url, exist_ok=True)
        result["feeds"] = reader.get_feed_counts().total
    elif command == "update":
        started = time.perf_counter()
        reader.update_feeds(workers=WORKERS, scheduled=False)
        result["seconds"] = time.perf_counter() - started
        result["entries"] = reader.get_entry_counts().total
        result["broken_feeds"] = reader.get_feed_counts(broken=True).total
    elif command == "search":
        queries = Path(sys.argv[3]).read_text().splitlines()
        limit = int(sys.argv[4])
        started = time.perf_counter()
        reader.enable_search()
        reader.update_search()
        result["index_seconds"] = time.perf_counter() - started
        passes = []
        for _ in range(2):  # cold, then warm: as bench.search_side does
            latencies, hits = [], 0
            for query in queries:
                begin = time.perf_counter()
                found = list(itertools.islice(reader.search_entries(query), limit))
                latencies.append(time.perf_counter() - begin)
                hits += bool(found)
            passes.append(latencies)
        result["latencies"] = passes[1]
        result["cold_latencies"] = passes[0]
        result["with_results"] = hits
    else:
        raise SystemExit(f"unknown command {command!r}")
    reader.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
