"""An `image_url` fetched as a callback is posted: the URL checked by the callbacks' rules
(https, IntakeUrlHosts or any host whose addresses are all public, no IP literals, no user
info), the request sent to the address that was checked, each redirect checked again and
kept to the same host, and the body held to the size limit as it arrives and sniffed for
an image type before anything is stored."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import httpx

from kontext_pipeline.core.errors import CallbackDeliveryError, CallbackRefusedError, Reason
from kontext_pipeline.core.url_guards import redact_url
from kontext_pipeline.intake.problems import IntakeRefusedError
from kontext_pipeline.notifications.callbacks.urls import (
    CallbackRules,
    CallbackTarget,
    Resolver,
    check_callback_url,
    system_resolver,
)
from kontext_pipeline.storage.inspection import SNIFF_BYTES, sniff_image_type

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

MAX_REDIRECTS = 3
FETCH_SECONDS = 20.0  # a body that trickles in is cut off here, whatever each read took
_SPOOL_BYTES = 8 * 1024 * 1024  # in memory up to this, on /tmp beyond


@dataclass(frozen=True)
class FetchLimits:
    """How large an image may be, and how long its body may take to arrive."""

    max_bytes: int
    deadline_seconds: float = FETCH_SECONDS


@dataclass(frozen=True)
class FetchedImage:
    body: IO[bytes]
    content_type: str
    size: int


def _failed(detail: str, reason: Reason = Reason.IMAGE_FETCH_FAILED) -> IntakeRefusedError:
    return IntakeRefusedError(detail, reason=reason)


def _target(url: str, rules: CallbackRules, resolve: Resolver) -> CallbackTarget:
    try:
        return check_callback_url(url, rules, resolve=resolve)
    except CallbackRefusedError as exc:
        raise _failed(f"image_url refused: {exc.message}", Reason.IMAGE_URL_REFUSED) from exc
    except CallbackDeliveryError as exc:
        raise _failed(exc.message) from exc


def fetch_image(
    http: httpx.Client,
    url: str,
    rules: CallbackRules,
    limits: FetchLimits,
    *,
    resolve: Resolver = system_resolver,
) -> FetchedImage:
    """The image at `url`, in a temporary file the caller closes; refused as a problem."""
    for _ in range(MAX_REDIRECTS + 1):
        target = _target(url, rules, resolve)
        try:
            with _get(http, target) as response:
                location = response.headers.get("location") if response.is_redirect else None
                if location is None:
                    return _read_image(response, url, limits)
        except httpx.HTTPError as exc:
            raise _failed(f"{redact_url(url)}: {type(exc).__name__}") from exc
        next_url = urljoin(url, location)
        if (urlsplit(next_url).hostname or "").lower() != target.host:
            raise _failed(
                f"{redact_url(url)} redirects to another host ({redact_url(next_url)})",
                Reason.IMAGE_URL_REFUSED,
            )
        url = next_url
    raise _failed(f"more than {MAX_REDIRECTS} redirects", Reason.IMAGE_URL_REFUSED)


def _get(http: httpx.Client, target: CallbackTarget) -> AbstractContextManager[httpx.Response]:
    return http.stream(
        "GET",
        target.pinned_url(),
        headers={"Host": target.host_header(), "Accept": "image/*", "Accept-Encoding": "identity"},
        follow_redirects=False,
        # TLS is checked against the name, not the pinned address.
        extensions={"sni_hostname": target.host},
    )


def _read_image(response: httpx.Response, url: str, limits: FetchLimits) -> FetchedImage:
    if response.status_code != httpx.codes.OK:
        raise _failed(f"{redact_url(url)} answered HTTP {response.status_code}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(int(declared), limits.max_bytes)
    body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - handed on
    try:
        size = _spool(response.iter_raw(), body, limits)
        body.seek(0)
        content_type = sniff_image_type(body.read(SNIFF_BYTES))
        if content_type is None:
            raise _failed(
                f"{redact_url(url)} is not a JPEG, PNG, WebP, GIF or AVIF image",
                Reason.NOT_AN_IMAGE,
            )
        body.seek(0)
    except BaseException:
        body.close()
        raise
    return FetchedImage(body=body, content_type=content_type, size=size)


def _spool(chunks: Iterator[bytes], body: IO[bytes], limits: FetchLimits) -> int:
    deadline, size = time.monotonic() + limits.deadline_seconds, 0
    for chunk in chunks:
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_large(size, limits.max_bytes)
        if time.monotonic() > deadline:
            raise _failed(f"the image took longer than {limits.deadline_seconds:g} s to arrive")
        body.write(chunk)
    return size


def _too_large(size: int, max_bytes: int) -> IntakeRefusedError:
    return _failed(f"the image is over {max_bytes} bytes (at least {size})", Reason.IMAGE_TOO_LARGE)
