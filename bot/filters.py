"""Per-chat keyword filters: which words a chat wants or refuses. Pure.

A term is ``+word`` (wanted) or ``-word`` (refused); ``robot*`` is a prefix
(matches "robots", "robotics"), ``"exact phrase"`` is consecutive words. An
article passes a chat's terms when it matches at least one wanted term (if
there are any) and no refused one, in its title, its summary or one of its
own tags.

Matching is case- and accent-insensitive and by whole words. It never runs a
user's pattern: each text is cut into words once (a fixed pattern of word
characters, no backtracking), and a term is compared word by word at each
position, so the work is at most (words of the text) x (words of the term)
comparisons, linear in the text. ``Work`` counts those comparisons, so tests
can check that bound without timing anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.i18n import N_, Translator, translator

MAX_TERMS = 50  # per chat, all categories together
MAX_TERM_LENGTH = 64  # characters, without the sign and the quotes

# Letters and digits; the underscore is not part of a word.
_WORD = re.compile(r"[^\W_]+")
# Phones turn " into typographic quotes; accept those that open and close.
_QUOTES = {'"': '"', "“": "”", "”": "”", "„": "“", "«": "»"}


def words_of(text: str) -> tuple[str, ...]:
    """The words of ``text``, folded: casefold (ß -> ss), then NFKD with the
    combining marks dropped (é -> e, ﬁ -> fi). Folding first, because
    casefolding may itself produce a combining mark (İ -> i + dot)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return tuple(_WORD.findall(plain))


@dataclass(frozen=True, slots=True)
class Term:
    include: bool  # + : the chat wants it; - : the chat refuses it
    words: tuple[str, ...]  # folded, never empty
    prefix: bool  # the last word is a prefix ("robot*")
    text: str  # as the user wrote it, without the sign: robot*, "exact phrase"

    @property
    def signed(self) -> str:
        return ("+" if self.include else "-") + self.text


@dataclass(frozen=True, slots=True)
class ChatFilter:
    category_id: str | None  # None: every category of the chat
    term: Term


@dataclass(frozen=True, slots=True)
class RefusedTerm:
    text: str  # as written, with its sign
    # Why, in English with {named} placeholders filled from ``params``;
    # translated where shown (``explained``).
    template: str
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.explained()

    def explained(self, t: Translator | None = None) -> str:
        text = (t or translator(None)).gettext(self.template)
        return text.format(**self.params) if self.params else text


def parse_term(raw: str) -> Term | RefusedTerm:
    """``+word``, ``-word``, ``+prefix*``, ``+"exact phrase"`` (or -)."""
    raw = raw.strip()
    if len(raw) < 2 or raw[0] not in "+-":
        return RefusedTerm(raw, N_('put + or - before it, e.g. +mars or -"stock market"'))
    include = raw[0] == "+"
    body = raw[1:]
    quoted = body[0] in _QUOTES
    if quoted:
        closing = _QUOTES[body[0]]
        if len(body) < 2 or body[-1] not in (closing, '"'):
            return RefusedTerm(raw, N_("the phrase needs a closing quote"))
        inner = body[1:-1].strip()
    else:
        inner = body
    if not inner:
        return RefusedTerm(raw, N_("it is empty"))
    if len(inner) > MAX_TERM_LENGTH:
        return RefusedTerm(raw, N_("it is longer than {max} characters"), {"max": MAX_TERM_LENGTH})
    prefix = inner.endswith("*")
    stem = inner.rstrip("*") if prefix else inner
    if "*" in stem:
        return RefusedTerm(raw, N_("only a * at the end is allowed (robot* matches robots)"))
    words = words_of(stem)
    if not words:
        return RefusedTerm(raw, N_("it has no letters or digits, so it can never match"))
    if prefix and not words_of(stem[-1]):
        return RefusedTerm(raw, N_("a * must follow a letter or digit (robot*)"))
    text = f'"{" ".join(stem.split())}{"*" if prefix else ""}"' if quoted else inner
    return Term(include, words, prefix, text)


@dataclass(slots=True)
class Work:
    """Word comparisons made while matching; see the module's docstring."""

    comparisons: int = 0


@dataclass(frozen=True, slots=True)
class ArticleText:
    """What filters look at: the title, the summary and the entry's own tags,
    each a separate text (a phrase never spans the title and the summary)."""

    title: str = ""
    summary: str = ""
    tags: tuple[str, ...] = ()
    _fields: list[tuple[str, ...]] = field(default_factory=list, compare=False, repr=False)

    def fields(self) -> list[tuple[str, ...]]:
        """The words of each text, cut once however many terms look at them."""
        if not self._fields:
            self._fields.extend(words_of(t) for t in (self.title, self.summary, *self.tags))
        return self._fields


def _occurs(words: Sequence[str], term: Term, work: Work) -> bool:
    wanted = term.words
    last = len(wanted) - 1
    for start in range(len(words) - last):
        for offset, word in enumerate(wanted):
            work.comparisons += 1
            found = words[start + offset]
            if found == word or (term.prefix and offset == last and found.startswith(word)):
                continue
            break
        else:
            return True
    return False


def matches(term: Term, text: ArticleText, work: Work | None = None) -> bool:
    """Whether ``term``'s words occur, in order and adjacent, in one of the
    article's texts."""
    counter = work if work is not None else Work()
    return any(_occurs(words, term, counter) for words in text.fields())


def passes(terms: Iterable[Term], text: ArticleText, work: Work | None = None) -> bool:
    """At least one wanted term (if there are any) and no refused one."""
    wanted = False
    any_wanted = False
    for term in terms:
        if term.include:
            any_wanted = True
            if not wanted and matches(term, text, work):
                wanted = True
        elif matches(term, text, work):
            return False
    return wanted or not any_wanted


def terms_for(filters: Iterable[ChatFilter], category_id: str | None) -> list[Term]:
    """The terms that apply to a chat's cards of ``category_id``: its own and
    those of every category (only the latter for None)."""
    return [f.term for f in filters if f.category_id is None or f.category_id == category_id]


def passes_in_any(
    filters: Sequence[ChatFilter], categories: Sequence[str], text: ArticleText
) -> bool:
    """Whether an article in ``categories`` passes the chat's terms in at
    least one of them, as routing would send it (a filtered /latest)."""
    if not filters:
        return True
    return any(passes(terms_for(filters, c), text) for c in categories or (None,))


def split_arguments(text: str) -> list[str] | RefusedTerm:
    """The arguments of a ``/filter`` command: separated by spaces, except
    that a quoted phrase after + or - is one argument, spaces and all."""
    arguments: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        if text[position].isspace():
            position += 1
            continue
        start = position
        if text[position] in "+-" and position + 1 < length and text[position + 1] in _QUOTES:
            closing = _QUOTES[text[position + 1]]
            end = position + 2
            while end < length and text[end] not in (closing, '"'):
                end += 1
            if end >= length:
                return RefusedTerm(text[start:].strip(), N_("the phrase needs a closing quote"))
            position = end + 1
            arguments.append(text[start:position])
            continue
        while position < length and not text[position].isspace():
            position += 1
        arguments.append(text[start:position])
    return arguments
