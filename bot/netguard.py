"""Fetching untrusted feeds (added at runtime) from public addresses only.

A feed URL from a user could point the bot at the machine itself, its LAN or
a cloud metadata service (server-side request forgery). The connector of the
client of runtime feeds (``bot.fetch.make_public_only_client``) checks twice,
on every connection (every redirect hop and every later poll; it keeps no
connection alive and caches no DNS answer):

- ``PublicOnlyResolver`` resolves the host once and refuses it unless every
  address is public; the connector gets only the vetted address, so a DNS
  answer that changes between the check and the connection (rebinding)
  cannot slip by. The Host header and the TLS server name stay the host name.
- ``public_only_sockets`` refuses to make the socket for any address that is
  not public: it is handed the address the connection goes to, whatever
  came before (a host written as an address never reaches a resolver).

``refusal`` (the address decision) is pure; the resolver is injectable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence

from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

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
_MUST_BE_PUBLIC = " (feeds added at runtime must be public; see [security] allow_private_addresses)"


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


class PublicOnlyResolver(AbstractResolver):
    """The name lookups of the public-only client: every answer must be
    public, and the one vetted address is all the connector gets to connect
    to, so no second lookup can come between the check and the connection."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = await vetted_address(host, port, self._resolver)
        return [
            {
                "hostname": host,  # TLS still names (and verifies) the host
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def public_only_sockets(inner: SocketFactoryType | None = None) -> SocketFactoryType:
    """The socket maker of the public-only client: it sees the very address
    each connection is about to be made to (a host written as an address
    never reaches the resolver) and refuses any that is not public. Nothing
    above it can route around it: it is the last step before ``connect``."""

    def public_socket(addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        try:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        except ValueError:
            raise FetchError(f"fetch: refused: {sockaddr[0]!r} is not an address") from None
        reason = refusal(address)
        if reason is not None:
            raise FetchError(f"fetch: refused: {address} is {reason}{_MUST_BE_PUBLIC}")
        if inner is not None:
            return inner(addr_info)
        return socket.socket(family, kind, proto)

    return public_socket


async def vetted_address(host: str, port: int, resolver: Resolver) -> Address:
    """The one address to connect to: every address the host resolves to
    must be public, or the fetch is refused."""
    literal = literal_address(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        answers = await resolver(host, port)
        addresses = []
        for answer in answers:
            try:
                addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
            except ValueError:
                raise FetchError(f"fetch: {host} resolved to {answer!r}, not an address") from None
        if not addresses:
            raise FetchError(f"fetch: cannot resolve {host}: no addresses")
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise FetchError(f"fetch: refused: {host} is {address}, {reason}{_MUST_BE_PUBLIC}")
    return addresses[0]
