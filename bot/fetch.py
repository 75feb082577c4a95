"""Fetch stage: one feed URL -> ``FetchResult`` over httpx, or ``FetchError``.

- Conditional GET: the stored ETag / Last-Modified go back as If-None-Match /
  If-Modified-Since (RFC 9110 13.1); a 304 is a success with nothing new.
- Compression is decoded here, chunk by chunk with a bounded output, so neither
  a huge body nor a gzip bomb can take more than ``max_body_bytes`` of memory.
- Redirects are followed; when every hop was permanent (301/308) the result
  carries the new URL so storage can remember it.
- Connect/read timeouts come from httpx, the total one from ``asyncio.timeout``
  (a server dripping one byte every few seconds never trips a read timeout).
- How many fetches run at once, overall and per host, is the Poller's
  business (``bot.pipeline``): it hands out the slots.
- Per-feed ``FetchOptions`` (``bot.fetch_options``): extra headers, basic
  auth, a proxy of the feed's own (one client per proxy URL). The operator's
  feeds honour HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment;
  feeds added at runtime never go through a proxy. Errors never carry a
  secret of the options.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from bot.config import PollingConfig
from bot.errors import FetchError
from bot.fetch_options import NO_OPTIONS, FetchOptions
from bot.netguard import PublicOnlyTransport, Resolver
from bot.schedule import parse_max_age, parse_retry_after

log = logging.getLogger(__name__)

_PERMANENT_REDIRECTS = frozenset({301, 308})
_CHUNK = 64 * 1024


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


def make_client(
    config: PollingConfig,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    proxy: str | None = None,
    environment_proxies: bool = True,
) -> httpx.AsyncClient:
    """The client of the operator's feeds: through ``proxy`` when given,
    else through the environment's proxies (``environment_proxies``;
    HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), else direct. An injected
    ``transport`` (tests) is used for direct connections."""
    timeout = httpx.Timeout(
        connect=config.connect_timeout,
        read=config.read_timeout,
        write=config.read_timeout,
        pool=config.total_timeout,
    )
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    if proxy is not None:
        transport = httpx.AsyncHTTPTransport(proxy=proxy, limits=limits)
    options: dict[str, Any] = {
        "timeout": timeout,
        "limits": limits,
        "follow_redirects": True,
        "max_redirects": 5,
        "transport": transport,
        "headers": {
            "User-Agent": config.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/rdf+xml, "
            "application/feed+json, "
            "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5",
            "Accept-Encoding": "gzip, deflate",
        },
    }
    if environment_proxies and transport is None:
        # httpx reads the proxy variables (and SSL_CERT_FILE / SSL_CERT_DIR)
        # and applies NO_PROXY on every request, each redirect hop too.
        try:
            return httpx.AsyncClient(trust_env=True, **options)
        except (ImportError, ValueError) as error:
            # ALL_PROXY=socks5://... without the SOCKS extra, or a malformed URL.
            log.warning("fetch: the proxy from the environment is not usable (%s); direct", error)
    return httpx.AsyncClient(trust_env=False, **options)


def make_public_only_client(
    config: PollingConfig, resolver: Resolver, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The client for untrusted feeds: every request (each redirect hop too)
    goes only to a vetted public address (``bot.netguard``). No keep-alive:
    a pooled connection is keyed by address, and two host names on one
    address must not share a TLS session made for one of them."""
    inner = transport or httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=0)
    )
    # Never through a proxy: the check vets the address connected to.
    return make_client(config, PublicOnlyTransport(inner, resolver), environment_proxies=False)


class Fetcher:
    """``untrusted_client`` fetches the feeds that are not the operator's
    (``trusted=False``); without it they go through ``client`` like the
    others (``[security] allow_private_addresses``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: PollingConfig,
        untrusted_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._client = client
        self._untrusted_client = untrusted_client
        self._config = config
        # One client per proxy a feed names (made on first use).
        self._proxied: dict[str, httpx.AsyncClient] = {}

    def _client_for(self, trusted: bool, proxy: str | None) -> httpx.AsyncClient:
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
        except TimeoutError:
            raise FetchError(f"fetch: timed out after {self._config.total_timeout:g}s") from None
        except httpx.TooManyRedirects:
            raise FetchError("fetch: too many redirects (a redirect loop?)") from None
        except httpx.UnsupportedProtocol as error:
            raise FetchError(f"fetch: unsupported URL scheme ({error})") from None
        except httpx.TimeoutException as error:
            raise FetchError(f"fetch: {type(error).__name__.lower()}") from None
        except httpx.ConnectError as error:
            raise FetchError(f"fetch: cannot connect: {_short(error)}") from None
        except httpx.HTTPError as error:
            raise FetchError(f"fetch: {type(error).__name__}: {_short(error)}") from None
        except (httpx.InvalidURL, UnicodeError) as error:
            # A redirect to "javascript:..." or to a host that is not valid
            # IDNA ("xn--"): httpx raises these outside its HTTPError tree.
            raise FetchError(f"fetch: invalid URL: {_short(error)}") from None

    async def _fetch(
        self,
        client: httpx.AsyncClient,
        url: str,
        etag: str | None,
        last_modified: str | None,
        now: datetime,
        options: FetchOptions,
    ) -> FetchResult:
        headers = dict(options.headers)
        # A validator the server sent with non-ASCII bytes cannot go back as a
        # header value (httpx encodes them as ASCII); the body hash still
        # spares the parse when nothing changed.
        if etag and etag.isascii():
            headers["If-None-Match"] = etag
        if last_modified and last_modified.isascii():
            headers["If-Modified-Since"] = last_modified
        # httpx drops the Authorization header on a redirect to another host.
        auth = httpx.BasicAuth(*options.basic_auth) if options.basic_auth else None
        async with client.stream("GET", url, headers=headers, auth=auth) as response:
            final_url = str(response.url)
            permanent_url = None
            if response.history and all(
                r.status_code in _PERMANENT_REDIRECTS for r in response.history
            ):
                permanent_url = final_url
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            if status == 304:
                return FetchResult(
                    final_url=final_url,
                    permanent_url=permanent_url,
                    not_modified=True,
                    body=b"",
                    content_type=None,
                    etag=response.headers.get("etag") or etag,
                    last_modified=response.headers.get("last-modified") or last_modified,
                    max_age=parse_max_age(response.headers.get("cache-control")),
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
                content_type=response.headers.get("content-type"),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                max_age=parse_max_age(response.headers.get("cache-control")),
                retry_after=retry_after,
                link_header=", ".join(response.headers.get_list("link")) or None,
            )

    async def _read_body(self, response: httpx.Response) -> bytes:
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
        async for chunk in response.aiter_raw(_CHUNK):
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


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"
