"""How an article is read back, shared by every query that shows one."""

from __future__ import annotations

from bot.clock import from_timestamp
from bot.models import Article
from bot.storage.db import Row

# The feed's display name: the operator's, the feed's own title, its site.
ARTICLE_COLUMNS = """
    a.id, a.feed_id, a.url, a.title, a.summary, a.author, a.published_at, a.image_url,
    COALESCE(f.name, NULLIF(f.title, ''), f.site_url, f.url) AS source, a.categories, a.tags
"""


def article_from_row(row: Row) -> Article:
    return Article(
        id=row[0],
        feed_id=row[1],
        url=row[2],
        title=row[3],
        summary=row[4],
        author=row[5],
        published=from_timestamp(row[6]),
        image_url=row[7],
        source=row[8],
        categories=tuple(row[9].split()) if row[9] else (),
        tags=tags_from_column(row[10]),
    )


def tags_to_column(tags: tuple[str, ...]) -> str:
    """Tags may hold spaces ("Space exploration"), never a line break."""
    return "\n".join(" ".join(t.split()) for t in tags if t.strip())


def tags_from_column(value: str | None) -> tuple[str, ...]:
    return tuple(value.split("\n")) if value else ()
