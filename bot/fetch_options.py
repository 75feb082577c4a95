"""How one feed is fetched beyond its URL: extra headers, basic auth, a proxy.

``FetchOptions`` is plain data handed to ``Fetcher.fetch``, so the HTTP
client underneath can be replaced without touching the configuration.
``options_of(feed)`` builds it from a ``[[feeds]]`` entry (the password read
from the environment variable the entry names) and registers every secret in
it with the log filter; ``shown_options(feed)`` is what listings show: header
names with only harmless values, the auth user and the variable's name, the
proxy without its credentials.

Only the operator's feeds (the configuration file) have options. Feeds added
at runtime are fetched without them, and never through a proxy (not even
one from HTTP_PROXY): the address check that keeps them off private networks
(``bot.netguard``) vets the address the bot connects to, and behind a proxy
that would be the proxy's, not the feed's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.config import FeedConfig
from bot.logs import register_secret

HIDDEN = "<hidden>"
# Header values shown as they are; every other value may be a credential
# (Cookie, Authorization, X-Api-Key, ...) and is hidden.
_HARMLESS_HEADERS = frozenset({"user-agent", "referer", "accept", "accept-language", "from"})
_SHORTEST_REDACTED = 6


@dataclass(frozen=True, slots=True)
class FetchOptions:
    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None  # (username, password)
    proxy: str | None = None  # an http(s):// proxy URL, credentials and all

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every text that must never be shown: what an error is cleaned of."""
        found = [value for name, value in self.headers if name.lower() not in _HARMLESS_HEADERS]
        if self.basic_auth is not None:
            found.append(self.basic_auth[1])
        if self.proxy is not None:
            parts = urlsplit(self.proxy)
            if parts.password:
                found.append(parts.password)
            if parts.username or parts.password:
                found.append(self.proxy)
        return tuple(s for s in found if s)

    def clean(self, text: str) -> str:
        """``text`` (an error message) with every secret of these options hidden."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
        return text


NO_OPTIONS = FetchOptions()


def options_of(feed: FeedConfig) -> FetchOptions:
    options = FetchOptions(
        headers=tuple(feed.headers.items()),
        basic_auth=(feed.auth.username, feed.auth.password()) if feed.auth else None,
        proxy=feed.proxy,
    )
    for secret in options.secrets:
        # A very short one would blank out common words of every log line;
        # errors are cleaned of every secret, short ones too (``clean``).
        if len(secret) >= _SHORTEST_REDACTED:
            register_secret(secret)
    return options


def proxy_without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{HIDDEN}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def shown_options(feed: FeedConfig) -> dict[str, Any]:
    """The feed's options for listings, secrets hidden; empty when it has none."""
    shown: dict[str, Any] = {}
    if feed.interval is not None:
        shown["interval"] = feed.interval
    if feed.max_new_per_round is not None:
        shown["max_new_per_round"] = feed.max_new_per_round
    if feed.headers:
        shown["headers"] = {
            name: value if name.lower() in _HARMLESS_HEADERS else HIDDEN
            for name, value in feed.headers.items()
        }
    if feed.auth is not None:
        shown["auth"] = {"username": feed.auth.username, "password_env": feed.auth.password_env}
    if feed.proxy is not None:
        shown["proxy"] = proxy_without_credentials(feed.proxy)
    return shown


def options_text(shown: dict[str, Any]) -> str:
    """``shown_options`` on one line: "headers: User-Agent, Cookie; auth: u; ..."."""
    parts = []
    if "interval" in shown:
        parts.append(f"every {shown['interval']:g}s")
    if "max_new_per_round" in shown:
        parts.append(f"at most {shown['max_new_per_round']} new per round")
    if "headers" in shown:
        parts.append("headers: " + ", ".join(shown["headers"]))
    if "auth" in shown:
        auth = shown["auth"]
        parts.append(f"basic auth: {auth['username']} (password from ${auth['password_env']})")
    if "proxy" in shown:
        parts.append(f"proxy: {shown['proxy']}")
    return "; ".join(parts)
