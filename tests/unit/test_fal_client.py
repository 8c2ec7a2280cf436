"""The queue client: protocol against the emulator over loopback; host, retry and
no-double-submit rules against a scripted transport that records every request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kontext_pipeline.core.errors import (
    ModelQueueUnavailableError,
    ModelRequestFailedError,
    ModelRequestRejectedError,
    ModelSubmitUncertainError,
)
from kontext_pipeline.core.protocols import StatusStreamUnavailableError
from kontext_pipeline.model_queue.client import FalQueueClient
from kontext_pipeline.model_queue.transport import FalEndpoint, RetryPolicy

from kontext_tools.emulator import EmulatorTiming, FalQueueEmulator
from tests.conftest import data_uri, load_event, make_image
from tests.fakes import sample_job

KEY = "test-key-123"
MODEL_PATH = "fal-ai/flux-pro/kontext/max"
SUBMIT_BODY = {"prompt": "x", "image_url": "https://example.com/a.png"}
TIMEOUT = httpx.Timeout(5.0, connect=2.0)


@pytest.fixture
def emulator() -> Iterator[FalQueueEmulator]:
    with FalQueueEmulator(
        timing=EmulatorTiming(queue_seconds=0.05, run_seconds=0.1), api_key=KEY
    ) as running:
        yield running


@pytest.fixture
def client(emulator: FalQueueEmulator) -> Iterator[FalQueueClient]:
    with httpx.Client(timeout=TIMEOUT) as http:
        yield FalQueueClient(
            http,
            FalEndpoint(emulator.base_url, MODEL_PATH, KEY),
            retry=RetryPolicy(max_attempts=3, base_delay=0.01),
        )


def wait_completed(client: FalQueueClient, status_url: str) -> None:
    deadline = time.monotonic() + 5
    while client.status(status_url).status != "COMPLETED":
        assert time.monotonic() < deadline, "request never completed"
        time.sleep(0.02)


def test_submit_poll_and_collect(client: FalQueueClient, emulator: FalQueueEmulator) -> None:
    # Given a valid request
    body = {
        "prompt": "make it blue",
        "image_url": data_uri(make_image()),
        "num_images": 2,
        "output_format": "png",
    }
    # When it is submitted and polled to completion
    submission = client.submit(body)
    wait_completed(client, submission.status_url)
    result = client.result(submission.response_url)
    # Then the URLs name the owner/app only, and the result holds two images
    assert "/fal-ai/flux-pro/requests/" in submission.status_url
    assert "/kontext/max/requests/" not in submission.status_url
    assert len(result.images) == 2
    assert emulator.submit_count == 1


def test_model_failure_is_a_failed_result(client: FalQueueClient) -> None:
    # Given a request the model will reject (a 5:4 aspect ratio it does not know)
    submission = client.submit(
        {"prompt": "x", "image_url": data_uri(make_image()), "aspect_ratio": "5:4"}
    )
    # When it completes / Then the status carries the error and the result explains it
    wait_completed(client, submission.status_url)
    assert client.status(submission.status_url).error
    with pytest.raises(ModelRequestFailedError) as caught:
        client.result(submission.response_url)
    assert caught.value.reason == "model_validation_error"
    assert "aspect_ratio" in caught.value.message


def test_cancel_outcomes(client: FalQueueClient) -> None:
    # Given a request that stays in the queue
    submission = client.submit(
        {"prompt": "x [fault:stuck-in-queue]", "image_url": data_uri(make_image())}
    )
    # When it is cancelled twice, and an unknown request once
    # Then the queue's answers are read as fal names them
    assert client.cancel(submission.cancel_url).status == "CANCELLATION_REQUESTED"
    assert client.cancel(submission.cancel_url).status == "ALREADY_COMPLETED"
    unknown = submission.cancel_url.replace(submission.request_id, "0" * 36)
    assert client.cancel(unknown).status == "NOT_FOUND"


def test_wrong_key_is_rejected_without_retry(emulator: FalQueueEmulator) -> None:
    # Given a client with the wrong key
    with httpx.Client(timeout=TIMEOUT) as http:
        client = FalQueueClient(http, FalEndpoint(emulator.base_url, MODEL_PATH, "wrong"))
        # When it submits / Then the queue's refusal is final and nothing was queued
        with pytest.raises(ModelRequestRejectedError) as caught:
            client.submit({"prompt": "x", "image_url": data_uri(make_image())})
    assert caught.value.reason == "model_auth_failed"
    assert emulator.submit_count == 0


# --- scripted transport ------------------------------------------------------------------


def scripted(
    responses: list[httpx.Response | Exception], seen: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle


def scripted_client(
    responses: list[httpx.Response | Exception], seen: list[httpx.Request]
) -> FalQueueClient:
    http = httpx.Client(transport=httpx.MockTransport(scripted(responses, seen)))
    return FalQueueClient(
        http,
        FalEndpoint(
            "https://queue.example.com/proxy",
            MODEL_PATH,
            KEY,
            auth_header="X-Api-Key",
            auth_scheme="",
        ),
        retry=RetryPolicy(max_attempts=4, base_delay=0.0),
        sleep=lambda _: None,
    )


def test_urls_on_other_hosts_are_rebuilt_on_the_configured_one() -> None:
    # Given a queue answer whose URLs point at another host (the seed's queue.fal.run)
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(200, json=load_event("fal_submit_response")),
            httpx.Response(202, json=load_event("fal_status_in_queue")),
        ],
        seen,
    )
    # When submitted and polled
    submission = client.submit(SUBMIT_BODY)
    client.status(submission.status_url)
    # Then every request, with its key, went to the configured host only
    assert {request.url.host for request in seen} == {"queue.example.com"}
    assert (
        seen[1].url.path
        == "/proxy/fal-ai/flux-pro/requests/e36fc67f-afa7-416a-a288-50d90a630d7a/status"
    )
    assert all(request.headers["X-Api-Key"] == KEY for request in seen)


def test_rate_limits_and_gateway_errors_are_retried_then_succeed() -> None:
    # Given a queue that answers 429, 503 and 504 before a status
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(429),
            httpx.Response(503),
            httpx.Response(504),
            httpx.Response(202, json=load_event("fal_status_in_progress")),
        ],
        seen,
    )
    # When polled / Then each is asked again until the status comes
    assert client.status("https://queue.example.com/proxy/x/status").status == "IN_PROGRESS"
    assert len(seen) == 4


def test_retries_are_bounded() -> None:
    # Given a queue that answers 503 every time
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(503)] * 4, seen)
    # When polled / Then it gives up after the policy's four attempts
    with pytest.raises(ModelQueueUnavailableError, match="failed 4 times"):
        client.status("https://queue.example.com/proxy/x/status")
    assert len(seen) == 4


def test_validation_errors_are_never_retried() -> None:
    # Given a queue that refuses the request's fields (422)
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(422, json=load_event("fal_result_422"))], seen)
    # When submitted / Then the refusal names the field and nothing is sent again
    with pytest.raises(ModelRequestRejectedError, match="num_images"):
        client.submit(SUBMIT_BODY)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.Response(200, content=b'{"request_id": "e36f'),
    ],
    ids=["answer lost", "answer garbled"],
)
def test_a_submit_that_may_have_been_taken_is_not_sent_again(
    answer: httpx.Response | Exception,
) -> None:
    # Given a submit sent, whose answer is lost on the way back or arrives unreadable
    seen: list[httpx.Request] = []
    client = scripted_client([answer], seen)
    # When submitted / Then the client refuses to resubmit (it may have been accepted)
    with pytest.raises(ModelSubmitUncertainError):
        client.submit(SUBMIT_BODY)
    assert len(seen) == 1


def test_a_submit_that_never_connected_is_retried() -> None:
    # Given a first connection refused: nothing reached the queue
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.ConnectError("refused"),
            httpx.Response(200, json=load_event("fal_submit_response")),
        ],
        seen,
    )
    # When submitted / Then it is sent again, and the second answer taken
    assert client.submit(SUBMIT_BODY).request_id
    assert len(seen) == 2


def test_a_malformed_status_answer_is_read_again() -> None:
    # Given a status answer cut off once, then a good one
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(200, content=b'{"status": "COMPL'),
            httpx.Response(200, json=load_event("fal_status_completed")),
        ],
        seen,
    )
    # When polled / Then the second read is used, with logs asked for
    assert client.status("https://queue.example.com/proxy/x/status").status == "COMPLETED"
    assert len(seen) == 2
    assert seen[0].url.params["logs"] == "1"


def test_status_that_stays_malformed_is_transient_error() -> None:
    # Given a status answer that is not JSON twice over
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(200, content=b"<html>oops")] * 2, seen)
    # When polled / Then it fails as a malformed answer, worth retrying later
    with pytest.raises(ModelQueueUnavailableError) as caught:
        client.status("https://queue.example.com/proxy/x/status")
    assert caught.value.reason == "malformed_queue_response"


def test_a_result_is_read_with_its_images_seed_and_nsfw_flags() -> None:
    # Given the model's result as fal sends it
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(200, json=load_event("fal_result"))], seen)
    # When collected / Then its images, seed and flags are read
    result = client.result("https://queue.example.com/proxy/fal-ai/flux-pro/requests/x")
    assert [(image.width, image.height) for image in result.images] == [(1024, 768)]
    assert (result.seed, result.has_nsfw_concepts) == (1234567, [False])


def test_completed_with_an_error_fails_the_job_with_the_models_reason() -> None:
    # Given a queue with no status stream (404) whose status answer is COMPLETED, but with
    # the model's error
    from kontext_pipeline.model_queue.poll_plan import PollPlan
    from kontext_pipeline.steps.check_status import CheckStatusDeps, run

    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(404, json={"detail": "Not Found"}),
            httpx.Response(200, json=load_event("fal_status_completed_error")),
        ],
        seen,
    )
    job = sample_job()
    # When the job is polled / Then it fails with the model's error type as the reason
    with pytest.raises(ModelRequestFailedError) as caught:
        run(job, CheckStatusDeps(queue=client, poll_plan=PollPlan(2, 30, 20)))
    assert caught.value.reason == "model_image_load_error"
    assert "could not be loaded" in caught.value.message
    assert "error_type image_load_error" in caught.value.message


# --- issue 11: a 5xx on submit, as fal_client tells them apart ------------------------------

NGINX_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def test_an_ingress_5xx_on_submit_is_retried() -> None:
    # Given the proxy in front of fal answers 502/503 (an nginx page, no x-fal-request-id):
    # the request never reached the queue
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(502, content=NGINX_PAGE, headers={"content-type": "text/html"}),
            httpx.Response(503, content=NGINX_PAGE, headers={"content-type": "text/html"}),
            httpx.Response(200, json=load_event("fal_submit_response")),
        ],
        seen,
    )
    # When submitted / Then it is sent again until the queue answers
    assert client.submit(SUBMIT_BODY).request_id == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert [request.method for request in seen] == ["POST", "POST", "POST"]


def test_a_5xx_from_fal_itself_on_submit_is_uncertain_not_resent() -> None:
    # Given a 503 in fal's own JSON but naming no request: it may have been queued
    seen: list[httpx.Request] = []
    client = scripted_client(
        [httpx.Response(503, json={"detail": "Service temporarily unavailable"})], seen
    )
    # When submitted / Then it is not sent again: the job fails as uncertain
    with pytest.raises(ModelSubmitUncertainError, match="503"):
        client.submit(SUBMIT_BODY)
    assert len(seen) == 1


def test_a_5xx_naming_a_queued_request_is_followed() -> None:
    # Given a 503 that carries x-fal-request-id, for a request the queue does hold
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(
                503, json={"detail": "upstream hiccup"}, headers={"x-fal-request-id": "req-7"}
            ),
            httpx.Response(202, json={"status": "IN_QUEUE", "queue_position": 3}),
        ],
        seen,
    )
    # When submitted
    submission = client.submit(SUBMIT_BODY)
    # Then that request is the job's: one POST, then its status on the owner/app path
    assert (submission.request_id, submission.queue_position) == ("req-7", 3)
    assert [request.method for request in seen] == ["POST", "GET"]
    assert seen[1].url.path == "/proxy/fal-ai/flux-pro/requests/req-7/status"
    assert submission.cancel_url.endswith("/proxy/fal-ai/flux-pro/requests/req-7/cancel")


def test_a_5xx_naming_a_request_the_queue_does_not_know_is_uncertain() -> None:
    # Given a 500 with x-fal-request-id, and the queue answers 404 for that request
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(500, json={"detail": "boom"}, headers={"x-fal-request-id": "req-8"}),
            httpx.Response(404, json={"detail": "Request not found"}),
        ],
        seen,
    )
    # When submitted / Then nothing is resent and the failure names the request
    with pytest.raises(ModelSubmitUncertainError, match="req-8"):
        client.submit(SUBMIT_BODY)
    assert [request.method for request in seen] == ["POST", "GET"]


# --- results, cancels and loose fields ------------------------------------------------------


def test_a_result_gone_after_completion_is_expired_with_what_to_do() -> None:
    # Given a completed request whose result fal no longer keeps
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(404, json={"detail": "Request not found"})], seen)
    # When collected / Then the reason says it expired, and the message what to do
    with pytest.raises(ModelRequestFailedError) as caught:
        client.result("https://queue.example.com/proxy/fal-ai/flux-pro/requests/x")
    assert caught.value.reason == "model_result_expired"
    assert "upload the image again" in caught.value.message


@pytest.mark.parametrize(
    ("code", "body", "outcome"),
    [
        (200, {"status": "OK"}, "OK"),
        (202, {"status": "CANCELLATION_REQUESTED"}, "CANCELLATION_REQUESTED"),
        (400, {"status": "ALREADY_COMPLETED"}, "ALREADY_COMPLETED"),
        (404, {"status": "NOT_FOUND"}, "NOT_FOUND"),
        (200, {"status": "ALREADY_COMPLETED"}, "ALREADY_COMPLETED"),
        (202, {}, "CANCELLATION_REQUESTED"),
    ],
)
def test_cancel_answers_are_read_by_their_body_status(
    code: int, body: dict[str, str], outcome: str
) -> None:
    # Given a cancel answer (the body's status first, the code when the body has none)
    seen: list[httpx.Request] = []
    client = scripted_client([httpx.Response(code, json=body)], seen)
    # When cancelled / Then the outcome is fal's word for it
    result = client.cancel("https://queue.example.com/proxy/fal-ai/flux-pro/requests/x/cancel")
    assert result.status == outcome
    assert result.may_still_run is (outcome == "CANCELLATION_REQUESTED")


def test_null_and_absent_optional_fields_are_read_leniently() -> None:
    # Given status and result answers with null metrics, logs, timings and nsfw flags
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(200, json={"status": "COMPLETED", "metrics": None, "logs": None}),
            httpx.Response(
                200,
                json={
                    "images": [{"url": "https://v3.fal.media/files/a.png"}],
                    "timings": None,
                    "has_nsfw_concepts": None,
                },
            ),
        ],
        seen,
    )
    # When read / Then they are empty, not errors
    status = client.status("https://queue.example.com/proxy/x/status")
    result = client.result("https://queue.example.com/proxy/fal-ai/flux-pro/requests/x")
    assert (status.status, status.metrics, status.logs) == ("COMPLETED", {}, None)
    assert (result.timings, result.has_nsfw_concepts) == ({}, [])


def test_the_error_type_header_is_kept_in_the_failure_message() -> None:
    # Given a failed result with fal's error type only in the X-Fal-Error-Type header
    seen: list[httpx.Request] = []
    client = scripted_client(
        [
            httpx.Response(
                500,
                json={"detail": "Runner disconnected"},
                headers={"x-fal-error-type": "runner_disconnected"},
            )
        ],
        seen,
    )
    # When collected / Then the message keeps both the detail and the type
    with pytest.raises(ModelRequestFailedError) as caught:
        client.result("https://queue.example.com/proxy/fal-ai/flux-pro/requests/x")
    assert "Runner disconnected (error_type runner_disconnected)" in caught.value.message


# --- issue 23: the status stream ------------------------------------------------------------


def test_the_status_stream_shows_each_change_in_one_request(
    client: FalQueueClient, emulator: FalQueueEmulator
) -> None:
    # Given a request just submitted
    submission = client.submit({"prompt": "x", "image_url": data_uri(make_image())})
    # When its status stream is watched
    statuses = [status.status for status in client.watch(submission.status_url, seconds=5)]
    # Then it saw the request through to COMPLETED, with one request to the queue
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    request = emulator.get(submission.request_id)
    assert (request.status_streams, request.status_polls) == (1, 0)


def test_a_quiet_stream_ends_when_its_window_does(
    client: FalQueueClient, emulator: FalQueueEmulator
) -> None:
    # Given a request stuck in the queue
    submission = client.submit(
        {"prompt": "x [fault:stuck-in-queue]", "image_url": data_uri(make_image())}
    )
    # When its stream is watched for 0.3 s
    started = time.monotonic()
    statuses = [status.status for status in client.watch(submission.status_url, seconds=0.3)]
    # Then it shows where the request is, and ends quietly once the window is over
    assert statuses == ["IN_QUEUE"]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("answer", "absent"),
    [
        (httpx.Response(404, json={"detail": "Not Found"}), True),
        (httpx.Response(405, json={"detail": "Method Not Allowed"}), True),
        (httpx.Response(200, json={"status": "IN_QUEUE"}), False),  # not event-stream
        (
            httpx.Response(
                200,
                content=b"data: <html>502</html>\n\n",
                headers={"content-type": "text/event-stream"},
            ),
            False,
        ),
        (
            httpx.Response(
                200,
                content=b'data: {"status": "IN_PROGRESS"}\n\n',
                headers={"content-type": "text/event-stream"},
            ),
            False,  # ended before COMPLETED
        ),
        (httpx.ConnectError("refused"), False),
        (
            httpx.Response(302, headers={"location": "https://elsewhere.example/stream"}),
            False,
        ),
    ],
)
def test_a_stream_that_is_absent_or_fails_says_so(
    answer: httpx.Response | Exception, absent: bool
) -> None:
    # Given a queue whose stream is absent (404/405), not a stream, malformed, cut short,
    # unreachable or redirected
    seen: list[httpx.Request] = []
    client = scripted_client([answer], seen)
    # When it is watched / Then the watcher is told to ask the status endpoint instead
    with pytest.raises(StatusStreamUnavailableError) as caught:
        list(
            client.watch(
                "https://queue.example.com/proxy/fal-ai/flux-pro/requests/r/status", seconds=1
            )
        )
    assert caught.value.absent is absent
    # And only one request went out (never to a redirect's target)
    assert len(seen) == 1


def test_the_stream_is_asked_of_the_configured_host_with_the_key_there_only() -> None:
    # Given a status URL the queue returned on another host
    seen: list[httpx.Request] = []
    completed = b'data: {"status": "COMPLETED"}\n\n'
    client = scripted_client(
        [httpx.Response(200, content=completed, headers={"content-type": "text/event-stream"})],
        seen,
    )
    # When its stream is watched
    statuses = list(
        client.watch("https://queue.fal.run/fal-ai/flux-pro/requests/r/status", seconds=1)
    )
    # Then the stream was read from the configured base, with the key, and logs asked for
    assert [status.status for status in statuses] == ["COMPLETED"]
    assert str(seen[0].url) == (
        "https://queue.example.com/proxy/fal-ai/flux-pro/requests/r/status/stream?logs=1"
    )
    assert seen[0].headers["X-Api-Key"] == KEY


def test_check_status_falls_back_to_polls_when_the_stream_breaks_off(
    client: FalQueueClient, emulator: FalQueueEmulator
) -> None:
    # Given a request whose stream ends after its first event
    from kontext_pipeline.model_queue.poll_plan import PollPlan
    from kontext_pipeline.steps.check_status import CheckStatusDeps, run

    submission = client.submit(
        {"prompt": "x [fault:stream-cut]", "image_url": data_uri(make_image())}
    )
    now = datetime.now(UTC)
    job = sample_job().model_copy(
        update={
            "status_url": submission.status_url,
            "polls": 0,
            "typical_run_seconds": None,
            "submitted_at": now,
            "checked_at": now,
            "deadline_at": now + timedelta(hours=1),
        }
    )
    # When CheckStatus looks at it (first look, run time unknown: it watches)
    looked = run(job, CheckStatusDeps(queue=client, poll_plan=PollPlan(2, 30, 20)))
    # Then it still sees it complete, by status calls after the stream broke off
    assert looked.status == "COMPLETED"
    request = emulator.get(submission.request_id)
    assert request.status_streams == 1
    assert request.status_polls >= 1
