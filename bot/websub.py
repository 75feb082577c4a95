"""WebSub decisions (https://www.w3.org/TR/websub/), pure: no I/O, no clock.

- Discovery (section 4): a feed names its hub with an HTTP ``Link: <...>;
  rel="hub"`` header or a ``<link rel="hub">`` in the feed, and its own
  canonical URL (the *topic*) with ``rel="self"``. The headers come first:
  the spec has subscribers check them before the body.
- Intent verification (section 5.3): a hub's GET to our callback is echoed
  only when it confirms a request we sent: same mode, same topic.
- Authenticated content (section 8): every push must carry ``X-Hub-Signature:
  <algo>=<hex HMAC of the body>`` made with the subscription's secret; a
  push without one, or with a wrong one, is ignored.
- Leases: renewed well before they run out, so a slow or failing hub still
  has time for a few tries.

The I/O lives beside it: ``bot.websub_subscriber`` (requests to hubs, the
renewal job), ``bot.websub_server`` (the callback listener) and
``bot.storage.websub`` (the subscriptions, shared by every process).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urljoin, urlsplit

# hub.secret must be under 200 bytes (section 5.1); 32 random bytes as hex.
SECRET_BYTES = 32
# The algorithms section 8 allows; anything else is not a valid signature.
_SIGNATURE_ALGORITHMS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
# One link-value of an RFC 8288 Link header: <target>; params.
_LINK_VALUE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL_PARAM = re.compile(r"""(?i);\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""")

# A request to a hub that is not verified within this long is sent again.
VERIFY_WAIT = timedelta(minutes=10)
# A lease is renewed this far before its end (a tenth of it, within bounds).
_RENEW_MARGIN_MIN = 60.0
_RENEW_MARGIN_MAX = 86400.0
# A failed request to a hub is tried again after 1, 2, 4 ... minutes, at most 6 hours.
_RETRY_FIRST = 60.0
_RETRY_MAX = 6 * 3600.0
# A hub that denied a subscription is asked again a day later (the feed may
# have changed hubs, or the hub its mind).
DENIED_RETRY = timedelta(days=1)
# An unsubscribe the hub never confirms is given up after this many tries:
# the lease runs out at the hub by itself.
MAX_UNSUBSCRIBE_ATTEMPTS = 3

Mode = Literal["subscribe", "unsubscribe"]


@dataclass(frozen=True, slots=True)
class HubLinks:
    """Where to subscribe (``hub``) to what (``topic``)."""

    hub: str
    topic: str


@dataclass(frozen=True, slots=True)
class FeedHub:
    """A feed's wanted subscription, as the poller sees it."""

    hub: str
    topic: str
    pushing: bool  # confirmed, and its lease has not run out


@dataclass(frozen=True, slots=True)
class HubSubscription:
    """A subscription as stored (``bot.storage.websub``)."""

    id: int
    feed_id: int
    hub_url: str
    topic_url: str
    secret: str
    trusted: bool  # the operator's feed; else the hub must be a public address
    wanted: bool  # False: the feed is gone or paused, so unsubscribe
    active: bool  # the hub confirmed it, and it has not been cancelled
    pending_mode: Mode | None  # the request sent and not yet verified
    lease_seconds: int | None
    expires_at: datetime | None
    next_attempt_at: datetime
    attempts: int
    last_error: str | None


def link_header_rels(header: str | None, base_url: str) -> dict[str, str]:
    """The first absolute http(s) target of each relation in a Link header
    (``rel="hub self"`` names two relations at once)."""
    found: dict[str, str] = {}
    if not header:
        return found
    for match in _LINK_VALUE.finditer(header):
        target = _http_url(match.group(1).strip(), base_url)
        if target is None:
            continue
        for rel in _REL_PARAM.finditer(match.group(2)):
            for name in (rel.group(1) or rel.group(2) or "").lower().split():
                found.setdefault(name, target)
    return found


def discover(
    link_header: str | None,
    feed_hubs: tuple[str, ...],
    feed_self: str | None,
    fetched_url: str,
) -> HubLinks | None:
    """The hub and topic a fetched feed advertises, or None. The Link header
    wins over the feed's own links (section 4); without a ``self`` link the
    topic is the URL the feed was fetched from."""
    header = link_header_rels(link_header, fetched_url)
    hub = header.get("hub")
    topic = header.get("self")
    if hub is None:
        hub = next((h for h in (_http_url(u, fetched_url) for u in feed_hubs) if h), None)
    if hub is None:
        return None
    if topic is None and feed_self:
        topic = _http_url(feed_self, fetched_url)
    return HubLinks(hub=hub, topic=topic or fetched_url)


def _http_url(value: str, base: str) -> str | None:
    url = urljoin(base, value.strip())
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return url


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature`` is ``<algo>=<hex>`` of ``body`` under
    ``secret``, for one of the algorithms section 8 names. Compared in
    constant time, so the header's bytes do not leak how much matched."""
    if not header or "=" not in header:
        return False
    algorithm, _, given = header.strip().partition("=")
    digest = _SIGNATURE_ALGORITHMS.get(algorithm.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def sign(secret: str, body: bytes, algorithm: str = "sha256") -> str:
    """An ``X-Hub-Signature`` value for ``body`` (what a hub sends)."""
    digest = _SIGNATURE_ALGORITHMS[algorithm]
    return f"{algorithm}={hmac.new(secret.encode(), body, digest).hexdigest()}"


Verdict = Literal["confirm_subscribe", "confirm_unsubscribe", "denied", "unknown"]


def verification(
    subscription: HubSubscription | None, mode: str | None, topic: str | None
) -> Verdict:
    """What a hub's GET to a callback is (section 5.3): the confirmation of
    the request we are waiting for (same mode, same topic), a denial of our
    subscription (5.2), or anything else, answered 404 so that nobody can
    subscribe the bot to anything it did not ask for."""
    if subscription is None or topic != subscription.topic_url:
        return "unknown"
    if mode == "denied":
        return "denied" if subscription.wanted else "unknown"
    if mode != subscription.pending_mode:
        return "unknown"
    if mode == "subscribe" and subscription.wanted:
        return "confirm_subscribe"
    if mode == "unsubscribe" and not subscription.wanted:
        return "confirm_unsubscribe"
    return "unknown"


def granted_lease(given: str | None, asked: float) -> int:
    """The lease the hub granted (its ``hub.lease_seconds``), else the one asked for."""
    if given is not None and given.strip().isdigit():
        seconds = int(given.strip())
        if seconds > 0:
            return seconds
    return max(1, int(asked))


def renewal_time(verified_at: datetime, lease_seconds: int) -> datetime:
    """When to renew a lease granted at ``verified_at``: a tenth of it before
    it runs out (between a minute and a day), never later than halfway."""
    margin = min(max(lease_seconds * 0.1, _RENEW_MARGIN_MIN), _RENEW_MARGIN_MAX)
    margin = min(margin, lease_seconds / 2)
    return verified_at + timedelta(seconds=lease_seconds - margin)


def retry_delay(attempts: int) -> timedelta:
    """How long after the ``attempts``-th failed request to a hub to try again."""
    return timedelta(seconds=min(_RETRY_FIRST * 2 ** max(0, attempts - 1), _RETRY_MAX))


Action = Literal["subscribe", "unsubscribe", "forget"]


def next_action(subscription: HubSubscription, now: datetime) -> Action:
    """What a due subscription needs: (re)subscribing, cancelling, or, for
    one that is no longer wanted and cannot or need not be cancelled any
    more, forgetting it."""
    if subscription.wanted:
        return "subscribe"
    if subscription.attempts >= MAX_UNSUBSCRIBE_ATTEMPTS:
        return "forget"
    if not subscription.active and subscription.pending_mode is None:
        return "forget"  # the hub never confirmed it: nothing to cancel
    if subscription.expires_at is not None and subscription.expires_at <= now:
        return "forget"  # the lease ran out at the hub by itself
    return "unsubscribe"


def describe_push(subscription: HubSubscription, now: datetime) -> str:
    """One line for ``newsbot health``: where the feed is pushed from, and how that stands."""
    where = f"push via {subscription.hub_url}"
    if not subscription.wanted:
        return f"{where}: unsubscribing"
    if subscription.active and subscription.expires_at and subscription.expires_at > now:
        state = f"subscribed until {subscription.expires_at:%Y-%m-%d %H:%M} UTC"
    elif subscription.pending_mode == "subscribe":
        state = "waiting for the hub to verify"
    else:
        state = "not subscribed yet"
    if subscription.last_error:
        state += f"; last error: {subscription.last_error}"
    return f"{where}: {state}"


def callback_token(secret: str) -> str:
    """The part of a callback URL only the hub learns (from our request):
    without it nobody can even address a subscription's callback, let alone
    deny it in the hub's name or probe its verification. Derived from the
    subscription's secret, so a new secret makes a new callback."""
    return hmac.new(secret.encode(), b"websub callback", hashlib.sha256).hexdigest()[:32]


def callback_url(base: str, subscription: HubSubscription) -> str:
    """``<base>/<subscription id>/<token>``."""
    return f"{base.rstrip('/')}/{subscription.id}/{callback_token(subscription.secret)}"


def callback_matches(subscription: HubSubscription, token: str) -> bool:
    return hmac.compare_digest(callback_token(subscription.secret), token)
