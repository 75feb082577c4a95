"""The feeds table: ``newsbot feeds list|add|remove|pause|resume|check|import|export|sync``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.clock import SystemClock
from bot.config import Config
from bot.errors import InputError
from bot.fetch_options import options_text, shown_options
from bot.models import FeedHealth
from bot.runtime import Runtime
from bot.storage import Storage

if TYPE_CHECKING:
    # Imported where used: ``poll --once`` and ``run`` need none of them, and
    # each process start pays for every module imported at the top.
    from bot.discover import FoundFeed
    from bot.feed_admin import AddedFeed, FeedAdmin

NO_FEEDS_YET = (
    "no feeds in the database yet: `newsbot feeds sync` adds the configured ones "
    "(`newsbot run` and `newsbot poll --once` do too)"
)


def resume_hint(feed: FeedHealth) -> str:
    return f"re-enable with `newsbot feeds resume {feed.id}`"


async def list_feeds(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    from bot.feed_admin import feed_state

    feeds = await storage.feeds.all_feeds()
    # The file's per-feed options, secrets hidden (bot.fetch_options).
    options = {f.url: shown_options(f) for f in config.feeds}
    if args.json:
        print(json.dumps([_feed_json(f, options.get(f.url, {})) for f in feeds]))
        return 0
    if not feeds:
        print(NO_FEEDS_YET)
    for feed in feeds:
        shown = options.get(feed.url) if feed.origin == "config" else None
        extra = f"  ({options_text(shown)})" if shown else ""
        print(f"{feed.id:>4}  {feed_state(feed):<8}  {feed.origin:<7}  {feed.url}{extra}")
    return 0


def _feed_json(feed: FeedHealth, options: dict[str, Any]) -> dict[str, Any]:
    from bot.feed_admin import feed_state

    return {
        "id": feed.id,
        "url": feed.url,
        "fetch_url": feed.fetch_url,
        "title": feed.title,
        "origin": feed.origin,
        "state": feed_state(feed),
        "listed": feed.configured,
        "paused": feed.paused,
        "disabled": feed.disabled,
        "categories": list(feed.categories),
        "articles": feed.articles,
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "last_success_at": feed.last_success_at.isoformat() if feed.last_success_at else None,
        "options": options if feed.origin == "config" else {},
    }


def _feed_admin(config: Config, storage: Storage) -> FeedAdmin:
    from bot.feed_admin import FeedAdmin

    return FeedAdmin(config, storage, SystemClock())


def _categories_text(categories: Sequence[str]) -> str:
    return ", ".join(categories) if categories else "no category (only keyword/alias rules)"


def add(args: argparse.Namespace, config: Config) -> int:
    from bot.feed_admin import FeedAdmin

    async def add() -> int:
        runtime = await Runtime.open(config, sync_feeds=False)
        try:
            return await _add_feed(args, FeedAdmin.for_runtime(runtime))
        finally:
            await runtime.close()

    return asyncio.run(add())


async def _add_feed(args: argparse.Namespace, admin: FeedAdmin) -> int:
    admin.checked_categories(args.category)  # a typo fails before any fetch
    listed = await admin.listed(args.url)
    if listed is not None:
        return _already_listed(listed)
    if args.no_discover:
        return _added(await admin.add(args.url, args.category))
    discovery = await admin.discover(args.url)
    found = discovery.found
    if len(found) > 1 and args.pick is None:
        print(f"{len(found)} feeds found at {args.url}; choose one with --pick N:")
        for number, candidate in enumerate(found, 1):
            print(f"  {number}. {candidate.url}  {candidate.title} ({candidate.items} items)")
        return 2
    pick = args.pick or 1
    if not 1 <= pick <= len(found):
        raise InputError(f"--pick {pick}: {len(found)} feeds were found (1 to {len(found)})")
    chosen = found[pick - 1]
    _print_found(chosen)
    if chosen.url in discovery.listed:
        return _already_listed(discovery.listed[chosen.url])
    return _added(await admin.add(chosen.url, args.category))


def _print_found(found: FoundFeed) -> None:
    print(f"found {found.url}: {found.title!r}, {found.items} items")
    for headline in found.newest:
        print(f"  - {headline}")
    if found.suggested_categories:
        print(
            f"  its own tags map to: {', '.join(found.suggested_categories)} "
            "(its articles land there by their tags, whatever --category says)"
        )


def _already_listed(feed: FeedHealth) -> int:
    print(f"feed {feed.id} ({feed.url}) is already listed ({feed.origin}); nothing changed")
    return 0


def _added(added: AddedFeed) -> int:
    feed = added.feed
    if not added.created:
        return _already_listed(feed)
    print(
        f"added feed {feed.id} ({feed.url}) in {_categories_text(feed.categories)}: "
        "due now, a running bot polls it at its next tick"
    )
    return 0


async def remove(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    feed = await _feed_admin(config, storage).remove(args.feed)
    print(
        f"removed feed {feed.id} ({feed.url}): no longer polled; its {feed.articles} stored "
        "articles are kept (`newsbot feeds add` lists it again)"
    )
    return 0


async def pause(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    feed = await _feed_admin(config, storage).pause(args.feed)
    print(f"paused feed {feed.id} ({feed.url}): not polled until `newsbot feeds resume {feed.id}`")
    return 0


def check(args: argparse.Namespace, config: Config) -> int:
    from bot.feed_admin import FeedAdmin

    async def check() -> int:
        runtime = await Runtime.open(config, sync_feeds=False)
        try:
            feed, outcome = await FeedAdmin.for_runtime(runtime).check(args.feed)
        finally:
            await runtime.close()
        if outcome is None:
            print(f"feed {feed.id} is being fetched by a running poller right now; try again")
            return 1
        if outcome.status == "failed":
            print(f"feed {feed.id} ({feed.url}): failed: {outcome.error}")
            return 1
        detail = {
            "new": f"{outcome.new_articles} new articles, {outcome.deliveries} cards queued",
            "unchanged": "same body as last time, nothing new",
            "not_modified": "not modified (HTTP 304), nothing new",
        }[outcome.status]
        print(f"feed {feed.id} ({feed.url}): ok in {outcome.seconds:.2f}s: {detail}")
        return 0

    return asyncio.run(check())


async def import_opml(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    from bot.opml import parse_opml, read_opml_file

    document = parse_opml(read_opml_file(args.file))
    admin = _feed_admin(config, storage)
    plan = await admin.plan_import(document, args.category)
    print(
        f"{args.file}: {plan.total} feeds, {len(plan.present)} already present, "
        f"{len(plan.new)} to add"
        + (f", {plan.skipped} skipped (not http(s) URLs)" if plan.skipped else "")
    )
    for feed in plan.new:
        print(f"  + {feed.url}  [{_categories_text(feed.categories)}]")
    if plan.unmatched and not args.category:
        names = ", ".join(repr(n) for n in plan.unmatched[:10])
        print(f"  folders matching no category: {names} (--category ID places their feeds)")
    if args.dry_run:
        print("dry run: nothing added")
        return 0
    added = await admin.apply_import(plan)
    print(f"added {added} feeds: due now, a running bot polls them at its next tick")
    return 0


async def export_opml(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    data = await _feed_admin(config, storage).export()
    if args.file is None:
        sys.stdout.write(data.decode("utf-8"))
        sys.stdout.flush()
        return 0
    try:
        args.file.write_bytes(data)
    except OSError as error:
        raise InputError(f"cannot write {args.file}: {error.strerror or error}") from None
    print(f"wrote {args.file}", file=sys.stderr)
    return 0


async def sync(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    before = {f.url: f.configured for f in await storage.feeds.all_feeds()}
    await storage.feeds.sync_feeds(config.feeds, SystemClock().now())
    after = await storage.feeds.all_feeds()
    added = sum(1 for f in after if f.url not in before)
    dropped = sum(1 for f in after if before.get(f.url) and not f.configured)
    print(
        f"{len(config.feeds)} feeds in {args.config}: {added} added, {dropped} no longer configured"
    )
    for feed in after:
        if feed.configured and feed.disabled:
            print(f"  feed {feed.id} stays disabled ({feed.url}): {resume_hint(feed)}")
    return 0


async def resume(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    feed = await _feed_admin(config, storage).resume(args.feed)
    print(f"resumed feed {feed.id} ({feed.url}): due now, a running bot polls it at its next tick")
    if not feed.configured and feed.origin == "runtime":
        print(f"  it was removed, so nothing polls it until `newsbot feeds add {feed.url}`")
    elif not feed.configured:
        print(
            "  it is not among the configured feeds, so nothing polls it until it is "
            "back in the config (`newsbot feeds sync`)"
        )
    return 0
