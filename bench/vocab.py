"""Words with real-world frequencies (``words.txt``), for synthetic text and
for search queries that look like what people type."""

from __future__ import annotations

import itertools
import random
import re
from functools import cache
from pathlib import Path

_WORDS_FILE = Path(__file__).with_name("words.txt")

# Words nobody searches for; query pairs are drawn from the other words.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves s t don re ve ll d m one two new like get
    via us use using used may even much many make made way well still really via its it's
    """.split()
)
_QUERY_WORD = re.compile(r"[a-z]{4,}")


class Vocabulary:
    def __init__(self, words: list[str], weights: list[int]) -> None:
        self.words = words
        self.cum_weights = list(itertools.accumulate(weights))

    def sample(self, rng: random.Random, count: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum_weights, k=count)

    def sentence(self, rng: random.Random, count: int) -> str:
        words = self.sample(rng, count)
        return " ".join(words).capitalize() + "."

    def title(self, rng: random.Random) -> str:
        # Headlines carry fewer function words than body text.
        words = [w for w in self.sample(rng, 14) if w not in STOPWORDS][: rng.randint(5, 9)]
        words = words or ["update"]
        return " ".join(w.capitalize() if i == 0 or len(w) > 3 else w for i, w in enumerate(words))


@cache
def vocabulary() -> Vocabulary:
    words, weights = [], []
    for line in _WORDS_FILE.read_text().splitlines():
        word, _, count = line.partition(" ")
        words.append(word)
        weights.append(int(count))
    return Vocabulary(words, weights)


def query_pairs(texts: list[str], count: int, seed: int = 7) -> list[str]:
    """Two-word queries as a reader would type them: two content words that
    occur together in one stored article (so most queries find something,
    and common words are asked for more often, as in real use)."""
    rng = random.Random(seed)
    queries: list[str] = []
    attempts = 0
    while len(queries) < count and attempts < count * 50:
        attempts += 1
        words = [w for w in _QUERY_WORD.findall(rng.choice(texts).lower()) if w not in STOPWORDS]
        unique = sorted(set(words))
        if len(unique) >= 2:
            first, second = rng.sample(unique, 2)
            queries.append(f"{first} {second}")
    return queries
