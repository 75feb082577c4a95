"""Feed discovery: the URL someone gives may be a site's page, not its feed.

- A body that parses as a feed is the feed itself.
- An HTML page names its feeds in ``<link rel="alternate" type="...">``
  (RSS, Atom, RDF, JSON Feed types); those are read with the stdlib
  ``html.parser`` from the first ``MAX_HTML_BYTES`` of the page only.
- Failing that, the usual paths of the site (``COMMON_PATHS``) are tried, and
  the first that is a feed is taken (``/feed`` and ``/rss`` are mostly the same
  feed under two names).

Every candidate is fetched and parsed before it is offered, so what the
operator sees (title, item count, newest headlines, the categories its own
tags would map to) is what the bot will poll. The reading of HTML, the
candidate URLs and the summary of a parsed feed are pure; fetching and parsing
are handed in, so discovery obeys exactly the rules of the fetcher it is given
(``bot.netguard`` for feeds added at runtime).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from bot.categorize import Categorizer
from bot.errors import NewsbotError
from bot.parsed import ParsedFeed
from bot.text import cut_at_word

MAX_HTML_BYTES = 512 * 1024  # of a page, read for its <link> tags
MAX_LINKS = 5  # alternate feeds of one page that are fetched
MAX_URL_LENGTH = 2000
NEWEST_SHOWN = 3
COMMON_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml")
FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",  # JSON Feed 1.0 pages said this
        "application/xml",
        "text/xml",
    }
)


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str
    title: str
    type: str


class _LinkCollector(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.links: list[FeedLink] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base":
            href = dict(attrs).get("href")
            if href:
                self.base_url = urljoin(self.base_url, href.strip())
            return
        if tag != "link":
            return
        values = {name: (value or "") for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        kind = values.get("type", "").split(";", 1)[0].strip().lower()
        href = values.get("href", "").strip()
        if "alternate" not in rel or kind not in FEED_TYPES or not href:
            return
        if kind == "application/json" and "feed" not in href.lower():
            return  # an API endpoint, not a JSON Feed, on most pages
        url = _absolute_http(href, self.base_url)
        if url is not None:
            self.links.append(FeedLink(url, values.get("title", "").strip()[:200], kind))

    def handle_endtag(self, tag: str) -> None:
        pass


def _absolute_http(href: str, base: str) -> str | None:
    try:
        url = urljoin(base, href)
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL_LENGTH:
        return None
    return urlunsplit(parts._replace(fragment=""))


def feed_links(body: bytes, page_url: str) -> list[FeedLink]:
    """The feeds an HTML page names in ``<link rel="alternate">``, absolute,
    each URL once, in the page's order. Reads at most ``MAX_HTML_BYTES``."""
    text = body[:MAX_HTML_BYTES].decode("utf-8", errors="replace")
    collector = _LinkCollector(page_url)
    try:
        collector.feed(text)
        collector.close()
    except (AssertionError, ValueError):
        pass  # html.parser gives up on some broken markup; keep what it read
    seen: set[str] = set()
    links = []
    for link in collector.links:
        if link.url not in seen:
            seen.add(link.url)
            links.append(link)
    return links


def common_feed_urls(page_url: str) -> list[str]:
    """The usual feed paths at the root of the page's site."""
    parts = urlsplit(page_url)
    return [urlunsplit((parts.scheme, parts.netloc, path, "", "")) for path in COMMON_PATHS]


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """A web page rather than a feed: said so by its type, or, when the type
    says nothing useful, by how it starts."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if "html" in kind:
        return True
    if kind in FEED_TYPES or kind.endswith(("+xml", "+json")):
        return False
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


@dataclass(frozen=True, slots=True)
class FoundFeed:
    """A feed that was fetched and parsed: what the operator decides on."""

    url: str
    title: str
    items: int
    newest: tuple[str, ...]  # up to NEWEST_SHOWN headlines, newest first
    suggested_categories: tuple[str, ...]  # from its entries' own tags, most used first


def describe_feed(url: str, feed: ParsedFeed, categorizer: Categorizer) -> FoundFeed:
    """What a parsed feed would bring. Categories come from the entries' own
    tags only (through the categories' ids, titles and aliases), not from
    keywords: those act on every article anyway."""
    # Newest first; entries without a date after, in the feed's order.
    ordered = sorted(
        feed.entries,
        key=lambda e: (e.published is not None, e.published.timestamp() if e.published else 0.0),
        reverse=True,
    )
    newest = tuple(cut_at_word(e.title, 150) for e in ordered[:NEWEST_SHOWN])
    counts: Counter[str] = Counter()
    for entry in feed.entries:
        counts.update(categorizer.categorize((), entry.tags, "", ""))
    suggested = tuple(category for category, _ in counts.most_common())
    return FoundFeed(
        url=url,
        title=feed.title or url,
        items=len(feed.entries),
        newest=newest,
        suggested_categories=suggested,
    )


class DiscoveryError(NewsbotError):
    """No feed at a URL; the message says what was tried and why it failed."""


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects
    body: bytes
    content_type: str | None


Fetch = Callable[[str], Awaitable[Fetched]]  # raises NewsbotError (FetchError)
Parse = Callable[[bytes, str, str | None], Awaitable[ParsedFeed]]  # raises ParseError


async def discover(
    url: str, fetch: Fetch, parse: Parse, categorizer: Categorizer
) -> tuple[FoundFeed, ...]:
    """The feeds at ``url``: itself when it is one, else the page's alternate
    feeds that work, else the first usual path that is a feed. Raises
    ``DiscoveryError`` naming every problem when there is none."""
    try:
        page = await fetch(url)
    except NewsbotError as error:
        raise DiscoveryError(f"cannot fetch {url}: {error}") from None
    html = looks_like_html(page.body, page.content_type)
    if not html:
        try:
            return (
                describe_feed(
                    url, await parse(page.body, page.url, page.content_type), categorizer
                ),
            )
        except NewsbotError as error:
            raise DiscoveryError(f"{url} is neither a feed nor a web page: {error}") from None
    problems: list[str] = []
    found: list[FoundFeed] = []
    for link in feed_links(page.body, page.url)[:MAX_LINKS]:
        candidate = await _try(link.url, fetch, parse, categorizer, problems)
        if candidate is not None and candidate.url not in {f.url for f in found}:
            found.append(candidate)
    if found:
        return tuple(found)
    for candidate_url in common_feed_urls(page.url):
        candidate = await _try(candidate_url, fetch, parse, categorizer, problems, quiet=True)
        if candidate is not None:
            return (candidate,)
    detail = "; ".join(problems[:MAX_LINKS]) if problems else "no feed links on the page"
    raise DiscoveryError(
        f'no feed found at {url} (looked for <link rel="alternate"> feeds and at '
        f"{', '.join(COMMON_PATHS)}): {detail}"
    )


async def _try(
    url: str,
    fetch: Fetch,
    parse: Parse,
    categorizer: Categorizer,
    problems: list[str],
    *,
    quiet: bool = False,
) -> FoundFeed | None:
    """One candidate, or None with its problem noted (the usual paths are
    guesses: a 404 there is no news, so ``quiet`` keeps only refusals)."""
    try:
        fetched = await fetch(url)
        if looks_like_html(fetched.body, fetched.content_type):
            raise DiscoveryError("a web page, not a feed")
        return describe_feed(
            url, await parse(fetched.body, fetched.url, fetched.content_type), categorizer
        )
    except NewsbotError as error:
        text = str(error)
        if not quiet or "refused" in text:
            problems.append(f"{url}: {text}")
        return None
