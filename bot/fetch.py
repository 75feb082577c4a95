"""Fetch stage: one feed URL -> ``FetchResult`` over aiohttp, or ``FetchError``.

- Conditional GET: the stored ETag / Last-Modified go back as If-None-Match /
  If-Modified-Since (RFC 9110 13.1); a 304 is a success with nothing new.
- Compression is decoded here (the client's own decoding is off), chunk by
  chunk with a bounded output, so neither a huge body nor a gzip bomb can
  take more than ``max_body_bytes`` of memory.
- Redirects are followed here, hop by hop (at most ``MAX_REDIRECTS``); when
  every hop was permanent (301/308) the result carries the new URL so
  storage can remember it. Basic auth goes only to the feed's own origin.
- Connect/read timeouts are the client's, the total one is
  ``asyncio.timeout`` (a server dripping one byte every few seconds never
  trips a read timeout).
- How many fetches run at once, overall and per host, is the Poller's
  business (``bot.pipeline``): it hands out the slots.
- Per-feed ``FetchOptions`` (``bot.fetch_options``): extra headers, basic
  auth, a proxy of the feed's own (one client per proxy URL). The operator's
  feeds honour HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY from the
  environment; feeds added at runtime never go through a proxy and connect
  only to public addresses (``bot.netguard``). Errors never carry a secret
  of the options.

aiohttp rather than httpx: a conditional GET costs about a third of the CPU
time through aiohttp's C HTTP parser that it did through httpx, httpcore,
anyio and h11, and polling unchanged feeds is most of what a bot does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDictProxy
from yarl import URL

from bot.config import PollingConfig
from bot.errors import FetchError
from bot.fetch_options import NO_OPTIONS, FetchOptions, proxy_without_credentials
from bot.netguard import PublicOnlyResolver, Resolver, public_only_sockets
from bot.schedule import parse_max_age, parse_retry_after

log = logging.getLogger(__name__)

MAX_REDIRECTS: Final = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_CHUNK = 64 * 1024
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, "
    "application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Headers that may carry a credential: never sent on to another origin.
_ORIGIN_ONLY_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class FetchResult:
    final_url: str
    permanent_url: str | None  # set when every redirect hop was permanent
    not_modified: bool
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    max_age: float | None
    retry_after: float | None
    # The Link header, where a feed may name its WebSub hub (bot.websub).
    link_header: str | None = None


@dataclass(frozen=True, slots=True)
class Network:
    """What the clients connect through; empty, the machine's own. Tests
    hand in a resolver that maps made-up names to loopback and a socket
    factory that refuses to leave the machine (``tests/faults.py``)."""

    # Name lookups of the operator's feeds (the public-only client has its own).
    resolver: AbstractResolver | None = None
    # Makes every socket, under the public-only check where there is one.
    socket_factory: aiohttp.SocketFactoryType | None = None


NO_NETWORK = Network()


class FeedClient:
    """One aiohttp session: its connector holds the pool (keep-alive and the
    connection limit). Which proxy a request goes through is decided per
    URL, on every redirect hop too: the client's own, else the environment's
    (with NO_PROXY), else none."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        proxy: str | None = None,
        environment_proxies: Mapping[str, str] | None = None,
    ) -> None:
        self.session = session
        self._proxy = _proxy_and_auth(proxy) if proxy is not None else None
        # Read once, like the rest of the environment: {"http": url, "no": ...}.
        self._environment = dict(environment_proxies or {})
        self._environment_proxies = {
            scheme: _proxy_and_auth(url)
            for scheme, url in self._environment.items()
            if scheme in ("http", "https", "all")
        }

    def proxy_for(self, url: URL) -> tuple[URL, dict[str, str] | None] | None:
        """The proxy for ``url`` and the headers for the proxy (its
        credentials), or None to go direct."""
        if self._proxy is not None:
            return self._proxy
        if not self._environment_proxies:
            return None
        proxy = self._environment_proxies.get(url.scheme) or self._environment_proxies.get("all")
        if proxy is None or _bypassed(url.host or "", self._environment.get("no", "")):
            return None
        return proxy

    async def request(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        data: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """One request, no redirect followed, through the proxy ``url`` goes by."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return await self.session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            )
        proxy_url, credentials = proxy
        if credentials is not None and url.scheme == "http":
            # A plain request is sent to the proxy itself: its credentials
            # ride on it (a tunnel for https carries them on CONNECT instead).
            headers, credentials = {**headers, **credentials}, None
        return await self.session.request(
            method,
            url,
            headers=headers,
            data=data,
            allow_redirects=False,
            proxy=proxy_url,
            proxy_headers=credentials,
        )

    async def post_form(self, url: str, form: Mapping[str, str]) -> tuple[int, str]:
        """POST ``form`` (form-encoded) without following a redirect; the
        status and the first 4 KB of the answer. ``FetchError`` when no
        answer came (the message names the problem, as fetches do); the
        caller bounds the time (``asyncio.timeout``)."""
        target = URL(url)
        if target.scheme not in ("http", "https"):
            raise FetchError(f"fetch: unsupported URL scheme ({target.scheme or 'none'!r})")
        try:
            async with await self.request("POST", target, {}, data=dict(form)) as response:
                said = await response.content.read(4096)
                status = response.status
                charset = response.charset or "utf-8"
        except (aiohttp.ClientError, ValueError, UnicodeError) as error:
            raise _fetch_error(error) from None
        try:
            return status, said.decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            return status, said.decode("utf-8", "replace")

    async def aclose(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> FeedClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY ("*", or names whose subdomains count too, a
    leading dot or not) keeps ``host`` off the environment's proxy."""
    host = host.lower().rstrip(".")
    for entry in no_proxy.split(","):
        name = entry.strip().lower().lstrip(".")
        if name.startswith("[") and "]" in name:
            name = name[1 : name.index("]")]
        elif name.count(":") == 1:
            name = name.split(":", 1)[0]  # "host:port": any port
        if name and (name == "*" or host == name or host.endswith("." + name)):
            return True
    return False


def _proxy_and_auth(url: str) -> tuple[URL, dict[str, str] | None]:
    parsed = URL(url)
    if parsed.user is None and parsed.password is None:
        return parsed, None
    credentials = {"Proxy-Authorization": _basic(parsed.user or "", parsed.password or "")}
    return parsed.with_user(None).with_password(None), credentials


def _basic(username: str, password: str) -> str:
    """A Basic credential (RFC 7617), UTF-8 as the RFC's charset says."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _text(value: str | None) -> str | None:
    """A header value as httpx read it: bytes that are not UTF-8 (which
    aiohttp decodes to lone surrogates, and no database can store) are
    Latin-1 characters."""
    if value is None or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    return value


def _session(config: PollingConfig, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=None,  # asyncio.timeout around the whole fetch, redirects included
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        ),
        headers={
            "User-Agent": config.user_agent,
            "Accept": _ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        },
        auto_decompress=False,  # decoded here, with a cap (Fetcher._read_body)
        # No cookies kept between fetches, nor a ~/.netrc read (trust_env).
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


def make_client(
    config: PollingConfig,
    network: Network = NO_NETWORK,
    *,
    proxy: str | None = None,
    environment_proxies: bool = True,
) -> FeedClient:
    """The client of the operator's feeds: through ``proxy`` when given,
    else through the environment's proxies (``environment_proxies``;
    HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), else direct."""
    connector = aiohttp.TCPConnector(
        limit=config.concurrency,
        limit_per_host=0,  # the Poller's per-host slots decide
        resolver=network.resolver or aiohttp.ThreadedResolver(),
        socket_factory=network.socket_factory,
    )
    environment: dict[str, str] = {}
    if environment_proxies and proxy is None:
        environment = _usable_environment_proxies(urllib.request.getproxies())
    return FeedClient(_session(config, connector), proxy=proxy, environment_proxies=environment)


def _usable_environment_proxies(found: Mapping[str, str]) -> dict[str, str]:
    usable = {}
    for scheme, url in found.items():
        if scheme == "no":
            usable[scheme] = url
        elif scheme in ("http", "https", "all"):
            try:
                parsed = URL(url)
            except ValueError:
                parsed = URL()
            if parsed.scheme not in ("http", "https") or not parsed.host:
                # ALL_PROXY=socks5://... (aiohttp speaks no SOCKS), or a malformed URL.
                log.warning(
                    "fetch: the %s proxy from the environment (%s) is not usable; direct",
                    scheme,
                    proxy_without_credentials(url),
                )
                continue
            usable[scheme] = url
    return usable if set(usable) - {"no"} else {}


def make_public_only_client(
    config: PollingConfig, resolver: Resolver, network: Network = NO_NETWORK
) -> FeedClient:
    """The client for untrusted feeds: every connection (each redirect hop
    too) goes only to a vetted public address (``bot.netguard``), never
    through a proxy (the check vets the address connected to). No
    keep-alive and no DNS cache: each fetch resolves and is checked again."""
    connector = aiohttp.TCPConnector(
        limit=config.concurrency,
        limit_per_host=0,
        resolver=PublicOnlyResolver(resolver),
        socket_factory=public_only_sockets(network.socket_factory),
        use_dns_cache=False,
        force_close=True,
    )
    return FeedClient(_session(config, connector))


class _Headers:
    """A response's headers as text a database can store (``_text``)."""

    __slots__ = ("_headers",)

    def __init__(self, headers: CIMultiDictProxy[str]) -> None:
        self._headers = headers

    def get(self, name: str) -> str | None:
        return _text(self._headers.get(name))

    def getall(self, name: str) -> list[str]:
        return [_text(value) or "" for value in self._headers.getall(name, [])]


class Fetcher:
    """``untrusted_client`` fetches the feeds that are not the operator's
    (``trusted=False``); without it they go through ``client`` like the
    others (``[security] allow_private_addresses``)."""

    def __init__(
        self,
        client: FeedClient,
        config: PollingConfig,
        untrusted_client: FeedClient | None = None,
    ) -> None:
        self._client = client
        self._untrusted_client = untrusted_client
        self._config = config
        # One client per proxy a feed names (made on first use).
        self._proxied: dict[str, FeedClient] = {}

    def _client_for(self, trusted: bool, proxy: str | None) -> FeedClient:
        if not trusted:
            if proxy is not None:
                raise FetchError("fetch: refused: feeds added at runtime never use a proxy")
            return self._client if self._untrusted_client is None else self._untrusted_client
        if proxy is None:
            return self._client
        client = self._proxied.get(proxy)
        if client is None:
            client = self._proxied[proxy] = make_client(self._config, proxy=proxy)
        return client

    async def aclose(self) -> None:
        """Close the clients made for proxies (the others belong to the caller)."""
        clients, self._proxied = list(self._proxied.values()), {}
        for client in clients:
            await client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
        trusted: bool = True,
        options: FetchOptions = NO_OPTIONS,
    ) -> FetchResult:
        """``options`` apply to the operator's feeds (``trusted``); a
        ``FetchError`` never carries one of their secrets."""
        try:
            return await self._fetch_cleanly(url, etag, last_modified, now, trusted, options)
        except FetchError as error:
            if not options.secrets:
                raise
            cleaned = options.clean(str(error))
            if cleaned == str(error):
                raise
            raise FetchError(
                cleaned, retry_after=error.retry_after, permanent=error.permanent
            ) from None

    async def _fetch_cleanly(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
        trusted: bool,
        options: FetchOptions,
    ) -> FetchResult:
        client = self._client_for(trusted, options.proxy)
        try:
            async with asyncio.timeout(self._config.total_timeout):
                return await self._fetch(client, url, etag, last_modified, now, options)
        except (aiohttp.ClientError, ValueError, UnicodeError) as error:
            # Before TimeoutError: aiohttp's connect and read timeouts are TimeoutErrors too.
            raise _fetch_error(error) from None
        except TimeoutError:
            raise FetchError(f"fetch: timed out after {self._config.total_timeout:g}s") from None

    async def _fetch(
        self,
        client: FeedClient,
        url: str,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
        options: FetchOptions,
    ) -> FetchResult:
        headers = dict(options.headers)
        # A validator the server sent with non-ASCII bytes cannot go back as a
        # header value; the body hash still spares the parse when nothing changed.
        if etag and etag.isascii():
            headers["If-None-Match"] = etag
        if last_modified and last_modified.isascii():
            headers["If-Modified-Since"] = last_modified
        if options.basic_auth:
            headers["Authorization"] = _basic(*options.basic_auth)
        target = URL(url)
        origin = _origin(target)
        permanent = True
        for hops in range(MAX_REDIRECTS + 1):
            if target.scheme not in ("http", "https"):
                raise FetchError(f"fetch: unsupported URL scheme ({target.scheme or 'none'!r})")
            if not target.host:
                raise FetchError(f"fetch: invalid URL: no host in {str(target)[:200]!r}")
            response = await client.request(
                "GET",
                target,
                headers
                if _keeps_credentials(origin, _origin(target))
                else {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_ONLY_HEADERS},
            )
            try:
                location = response.headers.get("location")
                if response.status not in _REDIRECTS or location is None:
                    return await self._result(
                        response, hops > 0 and permanent, etag, last_modified, now
                    )
            except BaseException:
                response.close()  # a half-read body: the connection cannot be reused
                raise
            finally:
                response.release()  # back to the pool when the answer was read whole
            if hops == MAX_REDIRECTS:
                break
            permanent = permanent and response.status in _PERMANENT_REDIRECTS
            target = target.join(URL(location))
        raise FetchError("fetch: too many redirects (a redirect loop?)")

    async def _result(
        self,
        response: aiohttp.ClientResponse,
        moved: bool,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
    ) -> FetchResult:
        """``moved``: every redirect on the way was permanent."""
        final_url = str(response.url)
        permanent_url = final_url if moved else None
        status = response.status
        headers = _Headers(response.headers)
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        if status == 304:
            return FetchResult(
                final_url=final_url,
                permanent_url=permanent_url,
                not_modified=True,
                body=b"",
                content_type=None,
                etag=headers.get("etag") or etag,
                last_modified=headers.get("last-modified") or last_modified,
                max_age=parse_max_age(headers.get("cache-control")),
                retry_after=retry_after,
            )
        if status == 410:
            raise FetchError("fetch: HTTP 410 Gone (the feed was removed)", permanent=True)
        if status in (429, 503):
            raise FetchError(f"fetch: HTTP {status}", retry_after=retry_after)
        if status >= 400 or status < 200:
            raise FetchError(f"fetch: HTTP {status}")
        body = await self._read_body(response)
        return FetchResult(
            final_url=final_url,
            permanent_url=permanent_url,
            not_modified=False,
            body=body,
            content_type=headers.get("content-type"),
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            max_age=parse_max_age(headers.get("cache-control")),
            retry_after=retry_after,
            link_header=", ".join(headers.getall("link")) or None,
        )

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._config.max_body_bytes
        encoding = response.headers.get("content-encoding", "").strip().lower()
        decoder: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            decoder = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise FetchError(f"fetch: unsupported content-encoding {encoding!r}")
        declared = response.headers.get("content-length", "")
        if not decoder and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"fetch: body of {int(declared)} bytes exceeds the {limit}-byte cap")
        parts: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK):
            if decoder is None:
                parts.append(chunk)
                size += len(chunk)
            else:
                size = self._inflate(decoder, chunk, parts, size, limit)
            if size > limit:
                raise FetchError(f"fetch: body exceeds the {limit}-byte cap")
        if decoder is not None:
            try:
                tail = decoder.flush()
            except zlib.error as error:
                raise FetchError(f"fetch: corrupt {encoding} body: {error}") from None
            parts.append(tail)
            size += len(tail)
            if size > limit:
                raise FetchError(f"fetch: body exceeds the {limit}-byte cap")
            # flush() does not complain about a stream that stops early (a
            # cut connection, a corrupt body): only eof says it was complete.
            if not decoder.eof:
                raise FetchError(f"fetch: truncated or corrupt {encoding} body")
        return b"".join(parts)

    @staticmethod
    def _inflate(
        decoder: zlib._Decompress, chunk: bytes, parts: list[bytes], size: int, limit: int
    ) -> int:
        """Decompress ``chunk`` without ever producing more than ``limit`` + 1 bytes."""
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, limit + 1 - size)
            except zlib.error as error:
                raise FetchError(f"fetch: corrupt compressed body: {error}") from None
            parts.append(out)
            size += len(out)
            if size > limit:
                return size
            data = decoder.unconsumed_tail
        return size


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return url.scheme, url.host, url.port


def _keeps_credentials(
    origin: tuple[str, str | None, int | None], hop: tuple[str, str | None, int | None]
) -> bool:
    """Credentials go to the feed's own origin only, and on from http to
    https of the same host (as httpx did; a site moving to TLS)."""
    return hop == origin or (origin == ("http", hop[1], 80) and hop == ("https", hop[1], 443))


def _fetch_error(error: BaseException) -> FetchError:
    """What the user sees of a client error: the kind of problem in words."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return FetchError("fetch: connecttimeout")
    if isinstance(error, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError):
        return FetchError("fetch: readtimeout")
    if isinstance(error, aiohttp.InvalidURL | ValueError | UnicodeError):
        # A redirect to a host that is not valid IDNA ("xn--"), an address
        # in a shorthand form (``127.1``), a malformed URL.
        return FetchError(f"fetch: invalid URL: {_short(error)}")
    if isinstance(error, aiohttp.ClientConnectorError):
        return FetchError(f"fetch: cannot connect: {_short(error)}")
    if isinstance(error, aiohttp.ClientPayloadError):
        return FetchError(f"fetch: the body was cut short or malformed: {_short(error)}")
    if isinstance(error, aiohttp.ClientResponseError):
        return FetchError(f"fetch: invalid HTTP response: {_short(error)}")
    return FetchError(f"fetch: {type(error).__name__}: {_short(error)}")


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"
