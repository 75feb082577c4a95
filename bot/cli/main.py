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
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot import __version__
from bot.cli import articles, check_config, db, feeds, health, serve
from bot.cli.command import Command, UsageError, storage_command
from bot.config import load_config
from bot.errors import ConfigError, InputError, NewsbotError
from bot.logs import setup_logging

log = logging.getLogger("bot.cli")

CONFIG_ENV = "NEWSBOT_CONFIG"
DEFAULT_CONFIG = "config.toml"


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

    run = command("run", "run the bot: poll feeds and serve Telegram", serve.run)
    run.add_argument(
        "--role",
        metavar="ROLES",
        help="with PostgreSQL: run only these of poller,sender,updates (default: all)",
    )
    poll = command(
        "poll",
        "poll the feeds without Telegram; first makes the database's feeds follow "
        "this config, as `feeds sync` does",
        serve.poll,
    )
    poll.add_argument("--once", action="store_true", required=True, help="one round, then exit")
    poll.add_argument("--json", action="store_true", help="print one JSON object")
    latest = command("latest", "print the newest headlines", storage_command(articles.latest))
    latest.add_argument("--category", metavar="ID")
    latest.add_argument("--limit", type=int, default=10, metavar="N")
    search = command(
        "search", "full-text search over stored headlines", storage_command(articles.search)
    )
    search.add_argument("query", nargs="+")
    search.add_argument("--limit", type=int, default=10, metavar="N")
    command("health", "show each feed's status", storage_command(health.health))
    feeds_parser = command("feeds", "list, add, remove, pause, resume, import, export feeds", None)
    feed_commands = feeds_parser.add_subparsers(
        dest="feeds_command", required=True, metavar="ACTION"
    )
    listing = command(
        "list",
        "each feed's id, origin, state and URL",
        storage_command(feeds.list_feeds),
        feed_commands,
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    add = command(
        "add",
        "add a feed at runtime: it lives in the database, not in the config file. "
        "URL may be a site's page: its feeds are discovered, fetched and shown first; "
        "when there are several, they are listed and the command exits 2 (choose with --pick)",
        feeds.add,
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
        storage_command(feeds.remove),
        feed_commands,
    )
    remove.add_argument("feed", metavar="ID|URL")
    pause = command(
        "pause",
        "stop polling a feed until `feeds resume`",
        storage_command(feeds.pause),
        feed_commands,
    )
    pause.add_argument("feed", metavar="ID|URL")
    check = command(
        "check",
        "fetch, parse and store one feed now, as a polling round would, and print the outcome",
        feeds.check,
        feed_commands,
    )
    check.add_argument("feed", metavar="ID|URL")
    opml_import = command(
        "import",
        "add the feeds of an OPML file as runtime feeds (prints what it adds first)",
        storage_command(feeds.import_opml),
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
        storage_command(feeds.export_opml),
        feed_commands,
    )
    export.add_argument("file", metavar="FILE", type=Path, nargs="?")
    command(
        "sync",
        "make the database's feeds follow this config: add new ones, stop polling "
        "those it lacks (a running bot does this when it starts)",
        storage_command(feeds.sync),
        feed_commands,
    )
    resume = command(
        "resume",
        "re-enable a feed (paused, disabled by 410 Gone, or backing off) and poll it at the next round",
        storage_command(feeds.resume),
        feed_commands,
    )
    resume.add_argument("feed", metavar="ID|URL")
    db_parser = command("db", "the database: migrate, status, copy into PostgreSQL", None)
    db_commands = db_parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    command(
        "migrate",
        "bring the database's schema up to this version (run does this too)",
        db.migrate,
        db_commands,
    )
    command("status", "backend, schema version and what the database holds", db.status, db_commands)
    copy = command(
        "copy",
        "copy a SQLite database into PostgreSQL, live and idempotent (re-run to catch up)",
        db.copy,
        db_commands,
    )
    copy.add_argument("--from", dest="source", required=True, metavar="PATH.db")
    copy.add_argument("--to", dest="target", required=True, metavar="postgresql://...")
    command("check-config", "validate and summarise the configuration", check_config.check_config)
    command(
        "healthcheck", "exit 0 if a running bot's scheduler ticked recently", health.healthcheck
    )
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
