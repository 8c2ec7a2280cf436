"""Webhook verification (fal's Ed25519 scheme) and the token/webhook rendezvous."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any, ClassVar

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from kontext_pipeline.core.errors import WebhookRejectedError
from kontext_pipeline.core.models import ModelJob, ModelResult
from kontext_pipeline.jobs.webhook_rendezvous import WebhookRendezvous, expect_webhook
from kontext_pipeline.model_queue.webhooks import JwksCache, VerifiedWebhook, verify_webhook
from pytest_httpserver import HTTPServer
from werkzeug import Response

from tests.conftest import load_event
from tests.fakes import sample_job

REQUEST_ID = "e36fc67f-afa7-416a-a288-50d90a630d7a"


def jwk_for(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": kid,
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
    }


class _Jwks:
    """The key set the JWKS endpoint serves; each test sets its own."""

    document: ClassVar[dict[str, Any]] = {"keys": []}


@pytest.fixture
def jwks_url(httpserver: HTTPServer) -> str:
    """fal's JWKS, served on 127.0.0.1 as `_Jwks.document` holds it at each fetch."""
    httpserver.expect_request("/.well-known/jwks.json").respond_with_handler(
        lambda _: Response(json.dumps(_Jwks.document), content_type="application/json")
    )
    return str(httpserver.url_for("/.well-known/jwks.json"))


def signed(
    key: Ed25519PrivateKey,
    body: bytes,
    *,
    timestamp: int | None = None,
    request_id: str = REQUEST_ID,
    user_id: str = "user-1",
) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    message = "\n".join((request_id, user_id, stamp, hashlib.sha256(body).hexdigest()))
    return {
        "X-Fal-Webhook-Request-Id": request_id,
        "X-Fal-Webhook-User-Id": user_id,
        "X-Fal-Webhook-Timestamp": stamp,
        "X-Fal-Webhook-Signature": key.sign(message.encode()).hex(),
    }


BODY = json.dumps(load_event("fal_webhook_ok")).encode()


def verified(jwks_url: str, body: bytes, *, request_id: str = REQUEST_ID) -> VerifiedWebhook:
    """`body` signed (over `request_id`) with a key the JWKS publishes, then verified."""
    key = Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    with httpx.Client(timeout=2) as http:
        headers = signed(key, body, request_id=request_id)
        return verify_webhook(headers, body, JwksCache(http, jwks_url))


def test_a_signed_webhook_is_verified(jwks_url: str) -> None:
    # Given the model's key in the JWKS and a webhook signed with it
    # When verified
    webhook = verified(jwks_url, BODY)
    # Then it is accepted with its status, and its payload is the result
    assert (webhook.request_id, webhook.status, webhook.error) == (REQUEST_ID, "OK", None)
    assert webhook.result_json is not None
    result = ModelResult.model_validate_json(webhook.result_json)
    assert [image.width for image in result.images] == [1024]


def test_a_webhook_signed_over_the_gateway_request_id_is_accepted(jwks_url: str) -> None:
    # Given a request fal retried internally: its webhook's header names the gateway id
    # (the last attempt), while the body's request_id is the one the queue API (and the
    # job) knows; its payload's timings and nsfw flags are null
    document = load_event("fal_webhook_gateway_id")
    body = json.dumps(document).encode()
    # When verified
    webhook = verified(jwks_url, body, request_id=document["gateway_request_id"])
    # Then it completes the job that knows the queue's request id, with the payload read
    assert webhook.request_id == document["request_id"] != document["gateway_request_id"]
    assert webhook.status == "OK"
    assert webhook.result_json is not None
    result = ModelResult.model_validate_json(webhook.result_json)
    assert (result.has_nsfw_concepts, result.timings) == ([], {})


def test_a_webhook_without_its_payload_leaves_the_result_to_be_fetched(jwks_url: str) -> None:
    # Given an OK webhook whose payload fal could not include (payload_error)
    body = json.dumps(load_event("fal_webhook_payload_error")).encode()
    # When verified
    webhook = verified(jwks_url, body)
    # Then the job completes, with no result carried (collect fetches the response URL)
    assert (webhook.status, webhook.error, webhook.result_json) == ("OK", None, None)


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("body", "signature"),
        ("stale", "old"),
        ("future", "ahead"),
        ("a-little-ahead", "ahead"),
        ("forged", "signature"),
        ("other-account", "another fal account"),
        ("missing", "missing headers"),
        ("other-request", "different requests"),
    ],
)
def test_bad_webhooks_are_rejected(jwks_url: str, tamper: str, why: str) -> None:
    # Given the model's key in the JWKS, and a webhook tampered with in one way
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    body, headers = BODY, signed(key, BODY)
    if tamper == "body":
        body = BODY.replace(b'"OK"', b'"ERROR"')
    elif tamper == "stale":
        headers = signed(key, BODY, timestamp=int(time.time()) - 301)
    elif tamper == "future":
        # (30 s margin: a loaded machine may take seconds between signing and checking)
        headers = signed(key, BODY, timestamp=int(time.time()) + 330)
    elif tamper == "a-little-ahead":
        # A signature stamped to outlive the replay window (299 s ahead was accepted)
        headers = signed(key, BODY, timestamp=int(time.time()) + 60)
    elif tamper == "forged":
        headers = signed(stranger, BODY)
    elif tamper == "other-account":
        headers = signed(key, BODY, user_id="someone-else")
    elif tamper == "missing":
        headers.pop("X-Fal-Webhook-Signature")
    elif tamper == "other-request":
        headers = signed(key, BODY, request_id="another-request")
    # When verified / Then it is rejected, saying why
    with httpx.Client(timeout=2) as http, pytest.raises(WebhookRejectedError, match=why):
        verify_webhook(headers, body, JwksCache(http, jwks_url), user_id="user-1")


def test_a_rotated_key_is_fetched_once_the_cache_is_old_enough(
    jwks_url: str, httpserver: HTTPServer
) -> None:
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
    assert len(httpserver.log) == 2


def test_forged_webhooks_do_not_hammer_the_jwks(jwks_url: str, httpserver: HTTPServer) -> None:
    # Given the model's key in the JWKS, and webhooks signed by a stranger
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    _Jwks.document = {"keys": [jwk_for(key, "a")]}
    with httpx.Client(timeout=2) as http:
        cache = JwksCache(http, jwks_url)
        # When five arrive / Then each is rejected, and the JWKS was fetched once only
        for _ in range(5):
            with pytest.raises(WebhookRejectedError):
                verify_webhook(signed(stranger, BODY), BODY, cache)
    assert len(httpserver.log) == 1


# --- rendezvous --------------------------------------------------------------------------


@pytest.fixture
def rendezvous(jobs_table: Any) -> tuple[WebhookRendezvous, Any]:
    dynamodb = jobs_table
    sent: list[dict[str, Any]] = []

    class RecordingStepFunctions:
        # Step Functions refuses a token used once; recorded here to count completions.
        def send_task_success(self, **kwargs: Any) -> None:
            sent.append({"success": kwargs})

        def send_task_failure(self, **kwargs: Any) -> None:
            sent.append({"failure": kwargs})

    # The submit marked the request as ours (webhook mode), as SubmitEdit does.
    expect_webhook(dynamodb, "jobs", REQUEST_ID)
    return WebhookRendezvous(dynamodb, RecordingStepFunctions(), "jobs"), sent


def job() -> ModelJob:
    return sample_job()


def test_an_error_webhook_carries_the_models_error(jwks_url: str) -> None:
    # Given fal's ERROR webhook, its 422 detail in payload
    body = json.dumps(load_event("fal_webhook_error")).encode()
    # When verified
    webhook = verified(jwks_url, body)
    # Then it holds the headline and the detail fal puts in the payload
    assert webhook.status == "ERROR"
    assert webhook.error == "Invalid status code: 422: prompt: field required"


@pytest.mark.parametrize("token_first", [True, False])
def test_the_job_resumes_whichever_half_arrives_first(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]], token_first: bool
) -> None:
    # Given a waiting rendezvous and an OK webhook without a carried result
    meeting, sent = rendezvous
    webhook = VerifiedWebhook(REQUEST_ID, "OK", None)
    # When the token and the webhook arrive, in either order
    # Then the first waits, the second completes the task: once, COMPLETED, no result
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
    assert output["result"] is None


def test_the_webhooks_payload_travels_to_collect_with_the_job(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]],
) -> None:
    # Given a verified webhook that carried the result
    meeting, sent = rendezvous
    result = ModelResult.model_validate(load_event("fal_webhook_ok")["payload"])
    meeting.record_webhook(VerifiedWebhook(REQUEST_ID, "OK", None, result.model_dump_json()))
    # When the task token arrives
    meeting.register_token(job(), "token-1")
    # Then the resumed job holds the result, so collect needs no second fetch
    output = ModelJob.model_validate_json(sent[0]["success"]["output"])
    assert output.result == result


def test_an_error_webhook_fails_the_task_with_the_models_reason(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]],
) -> None:
    # Given a waiting job
    meeting, sent = rendezvous
    meeting.register_token(job(), "token-1")
    # When an ERROR webhook is recorded
    meeting.record_webhook(VerifiedWebhook(REQUEST_ID, "ERROR", "NSFW content detected"))
    # Then the task fails with the error the state machine matches, and the model's words
    failure = sent[0]["failure"]
    assert failure["error"] == "ModelRequestFailedError"
    assert "NSFW content detected" in json.loads(failure["cause"])["errorMessage"]


def test_an_error_webhooks_payload_detail_reaches_the_failure_cause(
    jwks_url: str, rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]]
) -> None:
    # Given a waiting job and fal's ERROR webhook, its 422 detail in payload
    body = json.dumps(load_event("fal_webhook_error")).encode()
    meeting, sent = rendezvous
    meeting.register_token(job(), "token-1")
    # When it is verified and recorded
    meeting.record_webhook(verified(jwks_url, body))
    # Then the task fails with the headline and the detail in its cause
    cause = json.loads(sent[0]["failure"]["cause"])["errorMessage"]
    assert cause == "model_request_failed: Invalid status code: 422: prompt: field required"


def test_an_error_webhooks_error_type_is_the_failures_reason_as_when_polling(
    jwks_url: str, rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]]
) -> None:
    # Given a waiting job and fal's ERROR webhook whose payload names its error type
    document = load_event("fal_webhook_error")
    document["payload"] = {"error_type": "image_load_error"}
    meeting, sent = rendezvous
    meeting.register_token(job(), "token-1")
    # When it is verified and recorded
    meeting.record_webhook(verified(jwks_url, json.dumps(document).encode()))
    # Then the failure's reason is the model's own, as CheckStatus gives the same error
    cause = json.loads(sent[0]["failure"]["cause"])["errorMessage"]
    assert cause.startswith("model_image_load_error: ")


def test_a_webhook_for_a_request_we_never_submitted_writes_nothing(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]], jobs_table: Any
) -> None:
    # Given a webhook fal signed for a request this stack never submitted (anyone can
    # point their own request's webhook at our function URL)
    meeting, sent = rendezvous
    stranger = VerifiedWebhook("their-request", "OK", None, '{"images": []}')
    # When it is recorded / Then it is refused, and nothing was written or resumed
    with pytest.raises(WebhookRejectedError, match="not submitted by this stack"):
        meeting.record_webhook(stranger)
    key = {"pk": {"S": "webhook#their-request"}}
    assert "Item" not in jobs_table.get_item(TableName="jobs", Key=key)
    assert sent == []


def test_a_webhook_seen_before_is_answered_without_a_second_write(
    rendezvous: tuple[WebhookRendezvous, list[dict[str, Any]]], jobs_table: Any
) -> None:
    # Given our request's webhook, recorded once while the wait was not parked yet
    meeting, _ = rendezvous
    assert meeting.record_webhook(VerifiedWebhook(REQUEST_ID, "OK", None)) == "waiting"
    # When fal delivers it again, now saying ERROR (a replay within the window)
    again = meeting.record_webhook(VerifiedWebhook(REQUEST_ID, "ERROR", "replayed"))
    # Then it is a duplicate: the first webhook stands
    assert again == "duplicate"
    key = {"pk": {"S": f"webhook#{REQUEST_ID}"}}
    item = jobs_table.get_item(TableName="jobs", Key=key)["Item"]
    assert item["webhook_status"] == {"S": "OK"}
    assert "webhook_error" not in item
