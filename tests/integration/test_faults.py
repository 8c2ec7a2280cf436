"""Fault injection on the real state machine: every fault ends in the right notification,
one paid submit per upload, nothing half-written, the key never leaks.

The emulator's fault modes are selected per request by a `[fault:NAME]` marker in the
prompt (see kontext_tools/emulator/faults.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kontext_pipeline.core.models import SourceObject

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline, ReceivedNotification
from tests.conftest import load_event, make_image

API_KEY = "fal-test-key-0123456789abcdef"
# Short clocks so faults resolve in seconds: a 1 s read timeout (the emulator hangs 3 s),
# a 6 s run limit and queue-wait limit, outputs capped at 2 MB.
FAULT_ENVIRONMENT = {"HTTP_READ_TIMEOUT_SECONDS": "1", "MAX_OUTPUT_BYTES": str(2 * 1024 * 1024)}
FAULT_PARAMETERS = {"DeadlineSeconds": "6", "QueueWaitSeconds": "6"}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(
        fal_key=API_KEY,
        emulator_timing=EmulatorTiming(queue_seconds=0.1, run_seconds=0.3),
        parameters=FAULT_PARAMETERS,
        environment=FAULT_ENVIRONMENT,
    ) as running:
        yield running


def run_job(
    pipeline: LocalPipeline, name: str, prompt: str, **options: Any
) -> tuple[SourceObject, ReceivedNotification]:
    source = pipeline.upload(
        make_image(size=(96, 64)), key=f"inputs/faults/{name}.png", prompt=prompt, options=options
    )
    return source, pipeline.wait_for_notification(source, timeout=90)


def submits_for(pipeline: LocalPipeline, marker: str) -> int:
    return sum(
        1
        for request in pipeline.emulator.requests()
        if marker in str(request.body.get("prompt", ""))
    )


@pytest.mark.parametrize(
    "fault",
    [
        "submit-429*3",
        "submit-502*2",
        "submit-503*2",
        "status-429*2",
        "status-502*2",
        "status-timeout*1",
        "status-malformed*1",
        "status-truncated*1",
    ],
)
def test_transient_queue_faults_are_retried_to_success(pipeline: LocalPipeline, fault: str) -> None:
    # Given the queue fails transiently in one way
    marker = f"[fault:{fault}]"
    # When a job runs through it
    _, received = run_job(pipeline, fault.replace("*", "-x"), f"make it blue {marker}")
    # Then it succeeds, with exactly one paid submit
    assert received.notification.status == "SUCCEEDED", received.notification.failure
    assert submits_for(pipeline, marker) == 1


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("model-error", "model_"),
        ("validation-error", "model_"),
        ("result-404", "model_result_expired"),
        ("output-403", "output_unavailable"),
        ("output-not-image", "output_not_an_image"),
        ("output-huge=3", "output_too_large"),
        ("output-redirect-offsite", "output_url_refused"),
        ("output-redirect-loop", "output_url_refused"),
        ("submit-timeout", "model_submit_uncertain"),
    ],
)
def test_permanent_faults_end_in_a_failure_notification_with_the_reason(
    pipeline: LocalPipeline, fault: str, reason: str
) -> None:
    # Given a model fault that no retry can cure
    marker = f"[fault:{fault}]"
    # When a job runs into it
    source, received = run_job(pipeline, fault.replace("=", "-"), f"make it red {marker}")
    # Then it fails with its reason, in the notification and its SNS attribute, paid once
    notification = received.notification
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason.startswith(reason), notification.failure
    assert received.envelope["MessageAttributes"]["reason"]["Value"] == notification.failure.reason
    assert submits_for(pipeline, marker) <= 1
    # And nothing half-written stands under the outputs prefix for it
    listing = pipeline.clients.s3.list_objects_v2(
        Bucket=pipeline.bucket, Prefix=f"outputs/faults/{source.key[14:-4]}/"
    )
    assert "Contents" not in listing


def test_a_request_stuck_in_the_queue_past_the_queue_wait_limit_is_cancelled_and_reported(
    pipeline: LocalPipeline,
) -> None:
    # Given a request that never leaves the queue
    _, received = run_job(pipeline, "stuck", "make it snow [fault:stuck-in-queue]")
    # When the queue-wait limit passes / Then the job fails saying so, and the request is
    # cancelled
    notification = received.notification
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "queue_wait_exceeded"
    assert "queue-wait limit" in notification.failure.message
    assert notification.request_id
    assert pipeline.emulator.get(notification.request_id).cancelled


def test_a_copy_that_breaks_midway_is_redone_without_duplicates(pipeline: LocalPipeline) -> None:
    # Given two outputs, the first download cut short once (a crash mid-copy)
    source, received = run_job(
        pipeline, "truncated", "make it teal [fault:output-truncated*1]", num_images=2
    )
    # When the collect step is retried by the state machine
    notification = received.notification
    # Then the job succeeds with exactly two outputs, one manifest and one notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert len(notification.outputs) == 2
    folder = notification.outputs[0].key.rsplit("/", 1)[0] + "/"
    keys = [
        item["Key"]
        for item in pipeline.clients.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix=folder)[
            "Contents"
        ]
    ]
    assert sorted(key.rsplit("/", 1)[1] for key in keys) == ["0.jpg", "1.jpg", "manifest.json"]
    keys_notified = [n.notification.source.key for n in pipeline.notifications()]
    assert keys_notified.count(source.key) == 1


def test_nsfw_flags_reach_the_notification_and_its_attributes(pipeline: LocalPipeline) -> None:
    # Given a result the model flags as NSFW
    # When the job runs
    _, received = run_job(pipeline, "nsfw", "make it pink [fault:nsfw]")
    # Then the flag reaches the notification and the attribute subscribers filter on
    assert received.notification.has_nsfw_concepts == [True]
    assert received.envelope["MessageAttributes"]["has_nsfw_concepts"]["Value"] == "true"


def test_the_api_key_never_leaves_the_queue_calls(
    pipeline: LocalPipeline, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a job that succeeds and one that fails (so both branches have run)
    run_job(pipeline, "secret-ok", "make it gold")
    run_job(pipeline, "secret-fail", "make it gold [fault:model-error]")
    # When everything the pipeline wrote is gathered: logs, histories, notifications, outputs
    captured = capfd.readouterr()
    written = [captured.out, captured.err]
    for execution in pipeline.executions():
        written.append(json.dumps(pipeline.history(execution["executionArn"]), default=str))
    written += [json.dumps(item.envelope) for item in pipeline.notifications()]
    s3 = pipeline.clients.s3
    for item in s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="outputs/")["Contents"]:
        written.append(
            json.dumps(s3.head_object(Bucket=pipeline.bucket, Key=item["Key"])["Metadata"])
        )
    # Then the key appears nowhere, and the queue saw it on every call
    assert all(API_KEY not in text for text in written)
    assert set(pipeline.emulator.auth_headers_seen()) == {f"Key {API_KEY}"}


def test_an_upload_deleted_before_processing_is_reported(pipeline: LocalPipeline) -> None:
    # Given an S3 event for an object that was deleted before its job could read it
    event = load_event("s3_put")
    event["Records"][0]["s3"]["bucket"]["name"] = pipeline.bucket
    event["Records"][0]["s3"]["object"]["key"] = "inputs/faults/vanished.png"
    submits = pipeline.emulator.submit_count
    # When the trigger receives it
    pipeline.clients.lambda_.invoke(
        FunctionName=pipeline.stack.physical_ids["StartEditFunction"],  # type: ignore[union-attr]
        InvocationType="Event",
        Payload=json.dumps(event).encode(),
    )
    # Then the job fails as object_not_found, without a model call
    source = SourceObject(bucket=pipeline.bucket, key="inputs/faults/vanished.png")
    notification = pipeline.wait_for_notification(source, timeout=60).notification
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "object_not_found"
    assert pipeline.emulator.submit_count == submits


# --- issue 11: never two paid submits on a 5xx; fal's loose and strict answers ---------------


def test_a_submit_answered_5xx_naming_its_queued_request_follows_it(
    pipeline: LocalPipeline,
) -> None:
    # Given fal queues the request but answers 503 with its id in x-fal-request-id
    marker = "[fault:submit-503-queued*1]"
    # When the job runs
    _, received = run_job(pipeline, "submit-503-queued", f"make it blue {marker}")
    # Then that request is followed to success: one paid submit, the job's own request
    notification = received.notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert submits_for(pipeline, marker) == 1
    [request] = [r for r in pipeline.emulator.requests() if marker in r.body["prompt"]]
    assert notification.request_id == request.request_id


@pytest.mark.parametrize(
    ("fault", "queued"),
    [
        # a 500 naming a request the queue never kept: fal answered, so it is not resent
        ("submit-500-lost", 0),
        # a 503 in fal's JSON naming no request (not the ingress): it may be queued, and is
        ("submit-503-bare", 1),
    ],
)
def test_a_submit_answered_5xx_by_fal_itself_is_never_resent(
    pipeline: LocalPipeline, fault: str, queued: int
) -> None:
    # Given a 5xx that did not come from the ingress, once
    marker = f"[fault:{fault}*1]"
    # When the job runs (the state machine retries what it may)
    _, received = run_job(pipeline, fault, f"make it blue {marker}")
    # Then it fails as uncertain, with no second POST that could pay twice
    notification = received.notification
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "model_submit_uncertain", notification.failure
    assert submits_for(pipeline, marker) == queued


def test_null_metrics_timings_and_nsfw_flags_do_not_fail_a_job(pipeline: LocalPipeline) -> None:
    # Given a queue that answers null metrics, logs, timings and has_nsfw_concepts
    _, received = run_job(pipeline, "loose-fields", "make it purple [fault:loose-fields]")
    # When the job completes / Then it succeeds, the missing values read as empty
    notification = received.notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert (notification.has_nsfw_concepts, notification.timings) == ([], {})


def test_the_models_error_type_is_kept_in_the_failure_message(pipeline: LocalPipeline) -> None:
    # Given a model that completes with its own error type
    # When the job runs
    _, received = run_job(pipeline, "error-type", "make it red [fault:model-error]")
    # Then the failure's reason is the model's, and its message keeps the type
    failure = received.notification.failure
    assert failure is not None
    assert failure.reason == "model_error"
    assert "error_type model_error" in failure.message


def test_an_output_redirected_within_the_allowed_hosts_is_copied(pipeline: LocalPipeline) -> None:
    # Given hosted files that answer 302 to the same file on the same origin, once
    _, received = run_job(pipeline, "redirect", "make it orange [fault:output-redirect]")
    # When collected / Then the redirect is followed and the image stored
    notification = received.notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert notification.outputs[0].content_type == "image/jpeg"


def test_an_input_too_large_to_send_inline_is_refused_before_submit() -> None:
    # Given inline input transfer (as against the real model from a local run) and an
    # upload over 10 MB once base64-encoded, under MAX_INPUT_BYTES
    with LocalPipeline(
        fal_key=API_KEY,
        emulator_timing=EmulatorTiming(queue_seconds=0.1, run_seconds=0.3),
        parameters={**FAULT_PARAMETERS, "InputTransfer": "data_uri"},
        environment=FAULT_ENVIRONMENT,
    ) as inline:
        image = make_image(size=(96, 64)) + b"\0" * (8 * 1024 * 1024)
        source = inline.upload(image, key="inputs/faults/huge-inline.png", prompt="make it blue")
        # When its job runs
        notification = inline.wait_for_notification(source, timeout=90).notification
        # Then it fails with the limit and the way out, and the model is never called
        assert notification.status == "FAILED"
        assert notification.failure is not None
        assert notification.failure.reason == "input_too_large_inline"
        assert "InputTransfer=presigned" in notification.failure.message
        assert inline.emulator.submit_count == 0


def test_a_running_request_past_the_deadline_is_asked_to_cancel_and_may_still_finish(
    pipeline: LocalPipeline,
) -> None:
    # Given a run longer than the deadline (6 s): a runner has it when the job gives up
    _, received = run_job(pipeline, "slow", "make it grey [fault:slow-run=9]")
    # When the failure branch cancels it
    notification = received.notification
    assert notification.failure is not None
    assert notification.failure.reason == "deadline_exceeded"
    # Then fal only signals the runner (CANCELLATION_REQUESTED, logged as may_still_run):
    # the request is not removed, and this model completes it anyway
    request = pipeline.emulator.get(notification.request_id or "")
    assert (request.cancel_requested, request.cancelled) == (True, False)
    deadline = time.monotonic() + 10
    while pipeline.emulator.get(request.request_id).status != "COMPLETED":
        assert time.monotonic() < deadline, "the request never completed"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["stream-absent", "stream-cut", "stream-malformed"])
def test_a_status_stream_that_is_absent_or_fails_leaves_the_job_to_status_calls(
    pipeline: LocalPipeline, fault: str
) -> None:
    # Given a queue whose status stream is absent (405), cut short or not statuses
    # When a job runs
    # (a 3 s run, so the first look finds it running)
    _, received = run_job(pipeline, fault, f"make it teal [fault:{fault}] [fault:slow-run=3]")
    # Then it succeeds, CheckStatus having asked the status endpoint instead
    notification = received.notification
    assert notification.status == "SUCCEEDED", notification.failure
    assert notification.request_id is not None
    assert pipeline.emulator.get(notification.request_id).status_polls >= 1
