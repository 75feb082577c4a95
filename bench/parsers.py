"""Would a faster feed parser give the same articles? ::

    python -m bench.parsers /path/to/feeds/real

Runs ``bot.parse.parse`` over every file of a real-feed corpus with
feedparser (what newsbot uses) and again with each candidate installed
(``feedparser-rs``, ``fastfeedparser``) put in feedparser's place behind the
same function, then prints, per candidate, the files whose articles differ
(title, link, date, categories, key, summary, image) and the parse times.
A candidate is only worth adopting when no file differs. Not part of
``all``: the candidates are not dependencies of newsbot or of its bench extra.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import feedparser

import bot.parse
from bot.errors import ParseError
from bot.parsed import ParsedFeed

FIELDS = ("title", "url", "published", "tags", "key", "summary", "image_url")


def _rs_parse(body: bytes, **_: Any) -> Any:
    import feedparser_rs

    return feedparser_rs.parse(body)


def _iso_struct(text: str | None) -> Any:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).timetuple()


def _fast_parse(body: bytes, **_: Any) -> Any:
    """fastfeedparser's result reshaped into the feedparser keys parse() reads."""
    import fastfeedparser

    try:
        result = fastfeedparser.parse(body)
    except Exception:  # it raises on input feedparser salvages; parse() sees "not a feed"
        return {"version": "", "entries": [], "bozo": 1}
    entries = []
    for entry in result.get("entries", []):
        shaped = dict(entry)
        shaped["summary"] = entry.get("description") or entry.get("summary")
        shaped["published_parsed"] = _iso_struct(entry.get("published"))
        shaped["updated_parsed"] = _iso_struct(entry.get("updated"))
        entries.append(shaped)
    return {"version": "rss20", "entries": entries, "feed": dict(result.get("feed", {}))}


CANDIDATES: dict[str, tuple[str, Callable[..., Any]]] = {
    "feedparser-rs": ("feedparser_rs", _rs_parse),
    "fastfeedparser": ("fastfeedparser", _fast_parse),
}


def _parse_with(backend: Any, body: bytes, url: str) -> ParsedFeed | str:
    original = bot.parse.feedparser
    bot.parse.feedparser = backend
    try:
        return bot.parse.parse(body, url)
    except ParseError as error:
        return f"ParseError: {error}"
    except Exception as error:
        return f"crash: {error!r}"
    finally:
        bot.parse.feedparser = original


def _differences(ours: ParsedFeed | str, theirs: ParsedFeed | str) -> list[str]:
    if isinstance(ours, str) or isinstance(theirs, str):
        return [] if ours == theirs else ["result"]
    found = []
    if len(ours.entries) != len(theirs.entries):
        found.append("count")
    for mine, other in zip(ours.entries, theirs.entries, strict=False):
        found += [f for f in FIELDS if getattr(mine, f) != getattr(other, f)]
    return found


def main() -> None:
    folder = Path(sys.argv[1])
    files = sorted(p for p in folder.iterdir() if p.suffix == ".xml")
    bodies = {p.name: p.read_bytes() for p in files}
    reference: dict[str, ParsedFeed | str] = {}
    started = time.perf_counter()
    for name, body in bodies.items():
        reference[name] = _parse_with(feedparser, body, f"https://example.com/{name}")
    print(f"feedparser: {len(files)} files in {time.perf_counter() - started:.2f} s")
    for label, (module, function) in CANDIDATES.items():
        if importlib.util.find_spec(module) is None:
            print(f"{label}: not installed")
            continue
        backend = SimpleNamespace(parse=function)
        started = time.perf_counter()
        results = {
            name: _parse_with(backend, body, f"https://example.com/{name}")
            for name, body in bodies.items()
        }
        seconds = time.perf_counter() - started
        differing = {}
        for name, result in results.items():
            found = _differences(reference[name], result)
            if found:
                differing[name] = collections.Counter(found)
        print(f"{label}: {len(files)} files in {seconds:.2f} s; {len(differing)} files differ")
        for name, counts in differing.items():
            print(f"    {name}: " + ", ".join(f"{k} x{v}" for k, v in counts.most_common()))


if __name__ == "__main__":
    main()
