"""Full-text search on PostgreSQL: a ``tsvector`` column with a GIN index.

The column is set by a trigger in the statement that writes the article
(``schema_postgres``): the title weighted A, the summary B, ``simple``
configuration over ``unaccent``ed text. Any user text is a valid query
(``build_tsquery``): its pieces are quoted operands, ANDed, the last one also a
prefix.

Ranking mirrors SQLite's: a selective query (at most ``SELECTIVE`` matches)
is ranked by ``ts_rank`` (which weighs A over B, the title over the summary),
newest first on ties; a broad one takes its ``CANDIDATES`` newest matches
and orders them by how many of the query's words their title holds, then
newest first, since ranking every match of a common word in a million
articles costs time in proportion to all of them (``ts_rank`` over even the
thousand newest re-reads each vector: half the time of a broad query).

Within a category the category is one more operand of the match: the vector
holds a lexeme per category of the article (``category_tsquery``), so GIN
intersects it with the words rather than every match of a common word being
read to test its category.

A prefix on the last word is expanded into the indexed words it begins
(``search_lexemes``) and each looked up whole: GIN's own prefix match reads
the posting lists of all those words in full, while whole words let it skip
along the rarest word of the query.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.errors import StorageError
from bot.models import Article
from bot.storage.db import Database, Row
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row
from bot.storage.search_query import MAX_TOKEN_LENGTH, MAX_TOKENS, MIN_PREFIX_LENGTH

log = logging.getLogger(__name__)

SELECTIVE = 100
CANDIDATES = 1000
MAX_EXPANSIONS = 64


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
    terms = tsquery_terms(text)
    return " & ".join(terms) if terms else None


def tsquery_terms(text: str) -> list[str]:
    """The operands ``build_tsquery`` ANDs together, one per piece."""
    pieces = query_pieces(text)
    if not pieces:
        return []
    terms = [_quoted(p) for p in pieces]
    last = pieces[-1]
    if len(last) >= MIN_PREFIX_LENGTH and last.isalnum():
        terms[-1] += ":*"
    return terms


def query_pieces(text: str) -> list[str]:
    """The whitespace-separated pieces of ``text`` a search uses."""
    return [
        piece[:MAX_TOKEN_LENGTH]
        for piece in (text or "").split()
        if any(ch.isalnum() for ch in piece)
    ][:MAX_TOKENS]


def _quoted(operand: str) -> str:
    return "'" + operand.replace("\\", "\\\\").replace("'", "''") + "'"


def title_tsquery(term: str) -> str:
    """``term`` matched in the title only: its lexemes with weight A (the
    trigger weighs the title A, the summary B). ``'mars':A``, ``'rov':*A``."""
    return term + "A" if term.endswith(":*") else term + ":A"


def category_tsquery(category_id: str) -> str:
    """The lexeme the search vector holds for an article in ``category_id``
    (``article_categories_vector`` in the schema), as tsquery input: quoted,
    read as it is, never split by the parser."""
    return _quoted(f"category {category_id}")


class PostgresSearch:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search_articles(
        self, text: str, limit: int, offset: int = 0, category_id: str | None = None
    ) -> list[Article]:
        """Best matches first, within ``category_id`` when given. Any text is
        accepted; text without a word gives no results."""
        terms = tsquery_terms(text)
        if not terms:
            return []
        query = " & ".join(terms)
        tsquery = "to_tsquery('simple', unaccent(?))"
        try:
            match, match_args = await self._match(terms, query_pieces(text)[-1])
        except StorageError as error:
            log.warning("storage: search %r failed: %s", query, error)
            return []
        if match is None:
            return []
        # As on SQLite: the category filters the matches before the
        # selective/broad decision. It is a lexeme of the vector, so GIN
        # intersects it with the words instead of every match of a common
        # word being read to test its category.
        if category_id is not None:
            match = f"({match} && ?::tsquery)"
            match_args = [*match_args, category_tsquery(category_id)]
        # How many of the query's words each candidate's title holds, worked
        # out on the rows the match has already read (a tsvector test, far
        # cheaper than ts_rank) and only for the newest CANDIDATES + 1.
        in_title = " + ".join(f"(n.search @@ {tsquery})::int" for _ in terms)
        try:
            newest = await self._db.fetch(
                f"""
                SELECT n.id, n.published_at, {in_title}
                FROM (
                    SELECT id, published_at, search FROM articles
                    WHERE search @@ {match}
                    ORDER BY id DESC LIMIT ?
                ) AS n
                """,
                *(title_tsquery(term) for term in terms),
                *match_args,
                CANDIDATES + 1,
            )
            if not newest:
                return []
            if len(newest) <= SELECTIVE:
                # Every match is here: rank them all (title weighed over
                # summary), newest first on ties.
                rows = await self._db.fetch(
                    f"""
                    SELECT {ARTICLE_COLUMNS}
                    FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
                    WHERE {self._db.dialect.in_ids("a.id")}
                    ORDER BY ts_rank(a.search, {tsquery}) DESC, a.published_at DESC, a.id DESC
                    LIMIT ? OFFSET ?
                    """,
                    self._db.dialect.ids(r[0] for r in newest),
                    query,
                    limit,
                    offset,
                )
            else:
                rows = await self._rank_broad_matches(newest[:CANDIDATES], limit, offset)
        except StorageError as error:
            # The query builder makes this unreachable for any input we know
            # of; should PostgreSQL still object, the user sees "no results".
            log.warning("storage: search %r failed: %s", query, error)
            return []
        return [article_from_row(r) for r in rows]

    async def _match(self, terms: list[str], last_piece: str) -> tuple[str | None, list[str]]:
        """The tsquery SQL (and its arguments) that finds the matches, or
                None when nothing can match.

                Within a category the category is one more operand of the match: the vector
        holds a lexeme per category of the article (``category_tsquery``), so GIN
        intersects it with the words rather than every match of a common word being
        read to test its category.

        A prefix on the last word is expanded into the indexed words it
                begins (``search_lexemes``), ORed, so GIN looks each up as a whole
                word and skips along the rarest word of the query; only a prefix
                standing for more than ``MAX_EXPANSIONS`` words is left to GIN's own
                prefix match. The expanded words are lexemes already, so they are
                cast to a tsquery as they are (no second normalisation).
        """
        whole = "to_tsquery('simple', unaccent(?))"
        query = " & ".join(terms)
        if not terms[-1].endswith(":*"):
            return whole, [query]
        row = await self._db.fetchrow(
            """
            SELECT cardinality(p.parts), ARRAY(
                SELECT lexeme FROM search_lexemes
                WHERE cardinality(p.parts) = 1
                  AND lexeme >= p.parts[1] COLLATE "C"
                  AND lexeme < (p.parts[1] || chr(1114111)) COLLATE "C"
                ORDER BY lexeme LIMIT ?
            )
            FROM (SELECT tsvector_to_array(to_tsvector('simple', unaccent(?))) AS parts) AS p
            """,
            MAX_EXPANSIONS + 1,
            last_piece,
        )
        assert row is not None
        parts, words = row[0], list(row[1])
        if parts != 1 or len(words) > MAX_EXPANSIONS:
            return whole, [query]
        if not words:
            return None, []
        expanded = "(" + " | ".join(_quoted(w) for w in words) + ")"
        if len(terms) == 1:
            return "?::tsquery", [expanded]
        return f"({whole} && ?::tsquery)", [" & ".join(terms[:-1]), expanded]

    async def _rank_broad_matches(
        self, candidates: Sequence[Row], limit: int, offset: int
    ) -> list[Row]:
        """As on SQLite: the candidates by how many of the query's words
        their title holds, then newest first."""
        ranked = sorted(candidates, key=lambda r: (-r[2], -r[1], -r[0]))
        page = [r[0] for r in ranked[offset : offset + limit]]
        if not page:
            return []
        dialect = self._db.dialect
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
