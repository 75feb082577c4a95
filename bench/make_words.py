"""Rebuild ``bench/words.txt`` (word and count per line) from English feeds.

The synthetic feeds and the search queries draw words from this list with
their real frequencies, so posting-list lengths in the search index look like
those of real news text (a few very common words, a long tail)::

    python -m bench.make_words /path/to/feeds/real > bench/words.txt
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

import feedparser

from bot.text import html_to_text

# English-language files of the shared real-feed corpus, by name prefix.
ENGLISH = (
    "wordpress-",
    "ghost-",
    "rss-news-wapo",
    "rss-news-bbc-front",
    "rss-news-nytimes",
    "rss-news-reuters",
    "rss-news-npr",
    "rss-news-nasa",
    "rss-news-googlenews",
    "rss-news-japantimes",
    "rss-news-ctvnews",
    "rss-mediarss-",
    "atom-theverge",
    "atom-daringfireball",
    "atom-arxiv",
    "atom-blogger",
    "atom-html-entities",
    "malformed-guardian",
    "rss-substack",
    "rss-medium",
    "rss-hackernews",
)
_WORD = re.compile(r"[A-Za-z]+")


def count_words(folder: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(ENGLISH):
            continue
        data = feedparser.parse(path.read_bytes())
        for entry in data.entries:
            parts = [html_to_text(entry.get("title"))[0], html_to_text(entry.get("summary"))[0]]
            parts += [html_to_text(c.get("value"))[0] for c in entry.get("content") or ()]
            for word in _WORD.findall(" ".join(parts)):
                if len(word) > 1 or word in ("a", "I"):
                    counts[word.lower()] += 1
    return counts


def main() -> None:
    counts = count_words(Path(sys.argv[1]))
    for word, count in counts.most_common():
        if count >= 2:
            print(word, count)


if __name__ == "__main__":
    main()
