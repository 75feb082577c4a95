"""Turn any user text into a safe full-text query. Pure.

Raw text in MATCH breaks on ordinary input (``C++``, ``7-3``, ``AND``, a lone
``"``, ``title:``, ``(``, ``-x``, ``*``, ``don't``). We keep only word tokens,
quote each one as an FTS5 string (so no token is ever read as an operator or a
column filter), AND them together and allow a prefix match on the last one so
that "spacex laun" finds "launch". Text with no word token gives ``None``: the
caller answers "nothing found" without querying.
"""

from __future__ import annotations

import re

MAX_TOKENS = 8
MAX_TOKEN_LENGTH = 64
MIN_PREFIX_LENGTH = 3
_WORD = re.compile(r"\w+")


def match_tokens(text: str) -> list[str]:
    """The word tokens of ``text`` a search uses (both backends), at most
    ``MAX_TOKENS`` of at most ``MAX_TOKEN_LENGTH`` characters."""
    tokens = []
    for token in _WORD.findall(text or ""):
        token = token.strip("_")[:MAX_TOKEN_LENGTH]
        if token:
            tokens.append(token)
        if len(tokens) == MAX_TOKENS:
            break
    return tokens


def build_match_query(text: str) -> str | None:
    tokens = match_tokens(text)
    if not tokens:
        return None
    quoted = ['"' + token.replace('"', '""') + '"' for token in tokens]
    # A prefix on a one- or two-letter token would match half the index.
    if len(tokens[-1]) >= MIN_PREFIX_LENGTH:
        quoted[-1] += "*"
    return " ".join(quoted)
