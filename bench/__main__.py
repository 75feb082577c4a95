"""newsbot's benchmark harness, side by side with lemon24's reader.

    python -m bench all                      every workload (about 15 minutes)
    python -m bench w1 w3 --feeds 300        some workloads
    python -m bench all --quick              tiny sizes, a few seconds (smoke test)
    python -m bench w1 w2 w3 w4 --backend both --feeds 300
                                             newsbot on SQLite and on PostgreSQL

Workloads: w1 w2 w3 w4 (ingest), search, inline, memory, scaling, outbox, delivery,
push (WebSub push to card latency).
``--backend`` picks the storage newsbot runs on in ingest, search, inline and outbox
(memory, scaling and delivery stay on SQLite); PostgreSQL is a throwaway
server started from the distribution's binaries unless ``--postgres-url``
names one.
Needs no network: the feed server runs on loopback in its own process. When
``reader`` is not installed (``pip install -e '.[bench]'``) only newsbot's
side runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench import reader_side
from bench.report import details, machine, table
from bench.workloads import BACKENDS, INGEST, Settings, run_all

WORKLOADS = (*INGEST, "search", "inline", "memory", "scaling", "outbox", "delivery", "push")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="+", choices=("all", "ingest", *WORKLOADS))
    parser.add_argument("--feeds", type=int, help="feeds per ingest workload (default 1000)")
    parser.add_argument("--reps", type=int, help="repetitions of W1..W4 (default 3)")
    parser.add_argument("--queries", type=int, help="search queries per database (default 300)")
    parser.add_argument(
        "--articles", type=int, help="articles in the big search database (default 1M)"
    )
    parser.add_argument("--scaling", help="feed counts for the scaling run, e.g. 100,300,1000,3000")
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "both"),
        default="sqlite",
        help="storage newsbot runs on (default sqlite)",
    )
    parser.add_argument(
        "--postgres-url",
        help="a PostgreSQL server to create the benchmark's databases on "
        "(default: start a throwaway one)",
    )
    parser.add_argument("--outbox-cards", type=int, help="pending cards to claim (default 20000)")
    parser.add_argument("--claimers", help="concurrent claimers to try, e.g. 1,2,4 (the default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--no-reader", action="store_true", help="newsbot's side only")
    parser.add_argument(
        "--fresh-search-db",
        action="store_true",
        help="rebuild the big search database instead of reusing the cached one",
    )
    parser.add_argument("--workdir", type=Path, help="where databases go (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)

    selected = set()
    for name in args.workloads:
        selected |= set(WORKLOADS) if name == "all" else set(INGEST) if name == "ingest" else {name}
    settings = Settings(log=lambda line: print(line, file=sys.stderr, flush=True))
    if args.quick:
        settings.feeds, settings.reps, settings.queries = 6, 1, 10
        settings.big_articles, settings.scaling, settings.hosts = 2000, (3, 6), 3
        settings.cards, settings.outbox_cards, settings.claimers = 60, 300, (1, 2)
        settings.pushes = 5
    settings.feeds = args.feeds or settings.feeds
    settings.reps = args.reps or settings.reps
    settings.queries = args.queries or settings.queries
    settings.big_articles = args.articles or settings.big_articles
    if args.scaling:
        settings.scaling = tuple(int(n) for n in args.scaling.split(","))
    settings.fresh_search_db = args.fresh_search_db
    settings.outbox_cards = args.outbox_cards or settings.outbox_cards
    if args.claimers:
        settings.claimers = tuple(int(n) for n in args.claimers.split(","))
    settings.backends = BACKENDS if args.backend == "both" else (args.backend,)
    if args.postgres_url:
        if args.backend == "sqlite":
            parser.error("--postgres-url needs --backend postgresql or both")
        settings.postgres_url = args.postgres_url
    settings.reader = reader_side.available() and not args.no_reader
    if not settings.reader and not args.no_reader:
        settings.log("reader is not installed: measuring newsbot's side only")

    with tempfile.TemporaryDirectory(prefix="newsbot-bench-") as scratch:
        settings.workdir = args.workdir or Path(scratch)
        results = run_all(settings, selected)
    print("## Results\n")
    print(machine())
    print(f"- reader side: {'reader ' + reader_side.version() if settings.reader else 'not run'}\n")
    print(table(settings, results))
    print()
    print(details(settings, results))
    if args.json:
        raw = asdict(results)
        args.json.write_text(json.dumps(raw, indent=1, default=str))
    return 1 if results.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
