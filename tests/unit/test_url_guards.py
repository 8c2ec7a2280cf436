"""What every guard on an outside URL shares: the host allowlist and the redacted URL."""

from __future__ import annotations

import pytest
from kontext_pipeline.url_guards import host_allowed, redact_url

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
