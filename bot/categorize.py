"""Categorize stage: which of our categories an entry belongs to. Pure.

An article belongs to the union of
- the categories its feed is configured with,
- every category whose id, title or alias equals one of the entry's own tags
  (WordPress "AI and Robotics", Atom terms, dc:subject), compared case- and
  space-insensitively,
- every category with a keyword that occurs as a whole word or phrase in the
  title or summary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only the rules' shape: a parse worker unpickles a Categorizer without
    # loading the configuration's models.
    from bot.config import CategoryConfig

_SPACES = re.compile(r"[\s_\-]+")


def _normalise_tag(tag: str) -> str:
    return _SPACES.sub(" ", tag.casefold()).strip()


class Categorizer:
    """Compiled category rules; build once per configuration. Picklable:
    the poller hands it to the parse workers, which categorize the entries
    they parse (see ``bot.parse_pool``)."""

    def __init__(self, categories: Sequence[CategoryConfig]) -> None:
        self._order = {c.id: i for i, c in enumerate(categories)}
        self._by_tag: dict[str, set[str]] = {}
        for category in categories:
            for name in (category.id, category.title, *category.aliases):
                normalised = _normalise_tag(name)
                if normalised:
                    self._by_tag.setdefault(normalised, set()).add(category.id)
        self._keywords: list[tuple[str, re.Pattern[str]]] = []
        for category in categories:
            words = [k.strip() for k in category.keywords if k.strip()]
            if words:
                alternatives = "|".join(
                    r"\s+".join(re.escape(part) for part in w.split()) for w in words
                )
                # \b fails next to symbols ("C++"), so use look-arounds on \w.
                pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
                self._keywords.append((category.id, pattern))

    def categorize(
        self, feed_categories: Iterable[str], tags: Iterable[str], title: str, summary: str
    ) -> tuple[str, ...]:
        found = set(feed_categories)
        for tag in tags:
            found.update(self._by_tag.get(_normalise_tag(tag), ()))
        if self._keywords:
            text = f"{title}\n{summary}"
            for category_id, pattern in self._keywords:
                if category_id not in found and pattern.search(text):
                    found.add(category_id)
        return tuple(sorted(found, key=lambda c: self._order.get(c, len(self._order))))
