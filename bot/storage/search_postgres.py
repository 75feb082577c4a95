"""Full-text search on PostgreSQL: a ``tsvector`` column with a GIN index.

The column is set by a trigger in the statement that writes the article
(``schema_postgres``): the title weighted A, the summary B, ``simple``
configuration over ``unaccent``ed text. Any user text is a valid query
(``build_tsquery``): its pieces are quoted operands, ANDed, the last one also a
prefix.

Ranking mirrors SQLite's: a selective query (at most ``SELECTIVE`` matches)
is ranked by ``ts_rank`` (which weighs A over B, the title over the summary),
newest first on ties; a broad one ranks only its ``CANDIDATES`` newest
matches, since ranking every match of a common word in a million articles
costs time in proportion to all of them.
"""

from __future__ import annotations

import logging

from bot.errors import StorageError
from bot.models import Article
from bot.storage.db import Database
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row
from bot.storage.search_query import MAX_TOKEN_LENGTH, MAX_TOKENS, MIN_PREFIX_LENGTH

log = logging.getLogger(__name__)

_IN_CATEGORY = "SELECT article_id FROM article_categories WHERE category_id = ?"

SELECTIVE = 100
CANDIDATES = 1000


def build_tsquery(text: str) -> str | None:
    """``'mars' & 'rover':*`` from "mars rover", or None when no word is left.

    Each whitespace-separated piece of the user's text becomes one quoted
    tsquery operand, which PostgreSQL's own parser splits into lexemes exactly
    as it split the articles ("7-3" is '7' and '-3' there, "don't" is 'don'
    followed by 't'): matching never depends on a tokenizer of ours that
    disagrees with the index. Inside quotes only ' and \\ are special, and
    both are escaped, so no user text is ever read as an operator. The last
    piece, when it is one plain word of three or more characters, also
    matches as a prefix.
    """
    pieces = [
        piece[:MAX_TOKEN_LENGTH]
        for piece in (text or "").split()
        if any(ch.isalnum() for ch in piece)
    ][:MAX_TOKENS]
    if not pieces:
        return None
    terms = ["'" + p.replace("\\", "\\\\").replace("'", "''") + "'" for p in pieces]
    last = pieces[-1]
    if len(last) >= MIN_PREFIX_LENGTH and last.isalnum():
        terms[-1] += ":*"
    return " & ".join(terms)


class PostgresSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search_articles(
        self, text: str, limit: int, offset: int = 0, category_id: str | None = None
    ) -> list[Article]:
        """Best matches first, within ``category_id`` when given. Any text is
        accepted; text without a word gives no results."""
        query = build_tsquery(text)
        if query is None:
            return []
        tsquery = "to_tsquery('simple', unaccent(?))"
        # As on SQLite: the category filters the matches before the
        # selective/broad decision.
        in_category = scoped_in_category = ""
        category_args: list[str] = []
        if category_id is not None:
            in_category = f"AND id IN ({_IN_CATEGORY})"
            scoped_in_category = f"AND a.id IN ({_IN_CATEGORY})"
            category_args = [category_id]
        try:
            newest = await self._db.fetch(
                f"SELECT id FROM articles WHERE search @@ {tsquery} {in_category} "
                "ORDER BY id DESC LIMIT ?",
                query,
                *category_args,
                CANDIDATES + 1,
            )
            if len(newest) <= SELECTIVE:
                scope = f"a.search @@ {tsquery} {scoped_in_category}"
                scope_args: list[object] = [query, *category_args]
            else:
                scope = self._db.dialect.in_ids("a.id")
                scope_args = [self._db.dialect.ids(r[0] for r in newest[:CANDIDATES])]
            rows = await self._db.fetch(
                f"""
                SELECT {ARTICLE_COLUMNS}
                FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
                WHERE {scope}
                ORDER BY ts_rank(a.search, {tsquery}) DESC, a.published_at DESC, a.id DESC
                LIMIT ? OFFSET ?
                """,
                *scope_args,
                query,
                limit,
                offset,
            )
        except StorageError as error:
            # The query builder makes this unreachable for any input we know
            # of; should PostgreSQL still object, the user sees "no results".
            log.warning("storage: search %r failed: %s", query, error)
            return []
        return [article_from_row(r) for r in rows]
