"""The ``newsbot`` command line.

    newsbot [--config PATH] run                 the bot: polling and Telegram
    newsbot [--config PATH] poll --once [--json] sync the feeds, one polling round, no Telegram
    newsbot [--config PATH] latest [--category ID] [--limit N]
    newsbot [--config PATH] search QUERY [--limit N]
    newsbot [--config PATH] health              per-feed status
    newsbot [--config PATH] feeds list [--json] each feed's id, origin, state and URL
    newsbot [--config PATH] feeds sync          make the database's config feeds follow the config
    newsbot [--config PATH] feeds add URL [--category ID ...] [--pick N] [--no-discover]
                                                a runtime feed (URL: a feed or a site's page)
    newsbot [--config PATH] feeds remove ID|URL stop listing a runtime feed (articles kept)
    newsbot [--config PATH] feeds pause ID|URL  stop polling a feed until resumed
    newsbot [--config PATH] feeds resume ID|URL re-enable a feed and poll it at once
    newsbot [--config PATH] feeds check ID|URL  fetch, parse and store one feed now
    newsbot [--config PATH] feeds import FILE.opml [--category ID] [--dry-run]
    newsbot [--config PATH] feeds export [FILE] OPML 2.0 (stdout without FILE)
    newsbot [--config PATH] check-config
    newsbot [--config PATH] healthcheck          for Docker's HEALTHCHECK

``--config`` defaults to ``$NEWSBOT_CONFIG``, else ``./config.toml``.

Only ``run``, ``poll --once`` and ``feeds sync`` make the feeds table follow
the configuration file. Every other command leaves the feed state alone: the
running bot may have been started with another file, and a command that only
reads must not stop it polling feeds this file lacks.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage (also a
bot token Telegram rejects).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__
from bot.clock import SystemClock
from bot.config import Config, StorageConfig, load_config
from bot.errors import ConfigError, InputError, NewsbotError
from bot.fetch_options import options_text, shown_options
from bot.i18n import translator
from bot.logs import setup_logging
from bot.models import Article, FeedHealth
from bot.roles import parse_roles
from bot.runtime import Runtime
from bot.services import MAX_LIMIT, NewsService
from bot.storage import Storage, open_storage
from bot.storage.db import PostgresDatabase, SqliteDatabase
from bot.websub import describe_push

if TYPE_CHECKING:
    # Imported where used: ``poll --once`` and ``run`` need none of them, and
    # each process start pays for every module imported here.
    from bot.discover import FoundFeed
    from bot.feed_admin import AddedFeed, FeedAdmin

log = logging.getLogger("bot.cli")

CONFIG_ENV = "NEWSBOT_CONFIG"
DEFAULT_CONFIG = "config.toml"

Command = Callable[[argparse.Namespace, Config], int]
StorageCommand = Callable[[argparse.Namespace, Config, Storage], Awaitable[int]]


class UsageError(Exception):
    """A command-line argument that names nothing (exit code 2)."""


# -- the parser ----------------------------------------------------------------


def _config_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        metavar="PATH",
        help=f"configuration file (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot", description="A Telegram news bot: feeds in, headline cards out."
    )
    # In a container, `docker exec ... newsbot health` finds the image's config.
    _config_option(parser, os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--version", action="version", version=f"newsbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, help_text: str, handler: Command | None, group: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
        # Accept --config after the command too; SUPPRESS keeps the global value.
        _config_option(sub, argparse.SUPPRESS)
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    run = command("run", "run the bot: poll feeds and serve Telegram", _run)
    run.add_argument(
        "--role",
        metavar="ROLES",
        help="with PostgreSQL: run only these of poller,sender,updates (default: all)",
    )
    poll = command(
        "poll",
        "poll the feeds without Telegram; first makes the database's feeds follow "
        "this config, as `feeds sync` does",
        _poll,
    )
    poll.add_argument("--once", action="store_true", required=True, help="one round, then exit")
    poll.add_argument("--json", action="store_true", help="print one JSON object")
    latest = command("latest", "print the newest headlines", _storage_command(_latest))
    latest.add_argument("--category", metavar="ID")
    latest.add_argument("--limit", type=int, default=10, metavar="N")
    search = command("search", "full-text search over stored headlines", _storage_command(_search))
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=10, metavar="N")
    command("health", "show each feed's status", _storage_command(_health))
    feeds = command("feeds", "list, add, remove, pause, resume, import, export feeds", None)
    feed_commands = feeds.add_subparsers(dest="feeds_command", required=True, metavar="ACTION")
    listing = command(
        "list",
        "each feed's id, origin, state and URL",
        _storage_command(_feeds_list),
        feed_commands,
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    add = command(
        "add",
        "add a feed at runtime: it lives in the database, not in the config file. "
        "URL may be a site's page: its feeds are discovered, fetched and shown first; "
        "when there are several, they are listed and the command exits 2 (choose with --pick)",
        _feeds_add,
        feed_commands,
    )
    add.add_argument("url", metavar="URL")
    add.add_argument(
        "--category",
        action="append",
        default=[],
        metavar="ID",
        help="repeat for several; without it, only the feed's own tags (and keywords) place "
        "its articles",
    )
    add.add_argument(
        "--pick", type=int, metavar="N", help="the Nth of several discovered feeds (from 1)"
    )
    add.add_argument(
        "--no-discover",
        action="store_true",
        help="add URL as given, without fetching it (a feed that is down right now)",
    )
    remove = command(
        "remove",
        "stop listing a feed added at runtime; its stored articles are kept",
        _storage_command(_feeds_remove),
        feed_commands,
    )
    remove.add_argument("feed", metavar="ID|URL")
    pause = command(
        "pause",
        "stop polling a feed until `feeds resume`",
        _storage_command(_feeds_pause),
        feed_commands,
    )
    pause.add_argument("feed", metavar="ID|URL")
    check = command(
        "check",
        "fetch, parse and store one feed now, as a polling round would, and print the outcome",
        _feeds_check,
        feed_commands,
    )
    check.add_argument("feed", metavar="ID|URL")
    opml_import = command(
        "import",
        "add the feeds of an OPML file as runtime feeds (prints what it adds first)",
        _storage_command(_feeds_import),
        feed_commands,
    )
    opml_import.add_argument("file", metavar="FILE.opml", type=Path)
    opml_import.add_argument(
        "--category", metavar="ID", help="for feeds whose folder or category matches none"
    )
    opml_import.add_argument(
        "--dry-run", action="store_true", help="print what would be added, add nothing"
    )
    export = command(
        "export",
        "every listed feed as OPML 2.0, one folder per category",
        _storage_command(_feeds_export),
        feed_commands,
    )
    export.add_argument("file", metavar="FILE", type=Path, nargs="?")
    command(
        "sync",
        "make the database's feeds follow this config: add new ones, stop polling "
        "those it lacks (a running bot does this when it starts)",
        _storage_command(_feeds_sync),
        feed_commands,
    )
    resume = command(
        "resume",
        "re-enable a feed (paused, disabled by 410 Gone, or backing off) and poll it at the next round",
        _storage_command(_feeds_resume),
        feed_commands,
    )
    resume.add_argument("feed", metavar="ID|URL")
    db = command("db", "the database: migrate, status, copy into PostgreSQL", None)
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    command(
        "migrate",
        "bring the database's schema up to this version (run does this too)",
        _db_migrate,
        db_commands,
    )
    command(
        "status", "backend, schema version and what the database holds", _db_status, db_commands
    )
    copy = command(
        "copy",
        "copy a SQLite database into PostgreSQL, live and idempotent (re-run to catch up)",
        _db_copy,
        db_commands,
    )
    copy.add_argument("--from", dest="source", required=True, metavar="PATH.db")
    copy.add_argument("--to", dest="target", required=True, metavar="postgresql://...")
    command("check-config", "validate and summarise the configuration", _check_config)
    command("healthcheck", "exit 0 if a running bot's scheduler ticked recently", _healthcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        handler: Command = args.handler
        return handler(args, config)
    except (ConfigError, UsageError, InputError) as error:
        print(f"newsbot: {error}", file=sys.stderr)
        return 2
    except NewsbotError as error:
        print(f"newsbot: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        # Through the log handler, which redacts the bot token: a bare
        # traceback on stderr would print whatever the exception carries.
        log.exception("newsbot: %s failed", args.command)
        return 1


def _storage_command(command: StorageCommand) -> Command:
    """A command that needs the database only: no HTTP client, no parse
    workers, and no sync of the feeds table to this config."""

    def handler(args: argparse.Namespace, config: Config) -> int:
        async def with_storage() -> int:
            storage = await open_storage(config.storage)
            try:
                return await command(args, config, storage)
            finally:
                await storage.close()

        return asyncio.run(with_storage())

    return handler


# -- the bot and polling -------------------------------------------------------


def _run(args: argparse.Namespace, config: Config) -> int:
    from telegram.error import InvalidToken

    from bot.telegram.app import run_bot

    backend = "postgresql" if config.storage.url else "sqlite"
    roles = parse_roles(args.role, backend=backend)
    try:
        return run_bot(config, roles, config_path=args.config)
    except InvalidToken:
        # PTB's message quotes the whole rejected token; never print it.
        # Exit 2 like any other configuration error: retrying cannot help.
        print(
            "newsbot: telegram: the bot token was rejected "
            "(check NEWSBOT_TOKEN or [telegram] token)",
            file=sys.stderr,
        )
        return 2


def _poll(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_poll_once(config, as_json=args.json))


async def _poll_once(config: Config, *, as_json: bool) -> int:
    # An operator's command that polls this config's feeds, so like `run` it
    # makes the feeds table follow the config first (Runtime.open does).
    runtime = await Runtime.open(config)
    try:
        # --once means "poll every enabled feed now", whatever its next check time.
        report = await runtime.poller.run_round(all_feeds=True)
        assert report is not None
        summary = report.summary()
        summary["articles_total"] = await runtime.storage.articles.article_count()
    finally:
        await runtime.close()
    if as_json:
        print(json.dumps(summary))
        return 0
    for outcome in report.outcomes:
        detail = f"{outcome.new_articles} new" if outcome.status == "new" else outcome.error or ""
        print(f"{outcome.status:<12} {outcome.seconds:6.2f}s  {outcome.url}  {detail}".rstrip())
    print(
        f"{summary['feeds']} feeds: {summary['fetched']} fetched, "
        f"{summary['not_modified']} not modified, {summary['unchanged']} unchanged, "
        f"{summary['failed']} failed; {summary['new_articles']} new articles "
        f"in {summary['seconds']:.2f}s"
    )
    return 0


# -- reading articles ----------------------------------------------------------


def _no_articles_yet(storage: Storage) -> str:
    # The path tells an operator who opened the wrong database which one it was.
    return (
        f"no articles yet in {storage.where}: `newsbot poll --once` fetches the configured "
        "feeds now (a running `newsbot run` does it by itself)"
    )


async def _latest(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    if args.category and config.category(args.category) is None:
        known = ", ".join(c.id for c in config.categories) or "none"
        raise ConfigError(f"unknown category {args.category!r} (known: {known})")
    articles = await storage.articles.latest_articles(args.category, max(1, min(args.limit, 100)))
    if articles:
        _print_articles(articles)
    elif await storage.articles.article_count() == 0:
        print(_no_articles_yet(storage))
    else:
        print(f"no articles in {args.category or 'any category'} yet")
    return 0


async def _search(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    news = NewsService(config, storage, SystemClock())
    articles = await news.search(" ".join(args.query), min(args.limit, MAX_LIMIT))
    if articles:
        _print_articles(articles)
    elif await storage.articles.article_count() == 0:
        print(_no_articles_yet(storage))
    else:
        print("no matches")
    return 0


def _print_articles(articles: Sequence[Article]) -> None:
    for article in articles:
        when = article.published.strftime("%Y-%m-%d %H:%M")
        print(f"{when}  {article.title} — {article.source}")
        print(f"{'':18}{article.url}")


# -- feeds ---------------------------------------------------------------------

NO_FEEDS_YET = (
    "no feeds in the database yet: `newsbot feeds sync` adds the configured ones "
    "(`newsbot run` and `newsbot poll --once` do too)"
)


def _resume_hint(feed: FeedHealth) -> str:
    return f"re-enable with `newsbot feeds resume {feed.id}`"


async def _health(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    from bot.feed_admin import feed_state

    feeds = await storage.feeds.feed_health()
    if not feeds:
        print(NO_FEEDS_YET)
    pushed = {s.feed_id: s for s in await storage.websub.subscriptions()}
    now = SystemClock().now()
    for feed in feeds:
        state = feed_state(feed)
        when = feed.last_success_at.strftime("%Y-%m-%d %H:%M") if feed.last_success_at else "never"
        print(
            f"{feed.id:>4}  {state:<9} {feed.articles:5d} articles  last ok {when}  "
            f"{feed.title or feed.url}"
        )
        if feed.last_error:
            print(f"{'':16}{feed.error_count} errors: {feed.last_error}")
        if feed.disabled:
            print(f"{'':16}disabled, not polled: {_resume_hint(feed)}")
        if feed.id in pushed:
            print(f"{'':16}{describe_push(pushed[feed.id], now)}")
    for chat in await storage.chats.suspended_chats():
        name = f"@{chat.username}" if chat.username else (chat.title or str(chat.id))
        print(
            f"suspended chat {chat.id} ({chat.type}, {name}): {chat.reason}; "
            f"{chat.pending} cards wait until the bot may post there again"
        )
    return 0


async def _feeds_list(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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


def _feeds_add(args: argparse.Namespace, config: Config) -> int:
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


async def _feeds_remove(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    feed = await _feed_admin(config, storage).remove(args.feed)
    print(
        f"removed feed {feed.id} ({feed.url}): no longer polled; its {feed.articles} stored "
        "articles are kept (`newsbot feeds add` lists it again)"
    )
    return 0


async def _feeds_pause(args: argparse.Namespace, config: Config, storage: Storage) -> int:
    feed = await _feed_admin(config, storage).pause(args.feed)
    print(f"paused feed {feed.id} ({feed.url}): not polled until `newsbot feeds resume {feed.id}`")
    return 0


def _feeds_check(args: argparse.Namespace, config: Config) -> int:
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


async def _feeds_import(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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


async def _feeds_export(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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


async def _feeds_sync(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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
            print(f"  feed {feed.id} stays disabled ({feed.url}): {_resume_hint(feed)}")
    return 0


async def _feeds_resume(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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


# -- configuration and liveness ------------------------------------------------


def _healthcheck(args: argparse.Namespace, config: Config) -> int:
    from bot.health import heartbeat_verdict

    healthy, verdict = heartbeat_verdict(config)
    print(verdict, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def _db_migrate(args: argparse.Namespace, config: Config) -> int:
    async def migrate() -> int:
        storage = await open_storage(config.storage)  # opening migrates
        try:
            print(f"{storage.backend} database {storage.where}: schema is up to date")
        finally:
            await storage.close()
        return 0

    return asyncio.run(migrate())


async def _db_status_of(storage: Storage) -> int:
    counts = await storage.outbox.delivery_counts()
    print(f"backend:   {storage.backend} ({storage.where})")
    print(f"schema:    version {await storage.schema_version()}")
    print(f"feeds:     {len(await storage.feeds.all_feeds())}")
    print(f"articles:  {await storage.articles.article_count()}")
    print("cards:     " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))
    return 0


def _db_status(args: argparse.Namespace, config: Config) -> int:
    return _storage_command(lambda args, config, storage: _db_status_of(storage))(args, config)


def _db_copy(args: argparse.Namespace, config: Config) -> int:
    from bot.storage.copy import copy_database

    target_url = args.target
    if not str(target_url).startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--to must be a postgresql:// URL, got {target_url!r}")
    source_path = Path(args.source).expanduser()
    if not source_path.is_file():
        raise UsageError(f"--from: no SQLite database at {source_path}")

    async def copy() -> int:
        source = await open_storage(StorageConfig(path=str(source_path)))
        try:
            target = await open_storage(StorageConfig(url=target_url))
            try:
                assert isinstance(source.db, SqliteDatabase)
                assert isinstance(target.db, PostgresDatabase)
                print(f"copying {source.where} into {target.where}")
                await copy_database(
                    source.db,
                    target.db,
                    lambda done: print(
                        f"  {done.table:<18} {done.rows:>8} rows, {done.added:>8} new"
                    ),
                )
            finally:
                await target.close()
        finally:
            await source.close()
        print("done: run the bot with [storage] url set to the PostgreSQL database")
        return 0

    return asyncio.run(copy())


def _check_config(args: argparse.Namespace, config: Config) -> int:
    # The operator's console is English; plurals still come from the catalog
    # rules ("1 feed", "2 feeds").
    ngettext = translator(None).ngettext
    categories = ngettext("{count} category", "{count} categories", len(config.categories))
    feeds_in_all = ngettext("{count} feed", "{count} feeds", len(config.feeds))
    print(
        f"configuration OK: {categories.format(count=len(config.categories))}, "
        f"{feeds_in_all.format(count=len(config.feeds))}"
    )
    print(f"  database: {config.storage.path}")
    print(f"  polling every {config.polling.interval:g}s")
    print(f"  telegram token: {'set' if config.token else 'NOT SET (needed for run)'}")
    for category in config.categories:
        feeds = sum(1 for f in config.feeds if category.id in f.categories)
        rules = len(category.aliases) + len(category.keywords)
        feed_count = ngettext("{count} feed", "{count} feeds", feeds).format(count=feeds)
        rule_count = ngettext("{count} rule", "{count} rules", rules).format(count=rules)
        print(f"  - {category.id}: {category.title} ({feed_count}, {rule_count})")
    for warning in config.warnings():
        print(f"  warning: {warning}")
    return 0
