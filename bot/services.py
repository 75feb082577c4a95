"""Services shared by the CLI and the Telegram handlers: headlines, search,
categories and subscriptions. No Telegram types and no SQL here."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo

from bot.clock import Clock
from bot.config import CategoryConfig, Config
from bot.filters import ArticleText, passes_in_any
from bot.models import Article
from bot.reload import CurrentConfig
from bot.storage import Storage
from bot.timezones import zone

DEFAULT_LIMIT = 5
MAX_LIMIT = 20
MAX_QUERY_LENGTH = 256
# A filtered /latest picks its headlines among this many of the newest.
FILTERED_LATEST_WINDOW = 200
_SEPARATORS = re.compile(r"[\s,;]+")


def clamp_limit(value: int | None, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if value is None:
        return default
    return max(1, min(value, maximum))


@dataclass(frozen=True, slots=True)
class CategoryLookup:
    found: list[CategoryConfig] = field(default_factory=list)
    # Each unknown word with the closest category titles, if any.
    unknown: list[tuple[str, list[str]]] = field(default_factory=list)


def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.casefold().lstrip("#"))


def resolve_categories(
    words: Sequence[str], categories: Sequence[CategoryConfig]
) -> CategoryLookup:
    """Match user words to categories by id or title, case-insensitively.

    Multi-word titles work both quoted as one argument and as consecutive
    words ("ai and robotics"); the longest run of words that names a category
    wins. Unknown words come back with "did you mean" suggestions.
    """
    by_key: dict[str, CategoryConfig] = {}
    for category in categories:
        by_key.setdefault(_key(category.id), category)
        by_key.setdefault(_key(category.title), category)
    tokens = [t for w in words for t in _SEPARATORS.split(w) if t]
    found: list[CategoryConfig] = []
    unknown: list[tuple[str, list[str]]] = []
    position = 0
    while position < len(tokens):
        for end in range(len(tokens), position, -1):
            candidate = by_key.get(_key("".join(tokens[position:end])))
            if candidate is not None:
                if candidate not in found:
                    found.append(candidate)
                position = end
                break
        else:
            word = tokens[position]
            unknown.append((word, suggest(word, categories)))
            position += 1
    return CategoryLookup(found, unknown)


def suggest(word: str, categories: Sequence[CategoryConfig]) -> list[str]:
    names = {_key(c.title): c.title for c in categories} | {_key(c.id): c.title for c in categories}
    close = difflib.get_close_matches(_key(word), list(names), n=3, cutoff=0.6)
    titles: list[str] = []
    for match in close:
        if names[match] not in titles:
            titles.append(names[match])
    return titles


class NewsService:
    def __init__(self, config: Config | CurrentConfig, storage: Storage, clock: Clock) -> None:
        self._current = CurrentConfig.of(config)
        self.storage = storage
        self.clock = clock

    @property
    def config(self) -> Config:
        """The configuration in use now (a reload replaces it)."""
        return self._current.config

    @property
    def categories(self) -> list[CategoryConfig]:
        return list(self.config.categories)

    def category(self, category_id: str) -> CategoryConfig | None:
        return self.config.category(category_id)

    async def chat_zone(self, chat_id: int) -> tzinfo:
        """The zone ``chat_id`` reads times in: its own (``/timezone``), else
        the bot's ``[telegram] default_timezone``."""
        settings = await self.storage.chats.chat_settings(chat_id)
        return zone(settings.timezone, self.config.telegram.default_timezone)

    async def latest(
        self, category_id: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[Article]:
        return await self.storage.articles.latest_articles(
            category_id, clamp_limit(limit), max(0, offset)
        )

    async def latest_for_chat(
        self, chat_id: int, category_id: str | None = None, limit: int | None = None
    ) -> tuple[list[Article], bool]:
        """The newest headlines that ``chat_id``'s keyword filters let
        through, and whether it has filters that apply here (the heading says
        so). Among the newest ``FILTERED_LATEST_WINDOW`` only: an old match is
        not worth reading the whole archive for."""
        filters = await self.storage.chats.chat_filters(chat_id)
        if category_id is not None:
            filters = [f for f in filters if f.category_id in (None, category_id)]
        if not filters:
            return await self.latest(category_id, limit), False
        wanted = clamp_limit(limit)
        candidates = await self.storage.articles.latest_articles(
            category_id, FILTERED_LATEST_WINDOW
        )
        kept = [
            a
            for a in candidates
            if passes_in_any(
                filters,
                (category_id,) if category_id else a.categories,
                ArticleText(a.title, a.summary, a.tags),
            )
        ]
        return kept[:wanted], True

    async def search(
        self,
        query: str,
        limit: int | None = None,
        offset: int = 0,
        *,
        category_id: str | None = None,
    ) -> list[Article]:
        return await self.storage.search.search_articles(
            query[:MAX_QUERY_LENGTH], clamp_limit(limit), max(0, offset), category_id=category_id
        )

    async def article(self, article_id: int) -> Article | None:
        return await self.storage.articles.article(article_id)

    async def categories_this_week(self) -> list[tuple[CategoryConfig, int]]:
        counts = await self.storage.articles.category_counts(self.clock.now() - timedelta(days=7))
        return [(c, counts.get(c.id, 0)) for c in self.config.categories]
