"""Which callback URLs may be called, and where a job's upload names one.

A callback URL comes from whoever uploads, so it is a way in for server-side request
forgery. Before any request: https only, no user info, no IP literal, the host in
`CALLBACK_URL_HOSTS` (or a subdomain), port 443 unless an entry names `host:port`, and
every address the name resolves to public (not private, loopback, link-local, reserved,
multicast, nor an IPv6 form carrying such an IPv4 address: url_guards.is_public_address).
The request then goes to the address that was checked, IPv4 when the name has one (Lambda
outside a dual-stack VPC has no IPv6 egress), with the name kept for TLS and Host, so a
second DNS answer cannot move it elsewhere (DNS rebinding). The local run may allow
plain-HTTP loopback literals (`CALLBACK_ALLOW_LOOPBACK`) for a receiver on 127.0.0.1,
never on AWS.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit, urlunsplit

from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.core.errors import CallbackDeliveryError, CallbackRefusedError, PipelineError
from kontext_pipeline.core.models import SourceObject
from kontext_pipeline.core.observability import logger
from kontext_pipeline.core.url_guards import host_allowed, is_public_address
from kontext_pipeline.storage.inspection import object_request
from kontext_pipeline.storage.metadata import CALLBACK_FIELD, normalise_metadata

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client


Resolver = Callable[[str, int], Sequence[str]]
_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


HTTPS_PORT = 443


@dataclass(frozen=True)
class CallbackRules:
    """`allowed_hosts`: names (port 443) or `name:port`, each with its subdomains.
    `ipv6_egress`: the function can reach IPv6 addresses (a dual-stack VPC).
    `any_public_host`: an empty allowlist admits any name on 443 whose addresses are all
    public (the intake's image URLs, IntakeUrlHosts); callbacks always need a listed host.
    `hosts_setting`: the parameter a refusal names."""

    allowed_hosts: tuple[str, ...]
    allow_loopback: bool = False
    ipv6_egress: bool = False
    any_public_host: bool = False
    hosts_setting: str = "CallbackUrlHosts"

    def allows(self, host: str, port: int) -> bool:
        if self.any_public_host and not self.allowed_hosts:
            return port == HTTPS_PORT
        return any(
            port == entry_port and host_allowed(host, [entry_host])
            for entry_host, entry_port in map(_host_and_port, self.allowed_hosts)
        )


def _host_and_port(entry: str) -> tuple[str, int]:
    host, _, port = entry.lower().partition(":")
    return host, int(port) if port.isdigit() else HTTPS_PORT


@dataclass(frozen=True)
class CallbackTarget:
    """A URL that passed the rules, and the address it was checked at."""

    url: str
    host: str
    address: str

    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (port and path kept)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def host_header(self) -> str:
        port = urlsplit(self.url).port
        return self.host if port is None else f"{self.host}:{port}"


def callback_url_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The upload's `callback-url` (any case, `-` or `_`), or None."""
    try:
        value = normalise_metadata(metadata).get(CALLBACK_FIELD)
    except PipelineError:
        return None
    return value or None


def read_callback_url(s3: S3Client, source: SourceObject) -> str | None:
    """The `callback-url` of the upload the job was for, read from its own version.

    The notification names the object version; reading the URL back from it (rather than
    carrying it through the job) keeps the pipeline's state and notification unchanged.
    """
    try:
        head = s3.head_object(**object_request(source))
    except (ClientError, BotoCoreError) as exc:
        logger.info("no upload to read a callback from", extra={"why": str(exc)})
        return None
    return callback_url_from_metadata(head.get("Metadata") or {})


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))  # the resolver's order


def check_callback_url(
    url: str, rules: CallbackRules, *, resolve: Resolver = system_resolver
) -> CallbackTarget:
    """The target to POST to, or CallbackRefusedError naming the rule the URL breaks."""
    parts = _split(url)
    host = (parts.hostname or "").lower()
    literal = _ip_literal(host)
    if rules.allow_loopback and _plain_loopback(literal):
        # Local runs only (the template never sets it): the test receiver on 127.0.0.1.
        if parts.scheme not in ("http", "https"):
            raise CallbackRefusedError(f"scheme {parts.scheme!r}: https only")
        return CallbackTarget(url=url.strip(), host=host, address=str(literal))
    if parts.scheme != "https":
        raise CallbackRefusedError(f"scheme {parts.scheme or '(none)'!r}: https only")
    if literal is not None:
        raise CallbackRefusedError(f"host {host} is an IP address: name a host instead")
    port = _listed_port(host, parts, rules)
    address = _public_address(host, port, resolve, ipv6_egress=rules.ipv6_egress)
    return CallbackTarget(url=url.strip(), host=host, address=address)


def _listed_port(host: str, parts: SplitResult, rules: CallbackRules) -> int:
    """The URL's port, when CallbackUrlHosts lists the host on it (443 unless `host:port`)."""
    port = parts.port or HTTPS_PORT
    if not rules.allows(host, port):
        named = host if port == HTTPS_PORT else f"{host}:{port}"
        raise CallbackRefusedError(f"host {named} is not in {rules.hosts_setting}")
    return port


def _split(url: str) -> SplitResult:
    """The URL's parts, refused when it is no URL, names no host or carries user info."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise CallbackRefusedError(f"not a URL: {exc}") from exc
    if not parts.hostname:
        raise CallbackRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefusedError("user info in the URL is not allowed")
    return parts


def _ip_literal(host: str) -> _IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _plain_loopback(literal: _IpAddress | None) -> bool:
    # 127.0.0.0/8 or ::1 as written; an IPv4-mapped form is refused like any other literal.
    if literal is None or getattr(literal, "ipv4_mapped", None) is not None:
        return False
    return literal.is_loopback


def _public_address(host: str, port: int, resolve: Resolver, *, ipv6_egress: bool) -> str:
    """The address to connect to: every answer public, and an IPv4 one when there is one."""
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in _resolved(host, port, resolve)]
    for address in addresses:
        # Every answer must be public: a name with one private answer among public ones
        # could be made to reach the private one.
        if not is_public_address(address):
            raise CallbackRefusedError(
                f"host {host} resolves to {address}, a private, loopback, link-local or "
                "reserved address"
            )
    ipv4 = [a for a in addresses if a.version == 4]
    if ipv4:
        return str(ipv4[0])
    if not ipv6_egress:
        raise CallbackRefusedError(
            f"host {host} has IPv6 addresses only, and the function has no IPv6 egress "
            "(CallbackIpv6Egress)"
        )
    return str(addresses[0])


def _resolved(host: str, port: int, resolve: Resolver) -> list[str]:
    try:
        addresses = list(resolve(host, port))
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            # A resolver's passing failure is not the URL's fault: retried like a 503.
            raise CallbackDeliveryError(f"host {host}: DNS failed for now: {exc}") from exc
        raise CallbackRefusedError(f"host {host} does not resolve: {exc}") from exc
    except (OSError, UnicodeError) as exc:
        raise CallbackRefusedError(f"host {host} does not resolve: {exc}") from exc
    if not addresses:
        raise CallbackRefusedError(f"host {host} does not resolve")
    return addresses
