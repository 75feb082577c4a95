"""Reading stored articles: ``newsbot latest`` and ``newsbot search``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bot.clock import SystemClock
from bot.config import Config
from bot.errors import ConfigError
from bot.models import Article
from bot.services import MAX_LIMIT, NewsService
from bot.storage import Storage


def _no_articles_yet(storage: Storage) -> str:
    # The path tells an operator who opened the wrong database which one it was.
    return (
        f"no articles yet in {storage.where}: `newsbot poll --once` fetches the configured "
        "feeds now (a running `newsbot run` does it by itself)"
    )


async def latest(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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


async def search(args: argparse.Namespace, config: Config, storage: Storage) -> int:
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
