"""Decide what a parsed feed means against what is stored. Pure.

The pipeline hands over a feed's entries (in the feed's own order, first =
newest, already categorized); storage looks up what it knows of their keys
and URLs; ``decide`` says, for each entry, one of:

- **new**: never seen; store it (and, unless this is the feed's first fetch,
  route it to chats);
- **changed**: the feed's own entry, stored before, whose title or summary
  the publisher corrected; record the correction (sent cards may follow it);
- **same story**: an entry of this feed whose link is a story stored from
  another feed: remember the entry and give the story this feed's
  categories; the categories it gains are routed like news;
- **seen**: nothing to do (the same entry again, or the same link under a
  new GUID in the same feed: feeds that change GUIDs every poll).

No I/O: everything is decided from plain values, so every rule is tested
without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.models import NewArticle


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """What storage knows of an entry key or URL."""

    article_id: int
    feed_id: int
    title: str
    summary: str
    categories: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Correction:
    article_id: int
    title: str
    summary: str


@dataclass(frozen=True, slots=True)
class SameStory:
    entry: NewArticle
    article_id: int
    gained: tuple[str, ...]  # categories the story did not have yet


@dataclass(slots=True)
class FeedDecision:
    new: list[NewArticle] = field(default_factory=list)  # feed order
    changed: list[Correction] = field(default_factory=list)
    same_story: list[SameStory] = field(default_factory=list)


def decide(
    feed_id: int,
    entries: Sequence[NewArticle],
    known_keys: Mapping[str, StoredEntry],
    known_urls: Mapping[str, StoredEntry],
    generic_urls: frozenset[str] = frozenset(),
) -> FeedDecision:
    """``known_keys``: this feed's stored entries (its own and those it
    carries of other feeds' stories) by entry key; ``known_urls``: stored
    articles by URL. ``generic_urls`` (the feed's and its site's address)
    name no single story: entries without a link fall back to them, so they
    are never used to recognise a story."""
    decision = FeedDecision()
    batch_urls: set[str] = set()
    for entry in entries:
        stored = known_keys.get(entry.key)
        if stored is not None:
            if stored.feed_id == feed_id and (
                stored.title != entry.title or stored.summary != entry.summary
            ):
                decision.changed.append(Correction(stored.article_id, entry.title, entry.summary))
            continue
        if entry.url not in generic_urls:
            if entry.url in batch_urls:
                continue  # the feed lists one story twice: the first (newest) counts
            batch_urls.add(entry.url)
            story = known_urls.get(entry.url)
            if story is not None:
                # The same feed under a new GUID is not news; another feed
                # carrying the story may add categories to it.
                if story.feed_id != feed_id:
                    gained = tuple(c for c in entry.categories if c not in story.categories)
                    decision.same_story.append(SameStory(entry, story.article_id, gained))
                continue
        decision.new.append(entry)
    return decision
