"""The HTTP intake on moto: who may call, what a request becomes (an object under the input
prefix with the trigger's metadata, or a presigned form bound to it), what is refused and
how (problem documents), the status read back, and Idempotency-Key."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kontext_pipeline.core.notification import Notification
from kontext_pipeline.intake.api_keys import ApiKeys
from kontext_pipeline.intake.edits import IntakeDeps
from kontext_pipeline.intake.image_fetch import FetchLimits
from kontext_pipeline.intake.routes import IntakeApi, handle_request
from kontext_pipeline.jobs.published import record_outcome
from kontext_pipeline.notifications.callbacks import CallbackRules
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from kontext_tools.api_keys import ApiKeyAdmin
from tests.conftest import JOBS_TABLE, base_url_of, load_event, make_image
from tests.fakes import Context

BUCKET = "kontext-images-intake"
MAX_BYTES = 1_000_000
LOCAL_RULES = CallbackRules((), allow_loopback=True, any_public_host=True)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def intake(aws: Any, http: httpx.Client, rules: CallbackRules = LOCAL_RULES) -> IntakeApi:
    deps = IntakeDeps(
        s3=aws.client("s3"),
        dynamodb=aws.client("dynamodb"),
        table_name=JOBS_TABLE,
        bucket=BUCKET,
        input_prefix="inputs/",
        http=http,
        image_rules=rules,
        limits=FetchLimits(max_bytes=MAX_BYTES, deadline_seconds=2.0),
    )
    return IntakeApi(deps, ApiKeys(aws.client("dynamodb"), JOBS_TABLE), "key")


@pytest.fixture
def api(aws: Any, jobs_table: Any, http: httpx.Client) -> IntakeApi:
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return intake(aws, http)


@pytest.fixture
def key(aws: Any, api: IntakeApi) -> str:
    """An API key the CLI made."""
    return ApiKeyAdmin(aws.client("dynamodb"), JOBS_TABLE).create("shop")[1]


@pytest.fixture
def images(httpserver: HTTPServer) -> str:
    """An image host on 127.0.0.1: /table.png is an image, /page.html is not."""
    httpserver.expect_request("/table.png").respond_with_data(
        make_image(), content_type="image/png"
    )
    httpserver.expect_request("/page.html").respond_with_data("<html>", content_type="text/html")
    return base_url_of(httpserver)


def call(
    api: IntakeApi,
    body: Any = None,
    *,
    key: str | None,
    method: str = "POST",
    path: str = "/v1/edits",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """The sample function URL event with this request in it, through the routes."""
    event = load_event("function_url_intake_post")
    event["headers"].pop("idempotency-key")
    event["headers"]["authorization"] = f"Bearer {key}" if key else ""
    event["headers"] |= headers or {}
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    answer = handle_request(event, Context(), api)  # type: ignore[arg-type]
    return answer["statusCode"], json.loads(answer["body"])


def edit_of(images: str, **fields: Any) -> dict[str, Any]:
    return {"image_url": f"{images}/table.png", "prompt": "Put a donut next to the flour."} | fields


# --- who may call ----------------------------------------------------------------------


@pytest.mark.parametrize("presented", [None, "kp_0123456789ab_wrong", "Basic abc", "kp_"])
def test_a_request_without_a_key_this_stack_made_is_refused(
    api: IntakeApi, key: str, images: str, presented: str | None
) -> None:
    # Given a stack with one key, and a request with none, a wrong one or another scheme
    # When it is sent
    status, problem = call(api, edit_of(images), key=presented)
    # Then it is refused as unauthorized, a problem document, and nothing was stored
    assert (status, problem["type"]) == (401, "urn:kontext-pipeline:problem:unauthorized")
    assert "Contents" not in api.deps.s3.list_objects_v2(Bucket=BUCKET)


def test_with_no_key_made_nothing_is_accepted(api: IntakeApi, images: str) -> None:
    # Given a stack where no key was ever made / When a request names a key / Then 401
    assert call(api, edit_of(images), key="kp_0123456789ab_x")[0] == 401


def test_a_revoked_key_is_refused_and_keys_are_kept_as_hashes_only(
    aws: Any, api: IntakeApi, key: str, images: str
) -> None:
    # Given a key that works
    assert call(api, edit_of(images), key=key)[0] == 202
    # When the CLI revokes it
    admin = ApiKeyAdmin(aws.client("dynamodb"), JOBS_TABLE)
    assert [revoked.name for revoked in admin.revoke("shop")] == ["shop"]
    # Then it is refused, saying so, and listed as revoked
    status, problem = call(api, edit_of(images), key=key)
    assert (status, problem["reason"]) == (401, "unauthorized")
    assert "revoked" in problem["detail"]
    assert [(k.name, k.revoked) for k in admin.every_key()] == [("shop", True)]
    # And the table never held the key itself
    items = aws.client("dynamodb").scan(TableName=JOBS_TABLE)["Items"]
    assert key.rsplit("_", 1)[1] not in json.dumps(items)


# --- an edit from an image URL ---------------------------------------------------------------


def test_an_image_url_becomes_an_upload_the_trigger_reads(
    api: IntakeApi, key: str, images: str
) -> None:
    # Given a request naming an image, options, a callback and metadata of the caller's
    body = edit_of(images, num_images=2, output_format="png") | {
        "callback_url": "https://hooks.example.com/k",
        "metadata": {"order": "A-1001"},
    }
    # When it is sent
    status, edit = call(api, body, key=key)
    # Then 202: the edit names its object, stored under the input prefix with the metadata
    assert status == 202
    assert re.fullmatch(r"ed_[0-9a-f]{24}", edit["id"])
    assert edit["status_url"] == f"/v1/edits/{edit['id']}"
    stored = edit["object"]
    assert stored["key"] == f"inputs/api/{edit['id']}.png"
    head = api.deps.s3.head_object(Bucket=BUCKET, Key=stored["key"], VersionId=stored["version_id"])
    assert head["ContentType"] == "image/png"
    assert head["Metadata"] == {
        "prompt": "Put a donut next to the flour.",
        "num-images": "2",
        "output-format": "png",
        "callback-url": "https://hooks.example.com/k",
        "order": "A-1001",
        "edit-id": edit["id"],
    }


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ("not json", 400, "invalid_request"),
        ({"prompt": "x"}, 400, "invalid_request"),
        ({"prompt": "x", "upload": True, "image_url": "https://a/b.png"}, 400, "invalid_request"),
        ({"upload": True}, 400, "missing_prompt"),
        ({"upload": True, "prompt": "x", "num_images": 9}, 400, "invalid_option"),
        ({"upload": True, "prompt": "x", "colour": "red"}, 400, "invalid_request"),
        ({"upload": True, "prompt": "x", "metadata": {"prompt": "y"}}, 400, "invalid_request"),
        ({"upload": True, "prompt": "x" * 3000}, 400, "invalid_request"),
        ({"upload": True, "prompt": "x", "content_type": "text/html"}, 400, "invalid_request"),
        ({"upload": True, "prompt": "x", "metadata": {"naïve key": "v"}}, 400, "invalid_request"),
        (
            {"upload": True, "prompt": "x", "callback_url": "https://a/\r\nX: y"},
            400,
            "invalid_request",
        ),
    ],
)
def test_a_request_the_job_would_fail_on_is_refused_before_anything_is_stored(
    api: IntakeApi, key: str, body: Any, status: int, reason: str
) -> None:
    # Given a body that is no edit request, or one the trigger's rules refuse
    # When it is sent
    answered, problem = call(api, body, key=key)
    # Then the problem names the reason of the README's failure table, and says what to fix
    assert (answered, problem["reason"], problem["status"]) == (status, reason, status)
    assert problem["type"] == f"urn:kontext-pipeline:problem:{reason}"
    assert problem["detail"]
    assert "Contents" not in api.deps.s3.list_objects_v2(Bucket=BUCKET)


def test_the_2_kb_of_metadata_count_the_edits_own_id(api: IntakeApi, key: str) -> None:
    # Given a prompt that fits S3's 2 KB of metadata alone, but not with the edit's id
    # ("edit-id" and "ed_" + 24 hex: 34 bytes) that the object carries too
    body = {"upload": True, "prompt": "x" * (2048 - len("prompt") - 10)}
    # When it is sent / Then it is refused now, not by S3 at the upload
    status, problem = call(api, body, key=key)
    assert (status, problem["reason"]) == (400, "invalid_request")
    assert "2048" in problem["detail"]


def test_an_oversized_body_is_refused(api: IntakeApi, key: str) -> None:
    # Given a body over 64 KB (an image sent inline, say)
    body = {"prompt": "x", "upload": True, "metadata": {"blob": "x" * 70_000}}
    # When it is sent / Then 413, request_too_large
    assert call(api, body, key=key)[1]["reason"] == "request_too_large"


def test_image_urls_the_callbacks_rules_refuse_are_never_fetched(
    aws: Any, jobs_table: Any, http: httpx.Client, key: str, httpserver: HTTPServer
) -> None:
    # Given the deployed rules (no loopback), and a host on 127.0.0.1 that would answer
    deployed = intake(aws, http, CallbackRules((), any_public_host=True, hosts_setting="X"))
    port = httpserver.port
    for url in (
        f"http://127.0.0.1:{port}/table.png",  # plain http, an IP literal
        f"https://127.0.0.1:{port}/table.png",
        f"https://localhost:{port}/table.png",  # a name, but not on 443 (and loopback)
        "https://localhost/table.png",  # loopback
        "ftp://images.example.com/table.png",
    ):
        # When a request names it
        status, problem = call(deployed, edit_of("", image_url=url), key=key)
        # Then it is refused as image_url_refused, and nothing was asked for
        assert (status, problem["reason"]) == (422, "image_url_refused"), url
    assert httpserver.log == []


def test_a_redirect_to_another_host_is_refused(
    api: IntakeApi, key: str, httpserver: HTTPServer
) -> None:
    # Given an image URL that redirects to another host
    port = httpserver.port
    httpserver.expect_request("/moved.png").respond_with_response(
        Response(status=302, headers={"Location": f"http://localhost:{port}/table.png"})
    )
    # When it is sent / Then it is refused, and the other host never asked
    status, problem = call(
        api,
        edit_of(base_url_of(httpserver), image_url=f"{base_url_of(httpserver)}/moved.png"),
        key=key,
    )
    assert (status, problem["reason"]) == (422, "image_url_refused")
    assert [request.path for request, _ in httpserver.log] == ["/moved.png"]


def test_what_is_not_an_image_or_too_large_or_too_slow_is_refused(
    api: IntakeApi, key: str, images: str, httpserver: HTTPServer
) -> None:
    # Given a page, a 50 MB image (declared, and streamed without a length), and a body
    # that trickles in
    big = make_image()[:64] + bytes(50 * 1024 * 1024)
    httpserver.expect_request("/big.png").respond_with_data(big, content_type="image/png")

    def streamed(_: Request) -> Response:
        return Response(
            (big[i : i + 65536] for i in range(0, len(big), 65536)), content_type="image/png"
        )

    def trickle(_: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield make_image()[:64]
            for _ in range(40):
                time.sleep(0.1)
                yield b"\0" * 10

        return Response(chunks(), content_type="image/png")

    httpserver.expect_request("/streamed.png").respond_with_handler(streamed)
    httpserver.expect_request("/slow.png").respond_with_handler(trickle)
    cases = {"/page.html": 415, "/big.png": 413, "/streamed.png": 413, "/slow.png": 422}
    for path, expected in cases.items():
        # When each is named / Then each is refused with its own reason
        status, problem = call(api, edit_of(images, image_url=images + path), key=key)
        assert status == expected, (path, problem)
    assert "Contents" not in api.deps.s3.list_objects_v2(Bucket=BUCKET)


# --- an edit by upload ------------------------------------------------------------------------


def test_an_upload_form_binds_the_prompt_options_type_and_size(api: IntakeApi, key: str) -> None:
    # Given a request for an upload form
    body = {"upload": True, "content_type": "image/jpeg", "prompt": "Add a café ☕", "seed": 7}
    # When it is sent
    status, edit = call(api, body, key=key)
    # Then 201 with a form for a key under the input prefix
    assert status == 201
    form = edit["upload"]
    assert form["method"] == "POST"
    assert edit["object"] == {
        "bucket": BUCKET,
        "key": f"inputs/api/{edit['id']}.jpg",
        "version_id": None,
    }
    # And the signed policy holds the key, the type, the metadata and the size range
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": edit["object"]["key"]} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert {"x-amz-meta-prompt": "=?utf-8?b?QWRkIGEgY2Fmw6kg4piV?="} in conditions
    assert {"x-amz-meta-seed": "7"} in conditions
    assert {"x-amz-meta-edit-id": edit["id"]} in conditions
    assert ["content-length-range", 1, MAX_BYTES] in conditions


def test_the_status_follows_the_upload_and_the_jobs_recorded_end(
    aws: Any, api: IntakeApi, key: str
) -> None:
    # Given an upload form
    _, edit = call(api, {"upload": True, "prompt": "make it snow"}, key=key)
    path = edit["status_url"]
    # When nothing was uploaded yet / Then the edit awaits its upload
    assert call(api, key=key, method="GET", path=path)[1]["status"] == "awaiting_upload"
    # When the image lands / Then it is processing
    s3 = api.deps.s3
    version = s3.put_object(Bucket=BUCKET, Key=edit["object"]["key"], Body=make_image())[
        "VersionId"
    ]
    assert call(api, key=key, method="GET", path=path)[1]["status"] == "processing"
    # When its job ends, recorded as its notifier records it
    s3.put_object(Bucket=BUCKET, Key="outputs/api/x/1.png", Body=make_image())
    notification = load_event("eventbridge_edit_succeeded")["detail"]
    notification["source"] = {"bucket": BUCKET, "key": edit["object"]["key"], "version_id": version}
    notification["outputs"][0] |= {"bucket": BUCKET, "key": "outputs/api/x/1.png"}
    record_outcome(aws.client("dynamodb"), JOBS_TABLE, Notification.model_validate(notification))
    # Then it succeeded, with a working link to each output
    status, done = call(api, key=key, method="GET", path=path)
    assert (status, done["status"], done["reason"]) == (200, "succeeded", None)
    assert len(done["outputs"]) == 1
    assert "outputs/api/x/1.png" in done["outputs"][0]


def test_another_keys_edit_and_unknown_routes_are_not_found(
    aws: Any, api: IntakeApi, key: str
) -> None:
    # Given an edit made with one key, and a second key
    _, edit = call(api, {"upload": True, "prompt": "x"}, key=key)
    other = ApiKeyAdmin(aws.client("dynamodb"), JOBS_TABLE).create("crm")[1]
    # When the second asks for it, or for a route there is none of / Then 404 problems
    assert (
        call(api, key=other, method="GET", path=edit["status_url"])[1]["reason"] == "edit_not_found"
    )
    assert call(api, key=key, method="GET", path="/v1/edits/ed_nope")[0] == 404
    assert call(api, key=key, method="DELETE", path="/v1/edits")[0] == 404


# --- Idempotency-Key -----------------------------------------------------------------------------


def test_an_idempotency_key_makes_one_edit_and_another_body_is_a_conflict(
    api: IntakeApi, key: str, images: str, httpserver: HTTPServer
) -> None:
    # Given a request sent with an Idempotency-Key
    headers = {"idempotency-key": "order-A-1001"}
    first = call(api, edit_of(images), key=key, headers=headers)
    # When it is sent again, the same / Then the same edit, and the image fetched once
    assert call(api, edit_of(images), key=key, headers=headers) == first
    assert first[0] == 202
    assert len(httpserver.log) == 1
    assert len(api.deps.s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == 1
    # When the key comes with another body / Then 409, and nothing more is stored
    status, problem = call(api, edit_of(images, seed=1), key=key, headers=headers)
    assert (status, problem["reason"]) == (409, "idempotency_conflict")
    assert len(api.deps.s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == 1


def test_a_keys_daily_image_cap_counts_what_its_edits_ask_for(
    aws: Any, api: IntakeApi, images: str
) -> None:
    # Given a key with its own cap of 3 images a day
    _, capped = ApiKeyAdmin(aws.client("dynamodb"), JOBS_TABLE).create("trial", daily_images=3)
    # When it asks for 2 images, then 2 more (once with an Idempotency-Key, sent twice)
    first = call(api, edit_of(images, num_images=2), key=capped, headers={"idempotency-key": "a"})
    again = call(api, edit_of(images, num_images=2), key=capped, headers={"idempotency-key": "a"})
    second = call(api, edit_of(images, num_images=2), key=capped)
    # Then the first is made (its replay not counted again), the second refused with 429
    assert (first[0], again[0]) == (202, 202)
    assert (second[0], second[1]["reason"]) == (429, "key_daily_cap_reached")
    # And one more image still fits the day
    assert call(api, edit_of(images), key=capped)[0] == 202


def test_with_iam_auth_the_signed_caller_is_the_key_and_an_unsigned_one_is_refused(
    aws: Any, jobs_table: Any, http: httpx.Client
) -> None:
    # Given the intake with IntakeAuth=iam, and a request the function URL signed-checked
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    keyed = intake(aws, http)
    api = IntakeApi(keyed.deps, keyed.keys, "iam")
    event = load_event("function_url_intake_post")
    event["headers"] = {"content-type": "application/json"}
    event["body"] = json.dumps({"upload": True, "prompt": "x"})
    arn = "arn:aws:iam::123456789012:role/shop"
    signed = event | {
        "requestContext": event["requestContext"] | {"authorizer": {"iam": {"userArn": arn}}}
    }
    # When each is sent
    made = handle_request(signed, Context(), api)  # type: ignore[arg-type]
    unsigned = handle_request(event, Context(), api)  # type: ignore[arg-type]
    # Then the signed caller's edit is made, with no API key, and the other is refused
    assert made["statusCode"] == 201
    assert unsigned["statusCode"] == 401
