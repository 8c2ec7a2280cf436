"""What every guard on a URL from outside shares: whether its host is on an allowlist,
whether an address is one the pipeline may reach, and how a URL is shown in a message
without the credentials it may carry.

Used by the output downloads (storage/output_origins.py), the callbacks (callbacks/urls.py) and the
model's queue (model_queue/transport.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 ranges that carry an IPv4 address in their last 32 bits and reach it: NAT64's
# well-known prefix (RFC 6052) and the IPv4-compatible form. (IPv4-mapped, 6to4 and Teredo
# have properties of their own.) 64:ff9b:1::/48 is NAT64 for local use, never public.
_LAST_32_BITS_CARRY_IPV4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
_LOCAL_USE_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """The host is on the allowlist, or a subdomain of a host that is.

    A trailing dot names the same host (`example.com.` is `example.com`), so it is stripped
    before the comparison; the allowlist's own entries are taken as written.
    """
    host = host.rstrip(".").lower()
    return any(host == allowed or host.endswith("." + allowed) for allowed in allowed_hosts)


def is_public_address(address: IpAddress) -> bool:
    """A global unicast address, and so is every IPv4 address it carries: an IPv6 address
    that embeds a private IPv4 one (IPv4-mapped, NAT64, 6to4, Teredo, IPv4-compatible)
    reaches that private address, whatever Python's own `is_global` says of the IPv6 form."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address in _LOCAL_USE_NAT64:
        return False
    return all(inner.is_global and not inner.is_multicast for inner in _embedded_ipv4(address))


def _embedded_ipv4(address: IpAddress) -> Iterator[ipaddress.IPv4Address]:
    if isinstance(address, ipaddress.IPv4Address):
        return
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo  # the Teredo server and the client
    if any(address in network for network in _LAST_32_BITS_CARRY_IPV4):
        yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def redact_url(url: str) -> str:
    """The URL without its query or fragment: signed URLs carry credentials there, and a
    message or log line must not."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
