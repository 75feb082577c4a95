"""The ``newsbot`` command line.

    newsbot [--config PATH] run                 the bot: polling and Telegram
    newsbot [--config PATH] poll --once [--json] one polling round, no Telegram
    newsbot [--config PATH] latest [--category ID] [--limit N]
    newsbot [--config PATH] search QUERY [--limit N]
    newsbot [--config PATH] health              per-feed status
    newsbot [--config PATH] check-config
    newsbot [--config PATH] healthcheck          for Docker's HEALTHCHECK

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage (also a
bot token Telegram rejects).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from bot import __version__
from bot.config import Config, load_config
from bot.errors import ConfigError, NewsbotError
from bot.logs import setup_logging
from bot.models import Article
from bot.runtime import Runtime
from bot.services import MAX_LIMIT

log = logging.getLogger("bot.cli")


def _config_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-c",
        "--config",
        default=default,
        metavar="PATH",
        help="configuration file (default: ./config.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot", description="A Telegram news bot: feeds in, headline cards out."
    )
    _config_option(parser, "config.toml")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--version", action="version", version=f"newsbot {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        # Accept --config after the command too; SUPPRESS keeps the global value.
        _config_option(sub, argparse.SUPPRESS)
        return sub

    command("run", "run the bot: poll feeds and serve Telegram")
    poll = command("poll", "poll the feeds without Telegram")
    poll.add_argument("--once", action="store_true", required=True, help="one round, then exit")
    poll.add_argument("--json", action="store_true", help="print one JSON object")
    latest = command("latest", "print the newest headlines")
    latest.add_argument("--category", metavar="ID")
    latest.add_argument("--limit", type=int, default=10, metavar="N")
    search = command("search", "full-text search over stored headlines")
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=10, metavar="N")
    command("health", "show each feed's status")
    command("check-config", "validate and summarise the configuration")
    command("healthcheck", "exit 0 if a running bot's scheduler ticked recently")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
        if args.command == "check-config":
            return _check_config(config)
        if args.command == "healthcheck":
            return _healthcheck(config)
        if args.command == "run":
            return _run(config)
        return asyncio.run(_offline(args, config))
    except ConfigError as error:
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


def _run(config: Config) -> int:
    from telegram.error import InvalidToken

    from bot.telegram.app import run_bot

    try:
        return run_bot(config)
    except InvalidToken:
        # PTB's message quotes the whole rejected token; never print it.
        # Exit 2 like any other configuration error: retrying cannot help.
        print(
            "newsbot: telegram: the bot token was rejected "
            "(check NEWSBOT_TOKEN or [telegram] token)",
            file=sys.stderr,
        )
        return 2


async def _offline(args: argparse.Namespace, config: Config) -> int:
    if args.command in ("latest",) and args.category and config.category(args.category) is None:
        known = ", ".join(c.id for c in config.categories) or "none"
        raise ConfigError(f"unknown category {args.category!r} (known: {known})")
    runtime = await Runtime.open(config)
    try:
        if args.command == "poll":
            return await _poll(runtime, as_json=args.json)
        if args.command == "latest":
            limit = max(1, min(args.limit, 100))
            _print_articles(await runtime.storage.latest_articles(args.category, limit))
            return 0
        if args.command == "search":
            articles = await runtime.news.search(" ".join(args.query), min(args.limit, MAX_LIMIT))
            if not articles:
                print("no matches")
            _print_articles(articles)
            return 0
        if args.command == "health":
            return await _health(runtime)
        raise AssertionError(args.command)
    finally:
        await runtime.close()


async def _poll(runtime: Runtime, *, as_json: bool) -> int:
    # --once means "poll every enabled feed now", whatever its next check time.
    report = await runtime.poller.run_round(all_feeds=True)
    assert report is not None
    summary = report.summary()
    summary["articles_total"] = await runtime.storage.article_count()
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


async def _health(runtime: Runtime) -> int:
    for feed in await runtime.storage.feed_health():
        state = "disabled" if feed.disabled else ("failing" if feed.error_count else "ok")
        when = feed.last_success_at.strftime("%Y-%m-%d %H:%M") if feed.last_success_at else "never"
        print(f"{state:<9} {feed.articles:5d} articles  last ok {when}  {feed.title or feed.url}")
        if feed.last_error:
            print(f"          {feed.error_count} errors: {feed.last_error}")
    return 0


def _print_articles(articles: Sequence[Article]) -> None:
    for article in articles:
        when = article.published.strftime("%Y-%m-%d %H:%M")
        print(f"{when}  {article.title} — {article.source}")
        print(f"{'':18}{article.url}")


def _healthcheck(config: Config) -> int:
    try:
        age = time.time() - config.heartbeat_path.stat().st_mtime
    except OSError:
        print("unhealthy: no heartbeat yet", file=sys.stderr)
        return 1
    limit = 3 * config.poll_tick + 60
    if age > limit:
        print(
            f"unhealthy: last scheduler tick {age:.0f}s ago (limit {limit:.0f}s)", file=sys.stderr
        )
        return 1
    print(f"healthy: last scheduler tick {age:.0f}s ago")
    return 0


def _check_config(config: Config) -> int:
    print(f"configuration OK: {len(config.categories)} categories, {len(config.feeds)} feeds")
    print(f"  database: {config.storage.path}")
    print(f"  polling every {config.polling.interval:g}s")
    print(f"  telegram token: {'set' if config.token else 'NOT SET (needed for run)'}")
    for category in config.categories:
        feeds = sum(1 for f in config.feeds if category.id in f.categories)
        rules = len(category.aliases) + len(category.keywords)
        print(f"  - {category.id}: {category.title} ({feeds} feeds, {rules} rules)")
    for warning in config.warnings():
        print(f"  warning: {warning}")
    return 0
