"""What every guard on an outside URL shares: the host allowlist and the redacted URL."""

from __future__ import annotations

import pytest
from kontext_pipeline.core.url_guards import host_allowed, redact_url

ALLOWED = ("fal.media", "hooks.example.com")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("fal.media", True),
        ("v3.fal.media", True),
        ("V3.FAL.MEDIA", True),
        ("v3.fal.media.", True),
        ("hooks.example.com.", True),
        ("fal.media.evil.com", False),
        ("evilfal.media", False),
        ("example.com", False),
    ],
)
def test_a_host_is_allowed_when_listed_or_under_a_listed_host(host: str, allowed: bool) -> None:
    # Given an allowlist of two hosts
    # When a host is looked up in it
    found = host_allowed(host, ALLOWED)
    # Then it is allowed when it is one of them or a subdomain (any case, a trailing dot
    # naming the same host), and a lookalike is not
    assert found is allowed


def test_a_redacted_url_keeps_where_it_points_but_not_its_query() -> None:
    # Given a signed URL, with a port, a query and a fragment
    url = "https://v3.fal.media:8443/files/a.png?X-Amz-Signature=secret#part"
    # When it is redacted for a message
    shown = redact_url(url)
    # Then scheme, host, port and path stay; the credentials are gone
    assert shown == "https://v3.fal.media:8443/files/a.png"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2600:1f18:abcd::1", True),
        ("10.0.0.1", False),
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("::1", False),
        # IPv6 forms that reach the IPv4 address they carry
        ("::ffff:127.0.0.1", False),
        ("::127.0.0.1", False),
        ("64:ff9b::10.0.0.1", False),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::93.184.216.34", True),
        ("64:ff9b:1::93.184.216.34", False),
        ("2002:0a00:0001::1", False),
        ("2002:a9fe:a9fe::1", False),
        ("2002:5db8:d822::1", True),
        ("2001:0:5db8:d822::f5f5:f7fe", False),
    ],
)
def test_an_address_is_public_only_with_every_ipv4_address_it_carries(
    address: str, public: bool
) -> None:
    import ipaddress

    from kontext_pipeline.core.url_guards import is_public_address

    # Given an address a name resolved to (NAT64 64:ff9b::/96, 6to4 2002::/16 and Teredo
    # 2001::/32 embed an IPv4 address; Python's own is_global does not look inside them)
    # When it is judged / Then it is public only if it and every IPv4 address it carries are
    assert is_public_address(ipaddress.ip_address(address)) is public
