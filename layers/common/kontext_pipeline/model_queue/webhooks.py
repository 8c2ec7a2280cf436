"""The model's signed webhooks: is this POST really from fal, and what does it say.

Verification (fal's scheme): Ed25519 over
`request_id \\n user_id \\n timestamp \\n hex(sha256(raw body))`, public keys from a JWKS
(cached, refetched when a signature fails with keys older than a few minutes: rotation),
timestamps at most 300 s off. Nothing in the body is trusted before that.

What fal sends (docs: https://fal.ai/docs/documentation/model-apis/inference/webhooks):
the header's request id may be the body's `request_id` or its `gateway_request_id` (they
differ when fal retried the request internally); an OK body carries the result as
`payload` (null, with `payload_error`, when it could not be included); an ERROR body
carries a message in `error` and the model's detail in `payload`.

What a verified webhook then does to the waiting execution: webhook_rendezvous.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from kontext_pipeline.core.errors import WebhookRejectedError
from kontext_pipeline.core.models import ModelResult
from kontext_pipeline.model_queue.answers import describe_detail_value, with_error_type

SIGNATURE_TOLERANCE_SECONDS = 300
# A timestamp ahead of our clock: fal's and Lambda's clocks agree within this; a signature
# stamped later was made to outlive the replay window.
FUTURE_TOLERANCE_SECONDS = 10
JWKS_CACHE_SECONDS = 24 * 3600
JWKS_REFRESH_AFTER_SECONDS = 300
# A payload carried to CollectOutputs rides in the state (256 KB cap, with the job around
# it) and the jobs-table item (400 KB): larger ones (sync_mode data: URIs) are fetched.
MAX_CARRIED_PAYLOAD_BYTES = 64 * 1024
HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)


@dataclass
class JwksCache:
    """Ed25519 public keys from a JWKS URL, cached per warm function."""

    http: httpx.Client
    url: str
    clock: Callable[[], float] = time.time
    _keys: list[Ed25519PublicKey] = field(default_factory=list)
    _fetched_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        with self._lock:
            age = self.clock() - self._fetched_at
            stale = not self._keys or age > JWKS_CACHE_SECONDS
            if stale or (refresh and age > JWKS_REFRESH_AFTER_SECONDS):
                self._keys = self._fetch()
                self._fetched_at = self.clock()
            return list(self._keys)

    def _fetch(self) -> list[Ed25519PublicKey]:
        response = self.http.get(self.url)
        response.raise_for_status()
        keys = []
        for jwk in response.json().get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("x"):
                raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
                keys.append(Ed25519PublicKey.from_public_bytes(raw))
        return keys


@dataclass(frozen=True)
class VerifiedWebhook:
    request_id: str  # the queue's request id (the body's `request_id`), as the job knows it
    status: str  # OK | ERROR
    error: str | None
    # The result, as fal sent it and the signature covered it; None when absent, too
    # large to carry, or not a result (then collect fetches it from the response URL).
    result_json: str | None = None
    # An ERROR's own type (payload `error_type`): the failure's reason is model_<type>, as
    # when polling finds the same error.
    error_type: str | None = None


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    jwks: JwksCache,
    *,
    user_id: str | None = None,
    now: float | None = None,
) -> VerifiedWebhook:
    """Check signature, freshness and (when `user_id` is given: FAL_USER_ID) that it is our
    fal account's; only then read the body."""
    request_id = _signed_request_id(headers, body, jwks, now)
    signed_user = {name.lower(): value for name, value in headers.items()}[HEADERS[1]]
    if user_id and signed_user != user_id:
        raise WebhookRejectedError("the webhook is for another fal account (FalUserId)")
    return _read_body(_json_object(body), request_id)


def _signed_request_id(
    headers: Mapping[str, str], body: bytes, jwks: JwksCache, now: float | None
) -> str:
    """The header's request id, once the signature over it and the body verifies."""
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in HEADERS if not lowered.get(name)]
    if missing:
        raise WebhookRejectedError(f"missing headers: {', '.join(missing)}")
    request_id, user_id, timestamp, signature_hex = (lowered[name] for name in HEADERS)
    signature = _fresh_signature(timestamp, signature_hex, now)
    message = "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()
    if not (
        _verified(jwks.keys(), signature, message)
        or _verified(jwks.keys(refresh=True), signature, message)
    ):
        raise WebhookRejectedError("signature does not verify against the JWKS")
    return request_id


def _fresh_signature(timestamp: str, signature_hex: str, now: float | None) -> bytes:
    """The signature's bytes, refused when it is malformed or its timestamp too far off."""
    try:
        age = (now if now is not None else time.time()) - int(timestamp)
        signature = bytes.fromhex(signature_hex)
    except ValueError as exc:
        raise WebhookRejectedError("malformed timestamp or signature") from exc
    if age > SIGNATURE_TOLERANCE_SECONDS:
        raise WebhookRejectedError(
            f"timestamp {age:.0f} s old (limit {SIGNATURE_TOLERANCE_SECONDS})"
        )
    if -age > FUTURE_TOLERANCE_SECONDS:
        raise WebhookRejectedError(
            f"timestamp {-age:.0f} s ahead (limit {FUTURE_TOLERANCE_SECONDS})"
        )
    return signature


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise WebhookRejectedError("signed body is not JSON") from exc
    if not isinstance(document, dict):
        raise WebhookRejectedError("signed body is not a JSON object")
    return document


def _read_body(document: dict[str, Any], request_id: str) -> VerifiedWebhook:
    """What the signed body says, for the request the headers named."""
    named = (document.get("request_id"), document.get("gateway_request_id"))
    if request_id not in named or not isinstance(document.get("request_id"), str):
        raise WebhookRejectedError("body and header name different requests")
    status = str(document.get("status", ""))
    if status not in ("OK", "ERROR"):
        raise WebhookRejectedError(f"unknown webhook status {status!r}")
    queue_request_id = str(document["request_id"])
    if status == "ERROR":
        payload = document.get("payload")
        error_type = payload.get("error_type") if isinstance(payload, dict) else None
        return VerifiedWebhook(
            queue_request_id, status, _error_text(document, error_type), error_type=error_type
        )
    return VerifiedWebhook(queue_request_id, status, None, _carried_result(document))


def _error_text(document: dict[str, Any], error_type: str | None) -> str:
    """`error` is the headline; the detail (a 422's list, for one) is in `payload`."""
    error = str(document.get("error") or "the model reported an error")
    payload = document.get("payload")
    if isinstance(payload, dict) and payload.get("detail"):
        error = f"{error}: {describe_detail_value(payload['detail'])}"
    return with_error_type(error, error_type)


def _carried_result(document: dict[str, Any]) -> str | None:
    payload = document.get("payload")
    if not isinstance(payload, dict) or document.get("payload_error"):
        return None  # fal could not include it: collect fetches it from the response URL
    try:
        result = ModelResult.model_validate(payload)
    except ValidationError:
        return None
    text = result.model_dump_json()
    return text if len(text.encode()) <= MAX_CARRIED_PAYLOAD_BYTES else None


def _verified(keys: list[Ed25519PublicKey], signature: bytes, message: bytes) -> bool:
    for key in keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
