"""What every guard on a URL from outside shares: whether its host is on an allowlist, and
how it is shown in a message without the credentials it may carry.

Used by the output downloads (output_sources.py), the callbacks (callbacks/urls.py) and the
model's queue (fal_transport.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    """The host is on the allowlist, or a subdomain of a host that is.

    A trailing dot names the same host (`example.com.` is `example.com`), so it is stripped
    before the comparison; the allowlist's own entries are taken as written.
    """
    host = host.rstrip(".").lower()
    return any(host == allowed or host.endswith("." + allowed) for allowed in allowed_hosts)


def redact_url(url: str) -> str:
    """The URL without its query or fragment: signed URLs carry credentials there, and a
    message or log line must not."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
