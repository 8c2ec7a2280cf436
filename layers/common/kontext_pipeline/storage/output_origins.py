"""Where the model's outputs may be fetched from (the SSRF guard for downloads): which
schemes, hosts and origins `OutputPolicy` accepts, and every redirect hop checked against
it before it is followed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from kontext_pipeline.core.errors import OutputCopyError, Reason
from kontext_pipeline.core.url_guards import host_allowed, is_public_address, redact_url

# A CDN may redirect once or twice (to a regional or signed URL); more is a loop.
MAX_OUTPUT_REDIRECTS = 3
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def url_origin(url: str) -> str:
    """`scheme://host:port`, with the scheme's default port spelled out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:
        port = None
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class OutputPolicy:
    """Where outputs may come from and how large they may be.

    `trusted_origins` are exact origins (scheme, host and port) accepted whatever the host
    list says: the queue at FAL_BASE_URL is already trusted with the API key, so files it
    serves from its own origin are as trustworthy as its answers.
    """

    allowed_hosts: tuple[str, ...]
    allow_http: bool
    max_bytes: int
    trusted_origins: tuple[str, ...] = ()

    @classmethod
    def for_queue(
        cls,
        fal_base_url: str,
        *,
        allowed_hosts: tuple[str, ...],
        allow_http: bool,
        max_bytes: int,
    ) -> OutputPolicy:
        return cls(allowed_hosts, allow_http, max_bytes, (url_origin(fal_base_url),))

    def check_url(self, url: str) -> None:
        """Refuse schemes and hosts an output must not come from (SSRF guard)."""
        if self.trusted_origins and url_origin(url) in self.trusted_origins:
            return
        parts = urlsplit(url)
        # A trailing dot names the same host: every check below sees it without one.
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme not in (("https", "http") if self.allow_http else ("https",)):
            raise OutputCopyError(
                f"output URL scheme {parts.scheme!r} is not allowed",
                reason=Reason.OUTPUT_URL_REFUSED,
            )
        if not host_allowed(host, self.allowed_hosts):
            raise OutputCopyError(
                f"output host {host!r} is not on the allowlist", reason=Reason.OUTPUT_URL_REFUSED
            )
        if _is_internal_address(host) and host not in self.allowed_hosts:
            raise OutputCopyError(
                f"output host {host!r} is an internal address", reason=Reason.OUTPUT_URL_REFUSED
            )


@contextmanager
def open_output(http: httpx.Client, url: str, policy: OutputPolicy) -> Iterator[httpx.Response]:
    """GET an output, following redirects by hand so every hop passes the allowlist.

    The client never follows redirects itself (a redirect could lead anywhere, even to an
    internal address); here each Location is checked like the URL the model returned, and
    there are at most MAX_OUTPUT_REDIRECTS of them.
    """
    for hop in range(MAX_OUTPUT_REDIRECTS + 1):
        try:
            policy.check_url(url)
        except OutputCopyError as exc:
            if hop == 0:
                raise
            raise OutputCopyError(
                f"output URL redirected to {redact_url(url)}: {exc.message}",
                reason=Reason.OUTPUT_URL_REFUSED,
            ) from exc
        # The bytes as they are: a compressed answer is inflated by storage/output_copy.py, bounded.
        with http.stream("GET", url, headers={"Accept-Encoding": "identity"}) as response:
            location = response.headers.get("location")
            if response.status_code in REDIRECT_CODES and location:
                url = str(response.url.join(location))
                continue
            yield response
            return
    raise OutputCopyError(
        f"output URL redirected more than {MAX_OUTPUT_REDIRECTS} times (last {redact_url(url)})",
        reason=Reason.OUTPUT_URL_REFUSED,
    )


def _is_internal_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("localhost",) or host.endswith(".internal")
    return not is_public_address(address)
