"""Keyword filters: parsing terms, matching words, and the work it takes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import CategoryConfig
from bot.filters import (
    MAX_TERM_LENGTH,
    ArticleText,
    ChatFilter,
    RefusedTerm,
    Term,
    Work,
    matches,
    parse_term,
    passes,
    passes_in_any,
    split_arguments,
    terms_for,
    words_of,
)
from bot.route import ChatRouting, Delivery, Subscription, route
from bot.telegram.args import Problem
from bot.telegram.filter_args import AddFilters, ClearFilters, ListFilters, parse_filter


def term(raw: str) -> Term:
    parsed = parse_term(raw)
    assert isinstance(parsed, Term), parsed
    return parsed


def text(title: str = "", summary: str = "", *tags: str) -> ArticleText:
    return ArticleText(title, summary, tuple(tags))


# -- words -------------------------------------------------------------------


def test_words_are_folded_for_case_and_accents() -> None:
    assert words_of("Café CRÈME, Straße; İstanbul ﬁnal") == (
        "cafe",
        "creme",
        "strasse",
        "istanbul",
        "final",
    )


def test_punctuation_and_underscores_separate_words() -> None:
    assert words_of("e-mail: snake_case (v2.0)!") == ("e", "mail", "snake", "case", "v2", "0")


# -- parsing terms -----------------------------------------------------------


def test_a_plain_term_a_prefix_and_a_phrase_parse() -> None:
    assert term("+Robot") == Term(True, ("robot",), False, "Robot")
    assert term("-robot*") == Term(False, ("robot",), True, "robot*")
    assert term('+"Space   Station"') == Term(True, ("space", "station"), False, '"Space Station"')
    assert term("+“très bien”") == Term(True, ("tres", "bien"), False, '"très bien"')
    assert term('-"space x*"').prefix


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("robot", "put + or - before it"),
        ("+", "put + or - before it"),
        ("+!!!", "no letters or digits"),
        ('+"..."', "no letters or digits"),
        ("+*", "no letters or digits"),
        ('+""', "it is empty"),
        ('+"   "', "it is empty"),
        ('+"open phrase', "closing quote"),
        ("+ro*bot", "only a * at the end"),
        ("+c++*", "a * must follow a letter or digit"),
        ("+" + "a" * (MAX_TERM_LENGTH + 1), f"longer than {MAX_TERM_LENGTH} characters"),
    ],
)
def test_a_term_that_cannot_match_is_refused_with_a_reason(raw: str, reason: str) -> None:
    refused = parse_term(raw)
    assert isinstance(refused, RefusedTerm)
    assert reason in refused.reason
    assert refused.text == raw.strip()


def test_a_term_of_exactly_the_longest_length_is_accepted() -> None:
    assert isinstance(parse_term("+" + "a" * MAX_TERM_LENGTH), Term)


def test_arguments_keep_a_quoted_phrase_together() -> None:
    assert split_arguments(' @chan  space +mars -"stock  market" +“très bien” ') == [
        "@chan",
        "space",
        "+mars",
        '-"stock  market"',
        "+“très bien”",
    ]
    refused = split_arguments('+mars -"no end')
    assert isinstance(refused, RefusedTerm)
    assert "closing quote" in refused.reason


# -- matching ----------------------------------------------------------------


def test_whole_words_only_unless_the_term_is_a_prefix() -> None:
    article = text("Robotics lab opens")
    assert not matches(term("+robot"), article)
    assert matches(term("+robot*"), article)
    assert matches(term("+robotics"), article)
    assert not matches(term("+labz*"), article)


def test_matching_ignores_case_and_accents_both_ways() -> None:
    assert matches(term("+cafe"), text("Le CAFÉ du coin"))
    assert matches(term("+Café"), text("cafe culture"))
    assert matches(term("+strasse"), text("Straße closed"))


def test_a_phrase_matches_consecutive_words_only() -> None:
    phrase = term('+"space station"')
    assert matches(phrase, text("The Space-Station crew"))
    assert not matches(phrase, text("space and station"))
    assert not matches(phrase, text("space", "station"))  # never across title and summary
    assert matches(term('+"space stat*"'), text("space stations"))


def test_the_summary_and_each_tag_are_matched() -> None:
    assert matches(term("+mars"), text("Rover news", "Landing on Mars"))
    assert matches(term('+"space exploration"'), text("News", "", "Science", "Space exploration"))
    assert not matches(term('+"science space"'), text("News", "", "Science", "Space"))


def test_an_article_passes_one_wanted_term_and_no_refused_one() -> None:
    wanted = [term("+mars"), term("+moon")]
    assert passes(wanted, text("Moon base"))
    assert not passes(wanted, text("Venus probe"))
    assert passes([term("-rumor*")], text("Venus probe"))
    assert not passes([term("-rumor*")], text("Rumored Venus probe"))
    assert not passes([*wanted, term("-rumor*")], text("Moon rumors"))
    assert passes([], text("anything"))
    assert not passes([term("+mars")], ArticleText())


def test_category_terms_apply_with_the_terms_of_every_category() -> None:
    filters = [
        ChatFilter(None, term("-rumor")),
        ChatFilter("space", term("+mars")),
        ChatFilter("science", term("+physics")),
    ]
    assert terms_for(filters, "space") == [term("-rumor"), term("+mars")]
    assert terms_for(filters, None) == [term("-rumor")]
    assert passes_in_any(filters, ["science", "space"], text("Mars physics"))
    assert not passes_in_any(filters, ["space"], text("Mars rumor"))
    assert passes_in_any(filters, [], text("Venus"))
    assert passes_in_any([], ["space"], text("Anything"))


def test_route_skips_a_chat_whose_filters_refuse_the_article() -> None:
    subscriptions = [Subscription(1, "space"), Subscription(2, "space"), Subscription(3, "space")]
    chats = {
        1: ChatRouting(1, True),
        2: ChatRouting(2, True, (ChatFilter(None, term("+mars")),)),
        3: ChatRouting(3, True, (ChatFilter("space", term("-launch")),)),
    }
    assert route(("space",), subscriptions, chats, text("Mars launch")) == [
        Delivery(1, "space"),
        Delivery(2, "space"),
    ]
    assert route(("space",), subscriptions, chats, text("Venus flyby")) == [
        Delivery(1, "space"),
        Delivery(3, "space"),
    ]


def test_route_picks_the_first_category_whose_filters_pass() -> None:
    subscriptions = [Subscription(1, "space"), Subscription(1, "science")]
    chats = {1: ChatRouting(1, True, (ChatFilter("space", term("+moon")),))}
    assert route(("space", "science"), subscriptions, chats, text("Mars probe")) == [
        Delivery(1, "science")
    ]
    assert route(("space", "science"), subscriptions, chats, text("Moon probe")) == [
        Delivery(1, "space")
    ]


# -- the /filter command -----------------------------------------------------

CATEGORIES = [
    CategoryConfig(id="space", title="Space"),
    CategoryConfig(id="ai_robotics", title="AI and Robotics"),
]


def test_filter_arguments_name_a_category_then_terms() -> None:
    assert parse_filter([], CATEGORIES) == ListFilters(None)
    assert parse_filter(["space"], CATEGORIES) == ListFilters(CATEGORIES[0])
    assert parse_filter(["clear"], CATEGORIES) == ClearFilters(None)
    assert parse_filter(["CLEAR", "ai", "and", "robotics"], CATEGORIES) == ClearFilters(
        CATEGORIES[1]
    )
    added = parse_filter(["space", "+mars", "-rumor*", "+Mars", "+!!"], CATEGORIES)
    assert isinstance(added, AddFilters)
    assert added.category == CATEGORIES[0]
    assert [t.signed for t in added.terms] == ["+mars", "-rumor*"]
    assert [r.text for r in added.refused] == ["+!!"]
    mixed = parse_filter(["+mars", "moon"], CATEGORIES)
    assert isinstance(mixed, AddFilters)
    assert [r.text for r in mixed.refused] == ["moon"]


def test_filter_arguments_with_an_unknown_or_second_category_are_a_problem() -> None:
    unknown = parse_filter(["spaec", "+mars"], CATEGORIES)
    assert isinstance(unknown, Problem)
    assert "spaec" in unknown.message
    assert isinstance(parse_filter(["space", "ai_robotics", "+mars"], CATEGORIES), Problem)
    assert isinstance(parse_filter(["clear", "+mars"], CATEGORIES), Problem)
    assert isinstance(parse_filter(["+a"] * 100, CATEGORIES), Problem)


# -- properties --------------------------------------------------------------

_ALPHABET = st.sampled_from(list("aAbBéÉeßs \t-_.'\"*+“”\u0301İı1"))
any_text = st.text(_ALPHABET, max_size=40) | st.text(max_size=40)


def _reference(term: Term, field: tuple[str, ...]) -> bool:
    """Brute force on strings: the term's words, space-joined, found at a
    word start of the field's words (and at a word end unless a prefix)."""
    haystack = " " + " ".join(field) + " "
    needle = " " + " ".join(term.words) + ("" if term.prefix else " ")
    return needle in haystack


@given(any_text, any_text, st.lists(any_text, max_size=3), st.lists(any_text, max_size=6))
def test_any_text_and_any_terms_never_raise(
    title: str, summary: str, tags: list[str], raw_terms: list[str]
) -> None:
    article = ArticleText(title, summary, tuple(tags))
    parsed = [parse_term(sign + raw) for raw in raw_terms for sign in "+-"]
    terms = [p for p in parsed if isinstance(p, Term)]
    assert isinstance(passes(terms, article), bool)
    assert all(isinstance(p, Term | RefusedTerm) for p in parsed)
    assert isinstance(split_arguments(" ".join(raw_terms)), list | RefusedTerm)


@given(any_text, any_text, st.lists(any_text, max_size=2), any_text, st.booleans())
def test_matching_agrees_with_brute_force_and_is_linear(
    title: str, summary: str, tags: list[str], raw: str, star: bool
) -> None:
    parsed = parse_term("+" + raw.replace("*", "") + ("*" if star else ""))
    if not isinstance(parsed, Term):
        return
    article = ArticleText(title, summary, tuple(tags))
    work = Work()
    found = matches(parsed, article, work)
    assert found == any(_reference(parsed, field) for field in article.fields())
    # At most one comparison per word of the text and word of the term.
    assert work.comparisons <= sum(len(f) for f in article.fields()) * len(parsed.words)


def test_the_work_grows_linearly_with_the_text() -> None:
    """A text of near-misses, the worst case for a naive phrase search."""
    phrase = term('+"a a a a a a a b"')
    counts = []
    for size in (1_000, 2_000, 4_000):
        work = Work()
        assert not matches(phrase, text(" ".join(["a"] * size)), work)
        counts.append(work.comparisons)
        assert work.comparisons <= size * len(phrase.words)
    assert counts[2] - counts[1] == 2 * (counts[1] - counts[0])
