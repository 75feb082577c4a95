"""Full-text search on SQLite: FTS5 over title and summary.

The index (``articles_fts``, ``unicode61 remove_diacritics 2``, with prefix
indexes of 3 to 6 characters for the last word's prefix) is kept by
triggers, so an article and its index entry commit together. Any user text is
a valid query: ``build_match_query`` keeps only word tokens, each quoted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.errors import StorageError
from bot.models import Article
from bot.storage.db import Database, Row
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row
from bot.storage.search_query import build_match_query

log = logging.getLogger(__name__)

# A match is in the category. A correlated probe (article_categories_article
# index), not "rowid IN (SELECT ...)": FTS5 takes a rowid IN list as its
# access path and evaluates the MATCH once per listed id, 0.8 s for a
# category of 1,200 articles against milliseconds this way.
_IN_CATEGORY = (
    "AND EXISTS (SELECT 1 FROM article_categories AS c "
    "WHERE c.article_id = articles_fts.rowid AND c.category_id = ?)"
)

SELECTIVE = 100  # at most this many matches: rank them all
CANDIDATES = 1000  # more: rank only this many of the newest


class SqliteSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search_articles(
        self, text: str, limit: int, offset: int = 0, category_id: str | None = None
    ) -> list[Article]:
        """Best matches first, within ``category_id`` when given. Any text is
        accepted; text without a word gives no results.

        A selective query (at most ``SELECTIVE`` matches) is ranked by bm25
        (title weighted 10:1), newest first on ties. For a broader one bm25
        would cost time in proportion to its words' posting lists (two common
        words in a million articles: over 100 ms), so the ``CANDIDATES``
        newest matches (most recently stored: FTS5 walks its index from the
        newest row and stops there) are ordered by how many of the query's
        words their title contains, then newest first: for a query that
        common, recent headlines about it are the ones wanted. Words are
        FTS5's own tokens (Unicode-aware, diacritics folded, whole words:
        "ai" does not count for "said"), found per word by the query itself
        with that word required in the title, over the candidates' range of
        ids: every match in that range is a candidate, and FTS5 intersects
        the doclists by seeking, instead of reading every title that has a
        common word since the oldest candidate.
        """
        query = build_match_query(text)
        if query is None:
            return []
        # The category is a filter on the matches, applied before the
        # selective/broad decision, so a query common overall but rare in the
        # category is still ranked by bm25.
        in_category = ""
        category_args: list[str] = []
        if category_id is not None:
            in_category = _IN_CATEGORY
            category_args = [category_id]
        try:
            newest = await self._db.fetch(
                f"SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? {in_category} "
                "ORDER BY rowid DESC LIMIT ?",
                query,
                *category_args,
                CANDIDATES,
            )
            if len(newest) <= SELECTIVE:
                rows = await self._db.fetch(
                    f"""
                    SELECT {ARTICLE_COLUMNS}
                    FROM articles_fts
                    JOIN articles AS a ON a.id = articles_fts.rowid
                    JOIN feeds AS f ON f.id = a.feed_id
                    WHERE articles_fts MATCH ? {in_category}
                    ORDER BY bm25(articles_fts, 10.0, 1.0), a.published_at DESC, a.id DESC
                    LIMIT ? OFFSET ?
                    """,
                    query,
                    *category_args,
                    limit,
                    offset,
                )
            else:
                rows = await self._rank_broad_matches(query, [r[0] for r in newest], limit, offset)
        except StorageError as error:
            # The query builder makes this unreachable for any input we know
            # of; should FTS5 still object, the user sees "no results".
            log.warning("storage: search %r failed: %s", query, error)
            return []
        return [article_from_row(r) for r in rows]

    async def _rank_broad_matches(
        self, query: str, candidates: Sequence[int], limit: int, offset: int
    ) -> list[Row]:
        dialect = self._db.dialect
        in_title: dict[int, int] = dict.fromkeys(candidates, 0)
        lowest = min(candidates)
        for term in query.split(" "):
            # Each term is a quoted token (build_match_query), safe after "title :".
            # In a category, matches outside it come back too; they are not
            # candidates and count for nothing.
            for (rowid,) in await self._db.fetch(
                "SELECT rowid FROM articles_fts WHERE articles_fts MATCH ? AND rowid >= ?",
                f"{query} AND title : {term}",
                lowest,
            ):
                if rowid in in_title:
                    in_title[rowid] += 1
        published = await self._db.fetch(
            f"SELECT id, published_at FROM articles WHERE {dialect.in_ids('id')}",
            dialect.ids(candidates),
        )
        ranked = sorted(published, key=lambda r: (-in_title[r[0]], -r[1], -r[0]))
        page = [r[0] for r in ranked[offset : offset + limit]]
        if not page:
            return []
        rows = await self._db.fetch(
            f"""
            SELECT {ARTICLE_COLUMNS}
            FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
            WHERE {dialect.in_ids("a.id")}
            """,
            dialect.ids(page),
        )
        order = {article_id: position for position, article_id in enumerate(page)}
        return sorted(rows, key=lambda r: order[r[0]])
