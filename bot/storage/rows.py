"""How an article is read back, shared by every query that shows one."""

from __future__ import annotations

from bot.clock import from_timestamp
from bot.models import Article
from bot.storage.db import Row

# The feed's display name: the operator's, the feed's own title, its site.
ARTICLE_COLUMNS = """
    a.id, a.feed_id, a.url, a.title, a.summary, a.author, a.published_at, a.image_url,
    COALESCE(f.name, NULLIF(f.title, ''), f.site_url, f.url) AS source, a.categories
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
    )
