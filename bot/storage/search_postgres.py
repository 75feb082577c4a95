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

The newest matches of a broad query are looked for among the newest
articles first, in slices of ids (``PostgresSearch._newest_matches``), so a
common word costs the rows of its recent matches, not of all of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from bot.errors import StorageError
from bot.models import Article
from bot.storage.db import Database, Row, Tx
from bot.storage.rows import ARTICLE_COLUMNS, article_from_row
from bot.storage.search_query import MAX_TOKEN_LENGTH, MAX_TOKENS, MIN_PREFIX_LENGTH

log = logging.getLogger(__name__)

SELECTIVE = 100
CANDIDATES = 1000
MAX_EXPANSIONS = 64
# A broad query's newest matches are looked for among this many newest ids
# first (``next_window`` sizes the next look).
FIRST_WINDOW = 4 * CANDIDATES
# A slice of at most this many ids is read row by row rather than through
# GIN (about a microsecond a row, against a bitmap costing in proportion to
# the words' posting lists: 70 ms for two words in a fifth of the articles).
SCANNED_WINDOW = 48 * CANDIDATES
# How many times more matches than wanted a window is sized to hold, for the
# density measured in a smaller one being a sample.
WINDOW_MARGIN = 1.5


def next_window(found: int, window: int, newest_id: int, wanted: int) -> int | None:
    """How many of the newest ids to look among next, after the newest
    ``window`` held ``found`` of the ``wanted`` matches; None: all of them.

    The matches are taken to be spread evenly over the ids: the next window
    should hold ``wanted`` of them with ``WINDOW_MARGIN`` to spare. When the
    density says the whole table holds fewer than ``2 * wanted`` (none at all
    in the window, for one), reading all of them costs less than another
    look; a window at least doubles, so the looks end.
    """
    if found * newest_id < 2 * wanted * window:
        return None
    grown = max(math.ceil(window * wanted * WINDOW_MARGIN / found), 2 * window)
    return None if grown >= newest_id else grown


def _id_slice(lowest: int | None, highest: int | None) -> tuple[str, list[int]]:
    """SQL for ``lowest < id <= highest`` (either bound may be absent)."""
    conditions, args = ["TRUE"], []
    if lowest is not None:
        conditions.append("id > ?")
        args.append(lowest)
    if highest is not None:
        conditions.append("id <= ?")
        args.append(highest)
    return " AND ".join(conditions[1:] or conditions), args


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
        try:
            # One transaction for the search's statements: each statement of
            # its own would cost a pool checkout, BEGIN and COMMIT.
            async with self._db.transaction() as tx:
                rows = await self._search(
                    tx, terms, query_pieces(text)[-1], category_id, limit, offset
                )
        except StorageError as error:
            # The query builder makes this unreachable for any input we know
            # of; should PostgreSQL still object, the user sees "no results".
            log.warning("storage: search %r failed: %s", query, error)
            return []
        return [article_from_row(r) for r in rows]

    async def _search(
        self,
        tx: Tx,
        terms: list[str],
        last_piece: str,
        category_id: str | None,
        limit: int,
        offset: int,
    ) -> list[Row]:
        # Parsed once, here: inside the statements ``to_tsquery(...)`` of a
        # parameter would be parsed again for every row it is tested on
        # (23,000 rows for two common words), and as a constant the planner
        # sees which words it holds.
        queries = [" & ".join(terms), " & ".join(terms[:-1]), *(title_tsquery(t) for t in terms)]
        parsed_row = await tx.fetchrow(
            "SELECT (SELECT max(id) FROM articles), "
            + ", ".join("to_tsquery('simple', unaccent(?))::text" for _ in queries),
            *queries,
        )
        assert parsed_row is not None
        newest_id, parsed, parsed_head, *title_terms = parsed_row
        if newest_id is None:
            return []
        match, match_args = await self._match(tx, terms, last_piece, (parsed, parsed_head))
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
        in_title = " + ".join("(n.search @@ ?::tsquery)::int" for _ in terms)
        newest = await self._newest_matches(
            tx, newest_id, in_title, [str(t) for t in title_terms], match, match_args
        )
        if not newest:
            return []
        dialect = self._db.dialect
        if len(newest) <= SELECTIVE:
            # Every match is here: rank them all (title weighed over
            # summary), newest first on ties.
            return await tx.fetch(
                f"""
                SELECT {ARTICLE_COLUMNS}
                FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
                WHERE {dialect.in_ids("a.id")}
                ORDER BY ts_rank(a.search, ?::tsquery) DESC, a.published_at DESC, a.id DESC
                LIMIT ? OFFSET ?
                """,
                dialect.ids(r[0] for r in newest),
                parsed,
                limit,
                offset,
            )
        return await self._rank_broad_matches(tx, newest[:CANDIDATES], limit, offset)

    async def _newest_matches(
        self,
        tx: Tx,
        newest_id: int,
        in_title: str,
        title_terms: list[str],
        match: str,
        match_args: list[str],
    ) -> list[Row]:
        """The newest ``CANDIDATES + 1`` matches (id, published_at, title
        words), newest first, looked for among the newest articles first.

        Picking the newest matches out of all of them reads every match's
        row (15,000 heap pages for a category and a common word at a million
        articles), and the planner's other way, the primary key walked
        backwards with every row's vector tested, reads a hundred thousand
        rows (450 ms) for a word rarer than its statistics say. So the ids
        are taken in slices, newest first, each one older than the last,
        until enough matches are found: the first ``FIRST_WINDOW`` ids, then
        as many as the density found so far says hold the rest
        (``next_window``), the last slice being all older ids. Matches of
        newer slices are newer than any of an older one, so the result is the
        one the whole table gives.

        A slice of up to ``SCANNED_WINDOW`` ids is read in id order, newest
        first, each row's vector tested, stopping at the last match wanted:
        about a microsecond a row, whatever the words. A wider one is GIN's
        bitmap of the matches ANDed with the slice's block ranges
        (``articles_id_blocks``), so only rows in it are read; the bitmap
        costs in proportion to the words' posting lists, which for the rare
        words a wide slice is for are short.
        """
        wanted = CANDIDATES + 1
        found: list[Row] = []
        seen = 0  # the newest ids looked among so far
        window: int | None = FIRST_WINDOW
        while True:
            lowest = None if window is None or window >= newest_id else newest_id - window
            bounds, bound_args = _id_slice(lowest, newest_id - seen if seen else None)
            if window is not None and window <= SCANNED_WINDOW:
                rows = await tx.fetch(
                    f"""
                    SELECT n.id, n.published_at, {in_title}
                    FROM (
                        SELECT id, published_at, search FROM articles
                        WHERE {bounds} ORDER BY id DESC OFFSET 0
                    ) AS n
                    WHERE n.search @@ {match}
                    ORDER BY n.id DESC LIMIT ?
                    """,
                    *title_terms,
                    *bound_args,
                    *match_args,
                    wanted - len(found),
                )
            else:
                # All matches of the slice first, then the newest of them:
                # left to pick, the planner may walk the primary key instead.
                rows = await tx.fetch(
                    f"""
                    WITH slice_matches AS MATERIALIZED (
                        SELECT id, published_at, search FROM articles
                        WHERE search @@ {match} AND {bounds}
                    )
                    SELECT n.id, n.published_at, {in_title}
                    FROM (
                        SELECT id, published_at, search FROM slice_matches
                        ORDER BY id DESC LIMIT ?
                    ) AS n
                    ORDER BY n.id DESC
                    """,
                    *match_args,
                    *bound_args,
                    *title_terms,
                    wanted - len(found),
                )
            found += rows
            if len(found) >= wanted or lowest is None or window is None:
                return found
            seen = window
            window = next_window(len(found), window, newest_id, wanted)

    async def _match(
        self, tx: Tx, terms: list[str], last_piece: str, parsed: tuple[str, str]
    ) -> tuple[str | None, list[str]]:
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
        whole, head = parsed
        if not terms[-1].endswith(":*"):
            return "?::tsquery", [whole]
        row = await tx.fetchrow(
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
            return "?::tsquery", [whole]
        if not words:
            return None, []
        expanded = "(" + " | ".join(_quoted(w) for w in words) + ")"
        if len(terms) == 1:
            return "?::tsquery", [expanded]
        return "(?::tsquery && ?::tsquery)", [head, expanded]

    async def _rank_broad_matches(
        self, tx: Tx, candidates: Sequence[Row], limit: int, offset: int
    ) -> list[Row]:
        """As on SQLite: the candidates by how many of the query's words
        their title holds, then newest first."""
        ranked = sorted(candidates, key=lambda r: (-r[2], -r[1], -r[0]))
        page = [r[0] for r in ranked[offset : offset + limit]]
        if not page:
            return []
        dialect = self._db.dialect
        rows = await tx.fetch(
            f"""
            SELECT {ARTICLE_COLUMNS}
            FROM articles AS a JOIN feeds AS f ON f.id = a.feed_id
            WHERE {dialect.in_ids("a.id")}
            """,
            dialect.ids(page),
        )
        order = {article_id: position for position, article_id in enumerate(page)}
        return sorted(rows, key=lambda r: order[r[0]])
