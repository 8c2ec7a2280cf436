"""Webhook verification (fal's Ed25519 scheme) and the token/webhook rendezvous."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kontext_pipeline.models import ModelJob
from kontext_pipeline.webhooks import (
    JwksCache,
    VerifiedWebhook,
    WebhookRejectedError,
    WebhookRendezvous,
    verify_webhook,
)

from tests.conftest import load_event, loopback_server

REQUEST_ID = "e36fc67f-afa7-416a-a288-50d90a630d7a"


def jwk_for(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": kid,
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }


class _Jwks(BaseHTTPRequestHandler):
    document: ClassVar[dict[str, Any]] = {"keys": []}
    fetches: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        body = json.dumps(self.document).encode()
        _Jwks.fetches.append(time.time())
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def jwks_url() -> Iterator[str]:
    _Jwks.fetches = []
    with loopback_server(_Jwks) as base_url:
        yield f"{base_url}/.well-known/jwks.json"


def signed(
    key: Ed25519PrivateKey,
    body: bytes,
    *,
    timestamp: int | None = None,
    request_id: str = REQUEST_ID,
) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    message = "\n".join((request_id, "user-1", stamp, hashlib.sha256(body).hexdigest()))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": "user-1",
        "X-Fal-Webhook-Timestamp": stamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


BODY = json.dumps(load_event("fal_webhook_ok")).encode()


def test_a_signed_webhook_is_verified(jwks_url: str) -> None:
    # Given the model's key in the JWKS and a webhook signed with it
    key = Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    with httpx.Client(timeout=2) as http:
        # When verified / Then it is accepted with its status
        webhook = verify_webhook(signed(key, BODY), BODY, JwksCache(http, jwks_url))
    assert webhook == VerifiedWebhook(REQUEST_ID, "OK", None)


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("body", "signature"),
        ("stale", "off"),
        ("future", "off"),
        ("forged", "signature"),
        ("missing", "missing headers"),
        ("other-request", "different requests"),
    ],
)
def test_bad_webhooks_are_rejected(jwks_url: str, tamper: str, why: str) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    body, headers = BODY, signed(key, BODY)
    if tamper == "body":
        body = BODY.replace(b'"OK"', b'"ERROR"')
    elif tamper == "stale":
        headers = signed(key, BODY, timestamp=int(time.time()) - 301)
    elif tamper == "future":
        headers = signed(key, BODY, timestamp=int(time.time()) + 301)
    elif tamper == "forged":
        headers = signed(stranger, BODY)
    elif tamper == "missing":
        headers.pop("X-Fal-Webhook-Signature")
    elif tamper == "other-request":
        headers = signed(key, BODY, request_id="another-request")
    with httpx.Client(timeout=2) as http, pytest.raises(WebhookRejectedError, match=why):
        verify_webhook(headers, body, JwksCache(http, jwks_url))


def test_a_rotated_key_is_fetched_once_the_cache_is_old_enough(jwks_url: str) -> None:
    # Given a cache holding the old key, fetched 10 minutes ago
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(old, "old")]}
    clock = [1_000_000.0]
    with httpx.Client(timeout=2) as http:
        cache = JwksCache(http, jwks_url, clock=lambda: clock[0])
        cache.keys()
        _Jwks.document = {"keys": [jwk_for(new, "new")]}
        clock[0] += 600
        # When a webhook signed with the new key arrives / Then the JWKS is refetched once
        assert verify_webhook(signed(new, BODY), BODY, cache).status == "OK"
    assert len(_Jwks.fetches) == 2


def test_forged_webhooks_do_not_hammer_the_jwks(jwks_url: str) -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    with httpx.Client(timeout=2) as http:
        cache = JwksCache(http, jwks_url)
        for _ in range(5):
            with pytest.raises(WebhookRejectedError):
                verify_webhook(signed(stranger, BODY), BODY, cache)
    assert len(_Jwks.fetches) == 1


# --- rendezvous --------------------------------------------------------------------------


@pytest.fixture
def rendezvous(aws: Any) -> tuple[WebhookRendezvous, Any]:
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName="jobs",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    sent: list[dict[str, Any]] = []

    class RecordingStepFunctions:
        # Step Functions refuses a token used once; recorded here to count completions.
        def send_task_success(self, **kwargs: Any) -> None:
            sent.append({"success": kwargs})

        def send_task_failure(self, **kwargs: Any) -> None:
            sent.append({"failure": kwargs})

    return WebhookRendezvous(dynamodb, RecordingStepFunctions(), "jobs"), sent


def job() -> ModelJob:
    return ModelJob.model_validate(load_event("task_check_status")["job"])


def test_an_error_webhook_carries_the_models_error(jwks_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    body = json.dumps(load_event("fal_webhook_error")).encode()
    with httpx.Client(timeout=2) as http:
        webhook = verify_webhook(signed(key, body), body, JwksCache(http, jwks_url))
    assert (webhook.status, webhook.error) == ("ERROR", "Invalid status code: 422")


@pytest.mark.parametrize("token_first", [True, False])
def test_the_job_resumes_whichever_half_arrives_first(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]], token_first: bool
) -> None:
    meeting, sent = rendezvous
    webhook = VerifiedWebhook(REQUEST_ID, "OK", None)
    if token_first:
        assert meeting.register_token(job(), "token-1") == "waiting"
        assert meeting.record_webhook(webhook) == "completed"
    else:
        assert meeting.record_webhook(webhook) == "waiting"
        assert meeting.register_token(job(), "token-1") == "completed"
    assert len(sent) == 1
    output = json.loads(sent[0]["success"]["output"])
    assert output["status"] == "COMPLETED"
    assert output["request_id"] == REQUEST_ID


def test_an_error_webhook_fails_the_task_with_the_models_reason(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]],
) -> None:
    meeting, sent = rendezvous
    meeting.register_token(job(), "token-1")
    meeting.record_webhook(VerifiedWebhook(REQUEST_ID, "ERROR", "NSFW content detected"))
    failure = sent[0]["failure"]
    assert failure["error"] == "ModelRequestFailedError"
    assert "NSFW content detected" in json.loads(failure["cause"])["errorMessage"]
