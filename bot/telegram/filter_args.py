"""Pure parsing of ``/filter`` (no Telegram calls).

``/filter [@channel] [category] +word -word +"exact phrase"`` adds terms,
``/filter [@channel] [category]`` lists them, ``/filter [@channel] clear
[category]`` removes them. The channel reference has been split off already
(``args.split_target``); every input gives a value or a ``Problem``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.config import CategoryConfig
from bot.filters import MAX_TERMS, RefusedTerm, Term, parse_term
from bot.i18n import N_
from bot.services import resolve_categories
from bot.telegram.args import Problem


@dataclass(frozen=True, slots=True)
class ListFilters:
    category: CategoryConfig | None


@dataclass(frozen=True, slots=True)
class ClearFilters:
    category: CategoryConfig | None  # None: all of the chat's terms


@dataclass(frozen=True, slots=True)
class AddFilters:
    category: CategoryConfig | None  # None: every category
    terms: list[Term] = field(default_factory=list)
    refused: list[RefusedTerm] = field(default_factory=list)


FilterCommand = ListFilters | ClearFilters | AddFilters


def _is_term(argument: str) -> bool:
    return argument[:1] in ("+", "-")


def _category(
    words: Sequence[str], categories: Sequence[CategoryConfig]
) -> CategoryConfig | Problem | None:
    if not words:
        return None
    lookup = resolve_categories(words, categories)
    if len(lookup.found) > 1:
        return Problem(N_("Filters are for one category at a time, e.g. /filter space +mars"))
    if lookup.unknown or not lookup.found:
        return Problem("", unknown=lookup.unknown)
    return lookup.found[0]


def parse_filter(
    arguments: Sequence[str], categories: Sequence[CategoryConfig]
) -> FilterCommand | Problem:
    if len(arguments) > MAX_TERMS + 5:
        return Problem(
            N_("Too many terms at once: a chat has at most {count}."), {"count": MAX_TERMS}
        )
    if arguments and arguments[0].casefold() == "clear":
        if any(_is_term(a) for a in arguments[1:]):
            return Problem(N_("/filter clear removes terms; name a category or nothing after it."))
        found = _category(arguments[1:], categories)
        return found if isinstance(found, Problem) else ClearFilters(found)
    first_term = next((i for i, a in enumerate(arguments) if _is_term(a)), len(arguments))
    found = _category(arguments[:first_term], categories)
    if isinstance(found, Problem):
        return found
    if first_term == len(arguments):
        return ListFilters(found)
    command = AddFilters(found)
    seen: set[tuple[tuple[str, ...], bool]] = set()
    for argument in arguments[first_term:]:
        term = parse_term(argument)
        if isinstance(term, RefusedTerm):
            command.refused.append(term)
        elif (term.words, term.prefix) not in seen:
            seen.add((term.words, term.prefix))
            command.terms.append(term)
    return command
