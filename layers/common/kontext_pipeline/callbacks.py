"""Per-job callbacks: the job's notification POSTed to the upload's `callback-url`, signed
the way the Standard Webhooks spec says (https://www.standardwebhooks.com/, the
specification in github.com/standard-webhooks/standard-webhooks), so receivers verify it
with the `standardwebhooks` library.

    webhook-id         msg_<hash of the job and its status>: the same for every attempt and
                       every redelivery, so a receiver deduplicates on it
    webhook-timestamp  seconds since the epoch, of this attempt
    webhook-signature  v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The signing key is the base64 part of a `whsec_...` secret kept in Secrets Manager. The
signature is a dozen lines of standard library, so the layer carries no webhook package.

A callback URL comes from whoever uploads, so it is a way in for server-side request
forgery. Before any request: https only, no user info, no IP literal, the host in
`CALLBACK_URL_HOSTS` (or a subdomain), and every address the name resolves to public
(not private, loopback, link-local, reserved, multicast). The request then goes to the
address that was checked, with the name kept for TLS and Host, so a second DNS answer
cannot move it elsewhere (DNS rebinding). The local run may allow plain-HTTP loopback
literals (`CALLBACK_ALLOW_LOOPBACK`) for a receiver on 127.0.0.1, never on AWS.

Delivery retries 5xx, 429, 408, timeouts and connection errors with exponential backoff
and full jitter, bounded in attempts and in time; then it raises, Lambda retries the
event asynchronously (bounded by the template), and the event lands in the dead-letter
queue. Another 4xx is the receiver's refusal: logged, not retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from kontext_pipeline.errors import (
    CallbackDeliveryError,
    CallbackRefusedError,
    ConfigurationError,
    PipelineError,
    Reason,
)
from kontext_pipeline.metadata import normalise_metadata
from kontext_pipeline.observability import logger

CALLBACK_FIELD = "callback_url"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_CACHE_SECONDS = 300
REFUSED_DETAIL_TYPE = "Kontext Callback Refused"
# Per attempt: four of them, with their backoff, fit well inside the function's 120 s.
ATTEMPT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT = "kontext-pipeline-callbacks/1"

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class CallbackRules:
    allowed_hosts: tuple[str, ...]
    allow_loopback: bool = False


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


@dataclass(frozen=True)
class RetryBudget:
    max_attempts: int = 4
    max_seconds: float = 30.0
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 8.0


@dataclass(frozen=True)
class DeliveryOutcome:
    outcome: str  # delivered | rejected
    status_code: int
    attempts: int
    webhook_id: str


def callback_url_from_metadata(metadata: Mapping[str, str]) -> str | None:
    """The upload's `callback-url` (any case, `-` or `_`), or None."""
    try:
        value = normalise_metadata(metadata).get(CALLBACK_FIELD)
    except PipelineError:
        return None
    return value or None


def host_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    host = host.rstrip(".").lower()
    return any(host == allowed or host.endswith("." + allowed) for allowed in allowed_hosts)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def check_callback_url(
    url: str, rules: CallbackRules, *, resolve: Resolver = system_resolver
) -> CallbackTarget:
    """The target to POST to, or CallbackRefusedError naming the rule the URL breaks."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise CallbackRefusedError(f"not a URL: {exc}") from exc
    host = (parts.hostname or "").lower()
    if not host:
        raise CallbackRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefusedError("user info in the URL is not allowed")
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
    if not host_allowed(host, rules.allowed_hosts):
        raise CallbackRefusedError(f"host {host} is not in CallbackUrlHosts")
    return CallbackTarget(url=url.strip(), host=host, address=_public_address(host, parts, resolve))


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _plain_loopback(literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    # 127.0.0.0/8 or ::1 as written; an IPv4-mapped form is refused like any other literal.
    if literal is None or getattr(literal, "ipv4_mapped", None) is not None:
        return False
    return literal.is_loopback


def _public_address(host: str, parts: SplitResult, resolve: Resolver) -> str:
    try:
        addresses = list(resolve(host, parts.port or 443))
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            # A resolver's passing failure is not the URL's fault: retried like a 503.
            raise CallbackDeliveryError(f"host {host}: DNS failed for now: {exc}") from exc
        raise CallbackRefusedError(f"host {host} does not resolve: {exc}") from exc
    except (OSError, UnicodeError) as exc:
        raise CallbackRefusedError(f"host {host} does not resolve: {exc}") from exc
    if not addresses:
        raise CallbackRefusedError(f"host {host} does not resolve")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        checked = mapped or ip
        # Every answer must be public: a name with one private answer among public ones
        # could be made to reach the private one.
        if not checked.is_global or checked.is_multicast:
            raise CallbackRefusedError(
                f"host {host} resolves to {address}, a private, loopback, link-local or "
                "reserved address"
            )
    return addresses[0]


def signing_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (`whsec_` + base64)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise PipelineError(
            "the callback signing secret is not base64", reason=Reason.SECRET_UNAVAILABLE
        ) from exc
    if len(key) < 24:
        raise PipelineError(
            "the callback signing secret is shorter than 24 bytes", reason=Reason.SECRET_UNAVAILABLE
        )
    return key


def displayed_secret(raw: str) -> str:
    """The secret as receivers configure it: `whsec_<base64>`."""
    raw = raw.strip()
    return raw if raw.startswith(SECRET_PREFIX) else SECRET_PREFIX + raw


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_id_for(notification: Mapping[str, Any]) -> str:
    """One id per job outcome, stable across attempts and redeliveries."""
    source = notification.get("source") or {}
    identity = "\n".join(
        str(part or "")
        for part in (
            source.get("bucket"),
            source.get("key"),
            source.get("version_id"),
            notification.get("request_id"),
            notification.get("status"),
        )
    )
    return "msg_" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def deliver_callback(
    http: httpx.Client,
    target: CallbackTarget,
    notification: Mapping[str, Any],
    *,
    key: bytes,
    budget: RetryBudget = RetryBudget(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryOutcome:
    """POST the signed notification; retry transient failures within the budget."""
    body = json.dumps(notification, separators=(",", ":"), ensure_ascii=False).encode()
    webhook_id = webhook_id_for(notification)
    started = clock()
    last = "no attempt"
    for attempt in range(1, budget.max_attempts + 1):
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": _host_header(target),
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, webhook_id, timestamp, body),
        }
        try:
            status = _post(http, target, body, headers)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "callback attempt failed",
                extra={"attempt": attempt, "webhook_id": webhook_id, "why": last},
            )
        else:
            logger.info(
                "callback attempt",
                extra={"attempt": attempt, "status": status, "webhook_id": webhook_id},
            )
            if 200 <= status < 300:
                return DeliveryOutcome("delivered", status, attempt, webhook_id)
            if status not in RETRYABLE_STATUS:
                return DeliveryOutcome("rejected", status, attempt, webhook_id)
            last = f"HTTP {status}"
        delay = min(budget.max_delay_seconds, budget.base_delay_seconds * 2 ** (attempt - 1))
        delay = random.uniform(0, delay)  # noqa: S311 - jitter, not cryptography
        if attempt == budget.max_attempts or clock() - started + delay > budget.max_seconds:
            break
        sleep(delay)
    raise CallbackDeliveryError(
        f"{target.host}: no 2xx after {attempt} attempts in {clock() - started:.0f} s ({last})"
    )


def _post(http: httpx.Client, target: CallbackTarget, body: bytes, headers: dict[str, str]) -> int:
    """One attempt; the answer's body is never read (a receiver cannot make us hold one)."""
    with http.stream(
        "POST",
        target.pinned_url(),
        content=body,
        headers=headers,
        timeout=ATTEMPT_TIMEOUT,
        # TLS is checked against the name, not the pinned address.
        extensions={"sni_hostname": target.host},
    ) as response:
        return response.status_code


def _host_header(target: CallbackTarget) -> str:
    port = urlsplit(target.url).port
    return target.host if port is None else f"{target.host}:{port}"


def read_callback_url(s3: Any, source: Mapping[str, Any]) -> str | None:
    """The `callback-url` of the upload the job was for, read from its own version.

    The notification names the object version; reading the URL back from it (rather than
    carrying it through the job) keeps the pipeline's state and notification unchanged.
    """
    pinned = {"VersionId": source["version_id"]} if source.get("version_id") else {}
    try:
        head = s3.head_object(Bucket=source["bucket"], Key=source["key"], **pinned)
    except (ClientError, BotoCoreError) as exc:
        logger.info("no upload to read a callback from", extra={"why": str(exc)})
        return None
    return callback_url_from_metadata(head.get("Metadata") or {})


def resolve_signing_key(secret_id: str, secrets_client: Any) -> bytes:
    """The signing key from Secrets Manager, through Powertools Parameters (cached)."""
    try:
        raw = SecretsProvider(boto3_client=secrets_client).get(
            secret_id, max_age=SECRET_CACHE_SECONDS
        )
    except GetParameterError as exc:
        raise ConfigurationError(
            f"could not read the callback signing secret {secret_id!r}",
            reason=Reason.SECRET_UNAVAILABLE,
        ) from exc
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return signing_key(text)


@dataclass(frozen=True)
class CallbackReport:
    outcome: str  # none | refused | delivered | rejected
    detail: str


def call_back(
    notification: Mapping[str, Any],
    *,
    s3: Any,
    http: httpx.Client,
    events: Any,
    event_bus_name: str,
    rules: CallbackRules,
    signing_key_source: Callable[[], bytes],
    resolve: Resolver = system_resolver,
) -> CallbackReport:
    """POST a finished job's notification to its upload's callback-url, if it has one.

    A refused URL is never requested: the refusal is logged and put on the bus as a
    `Kontext Callback Refused` event whose detail is the notification with a
    `callback` note (`reason: callback_refused` and the rule broken).
    """
    source = notification.get("source") or {}
    url = read_callback_url(s3, source)
    if url is None:
        return CallbackReport("none", "the upload has no callback-url")
    try:
        target = check_callback_url(url, rules, resolve=resolve)
    except CallbackRefusedError as exc:
        logger.warning(
            "callback refused",
            extra={"reason": exc.reason, "why": exc.message, "object_key": source.get("key")},
        )
        _put_refusal(events, event_bus_name, notification, url, exc)
        return CallbackReport("refused", exc.message)
    outcome = deliver_callback(http, target, notification, key=signing_key_source())
    if outcome.outcome == "rejected":
        logger.warning(
            "callback rejected by the receiver",
            extra={"status": outcome.status_code, "webhook_id": outcome.webhook_id},
        )
    return CallbackReport(outcome.outcome, f"HTTP {outcome.status_code}")


def _put_refusal(
    events: Any,
    event_bus_name: str,
    notification: Mapping[str, Any],
    url: str,
    refused: CallbackRefusedError,
) -> None:
    detail = {
        **notification,
        "callback": {
            "status": "refused",
            "reason": refused.reason,
            "message": refused.message,
            # Only scheme and host: the path and query may carry the receiver's tokens.
            "url": _redacted(url),
        },
    }
    try:
        events.put_events(
            Entries=[
                {
                    "Source": "kontext-pipeline",
                    "DetailType": REFUSED_DETAIL_TYPE,
                    "Detail": json.dumps(detail),
                    "EventBusName": event_bus_name,
                }
            ]
        )
    except (ClientError, BotoCoreError) as exc:
        # The refusal is already logged; a lost note must not make Lambda retry the job.
        logger.warning("callback refusal not put on the bus", extra={"why": str(exc)})


def _redacted(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}/..."
    except ValueError:
        return "(not a URL)"
