"""Running the bot (``newsbot run``) and one polling round without Telegram
(``newsbot poll --once``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from bot.config import Config
from bot.roles import parse_roles
from bot.runtime import Runtime


def run(args: argparse.Namespace, config: Config) -> int:
    from telegram.error import InvalidToken

    from bot.telegram.process import run_bot

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


def poll(args: argparse.Namespace, config: Config) -> int:
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
