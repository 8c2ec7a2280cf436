"""The HTTP intake through the local run: the built intake function behind its local
function URL, the real S3 trigger and state machine, as a client calls it (httpx, no AWS
SDK): an edit from an image URL with a signed callback, an edit by presigned upload, and
the refusals a caller meets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from kontext_tools.api_keys import ApiKeyAdmin
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import ROOT, base_url_of, make_image, received
from tests.integration.conftest import FAST_MODEL

SAMPLE = (ROOT / "samples" / "kitchen-table.jpg").read_bytes()


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(emulator_timing=FAST_MODEL) as running:
        yield running


@pytest.fixture(scope="module")
def client(pipeline: LocalPipeline) -> Iterator[httpx.Client]:
    """A caller of the intake with a key the CLI made."""
    admin = ApiKeyAdmin(pipeline.clients.dynamodb, pipeline.outputs["JobsTableName"])
    _, key = admin.create("integration")
    base_url = pipeline.outputs["IntakeUrl"].rstrip("/")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        yield http


def finished(client: httpx.Client, edit: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """GET the edit until it has succeeded or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status: dict[str, Any] = client.get(edit["status_url"]).json()
        if status["status"] in ("succeeded", "failed"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"edit {edit['id']} still {status['status']} after {timeout} s")


def test_an_image_url_is_edited_and_called_back_signed(
    pipeline: LocalPipeline, client: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given an image on a host, and a receiver for the job's callback
    httpserver.expect_request("/kitchen.jpg").respond_with_data(SAMPLE, content_type="image/jpeg")
    httpserver.expect_request("/hook", method="POST").respond_with_data("")
    base = base_url_of(httpserver)
    body = {
        "image_url": f"{base}/kitchen.jpg",
        "prompt": "Put a donut next to the flour.",
        "num_images": 2,
        "callback_url": f"{base}/hook",
        "metadata": {"order": "A-1001"},
    }
    # When an app posts the edit
    answer = client.post("/v1/edits", json=body)
    # Then it is accepted, and the job runs from the stored upload to its outputs
    assert answer.status_code == 202, answer.text
    done = finished(client, answer.json())
    assert (done["status"], done["reason"]) == ("succeeded", None)
    assert len(done["outputs"]) == 2
    # And each output link serves the image, without AWS credentials
    for link in done["outputs"]:
        assert httpx.get(link, timeout=10).content[:3] == b"\xff\xd8\xff"
    # And the callback came, signed with the stack's secret, naming the upload
    pipeline.settle(timeout=30)
    secret = pipeline.clients.secretsmanager.get_secret_value(
        SecretId=pipeline.outputs["CallbackSigningSecretArn"]
    )["SecretString"]
    [(headers, raw)] = [(h, b) for h, b in received(httpserver) if "webhook-id" in h]
    payload = Webhook("whsec_" + secret).verify(raw, headers)
    assert payload["source"]["key"] == done["object"]["key"]


def test_an_upload_form_takes_the_image_and_refuses_a_changed_prompt(
    client: httpx.Client,
) -> None:
    # Given an upload form from the intake
    answer = client.post(
        "/v1/edits", json={"upload": True, "content_type": "image/jpeg", "prompt": "Add a cat."}
    )
    assert answer.status_code == 201, answer.text
    edit = answer.json()
    form = edit["upload"]
    # When a client changes the prompt in it / Then S3 refuses the upload
    changed = form["fields"] | {"x-amz-meta-prompt": "Something else."}
    files = {"file": ("kitchen.jpg", SAMPLE, "image/jpeg")}
    assert httpx.post(form["url"], data=changed, files=files, timeout=30).status_code == 403
    assert client.get(edit["status_url"]).json()["status"] == "awaiting_upload"
    # When the image is posted with the form as given
    assert httpx.post(form["url"], data=form["fields"], files=files, timeout=30).status_code == 204
    # Then the edit runs to its outputs
    done = finished(client, edit)
    assert (done["status"], len(done["outputs"])) == ("succeeded", 1)


def test_an_idempotency_key_gives_the_same_edit_once(
    pipeline: LocalPipeline, client: httpx.Client
) -> None:
    # Given a request with an Idempotency-Key
    body = {"upload": True, "prompt": "Make it night."}
    headers = {"Idempotency-Key": "integration-night"}
    # When it is sent twice, then with another body
    first = client.post("/v1/edits", json=body, headers=headers)
    again = client.post("/v1/edits", json=body, headers=headers)
    other = client.post("/v1/edits", json=body | {"seed": 3}, headers=headers)
    # Then one edit, the same answer, and a conflict
    assert (first.status_code, again.status_code, other.status_code) == (201, 201, 409)
    assert again.json()["id"] == first.json()["id"]
    assert other.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"headers": {"Authorization": ""}}, 401, "unauthorized"),
        ({"headers": {"Authorization": "Bearer kp_000000000000_revoked"}}, 401, "unauthorized"),
        (
            {"json": {"image_url": "https://169.254.169.254/latest/meta-data/", "prompt": "x"}},
            422,
            "image_url_refused",
        ),
        ({"json": {"image_url": "http://10.0.0.1/x.png", "prompt": "x"}}, 422, "image_url_refused"),
        (
            {"json": {"upload": True, "prompt": "x", "metadata": {"blob": "x" * 70_000}}},
            413,
            "request_too_large",
        ),
        ({"json": {"upload": True}}, 400, "missing_prompt"),
    ],
)
def test_what_a_caller_may_not_do_is_refused_as_a_problem(
    client: httpx.Client, change: dict[str, Any], status: int, reason: str
) -> None:
    # Given a request without a valid key, for an internal address, too large, or incomplete
    request = {"json": {"upload": True, "prompt": "x"}} | change
    # When it reaches the function URL / Then the problem document names the reason
    answer = client.post("/v1/edits", **request)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"urn:kontext-pipeline:problem:{reason}"


def test_a_non_image_and_a_50_mb_image_are_refused_before_anything_is_stored(
    pipeline: LocalPipeline, client: httpx.Client, httpserver: HTTPServer
) -> None:
    # Given a host serving a page and a 50 MB image
    httpserver.expect_request("/page.png").respond_with_data("<html>", content_type="text/html")
    big = make_image()[:64] + bytes(50 * 1024 * 1024)
    httpserver.expect_request("/big.png").respond_with_data(big, content_type="image/png")
    before = pipeline.clients.s3.list_objects_v2(
        Bucket=pipeline.outputs["ImagesBucketName"], Prefix="inputs/api/"
    ).get("KeyCount", 0)
    # When each is asked for / Then 415 and 413, and no new upload
    for path, status in (("/page.png", 415), ("/big.png", 413)):
        body = {"image_url": base_url_of(httpserver) + path, "prompt": "x"}
        assert client.post("/v1/edits", json=body).status_code == status
    after = pipeline.clients.s3.list_objects_v2(
        Bucket=pipeline.outputs["ImagesBucketName"], Prefix="inputs/api/"
    ).get("KeyCount", 0)
    assert after == before
