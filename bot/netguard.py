"""Fetching untrusted feeds (added at runtime) from public addresses only.

A feed URL from a user could point the bot at the machine itself, its LAN or
a cloud metadata service (server-side request forgery). ``PublicOnlyTransport``
sits under the HTTP client of runtime feeds and, on every request (every
redirect hop and every later poll), resolves the host once, refuses it unless
every address is public, and connects to the vetted address itself (the Host
header and the TLS server name stay the host name), so a DNS answer that
changes between the check and the connection (rebinding) cannot slip by.

``refusal`` (the address decision) is pure; the resolver is injectable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

import httpx

from bot.errors import FetchError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

# Beyond what ``is_global`` already excludes: addresses that are "global" in
# the registry but reach a cloud's or a translator's insides.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def literal_address(host: str) -> Address | None:
    """The address a host names by itself, in any form a C resolver
    accepts: dotted, IPv6, and the old shorthands (``2130706433``,
    ``0177.0.0.1``, ``0x7f.1``, ``127.1``), which never reach DNS."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal(address: Address) -> str | None:
    """Why an untrusted feed may not be fetched from ``address``; None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private or reserved address"
    return None


async def system_resolver(host: str, port: int) -> Sequence[str]:
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchError(f"fetch: cannot resolve {host}: {error}") from None
    return [str(answer[4][0]) for answer in answers]


class PublicOnlyTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, resolver: Resolver) -> None:
        self._inner = inner
        self._resolver = resolver

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise FetchError(f"fetch: refused: {url.scheme}: URLs are not fetched for added feeds")
        host = url.host
        address = await self.vetted_address(
            host, url.port or (443 if url.scheme == "https" else 80)
        )
        if url.scheme == "https":
            # TLS still names (and verifies) the host, not the address.
            request.extensions = {**request.extensions, "sni_hostname": host}
        # The Host header was set from the URL when the request was built.
        request.url = url.copy_with(host=str(address))
        try:
            return await self._inner.handle_async_request(request)
        finally:
            # The response's URL is its request's: it must name the host, not
            # the address, or a redirect target, a stored permanent URL and
            # the base of relative links would all become the bare address.
            request.url = url

    async def vetted_address(self, host: str, port: int) -> Address:
        """The one address to connect to: every address the host resolves
        to must be public, or the fetch is refused."""
        literal = literal_address(host)
        if literal is not None:
            addresses: list[Address] = [literal]
        else:
            answers = await self._resolver(host, port)
            addresses = []
            for answer in answers:
                try:
                    addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
                except ValueError:
                    raise FetchError(
                        f"fetch: {host} resolved to {answer!r}, not an address"
                    ) from None
            if not addresses:
                raise FetchError(f"fetch: cannot resolve {host}: no addresses")
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                raise FetchError(
                    f"fetch: refused: {host} is {address}, {reason} (feeds added at runtime "
                    "must be public; see [security] allow_private_addresses)"
                )
        return addresses[0]

    async def aclose(self) -> None:
        await self._inner.aclose()
