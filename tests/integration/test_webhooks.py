"""Webhook completion mode on the real state machine, and the downstream integrations:
an HTTPS subscriber with a filter policy, and EventBridge rules."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

WEBHOOK_MODE = {
    "CompletionMode": "webhook",
    "WebhookWaitSeconds": "20",
    "ExpectedModelSeconds": "30",
    "PollMaxSeconds": "30",
}


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    # A poll plan that would wait 30 s first: a job finishing in ~1 s proves the webhook did it.
    with LocalPipeline(
        emulator_timing=EmulatorTiming(queue_seconds=0.1, run_seconds=0.5), parameters=WEBHOOK_MODE
    ) as running:
        yield running


def states_entered(pipeline: LocalPipeline, source: Any) -> list[str]:
    execution = pipeline.execution_for(source)
    assert execution is not None
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in pipeline.history(execution["executionArn"])
        if "stateEnteredEventDetails" in event
    ]


def test_a_signed_webhook_completes_the_job_without_polling(pipeline: LocalPipeline) -> None:
    # Given webhook mode and an upload
    started = time.monotonic()
    source = pipeline.upload(make_image(), key="inputs/hook/ok.png", prompt="make it blue")
    # When the model finishes and calls back
    notification = pipeline.wait_for_notification(source, timeout=30).notification
    # Then the job completes at once, without a single status poll
    assert notification.status == "SUCCEEDED", notification.failure
    assert time.monotonic() - started < 10
    states = states_entered(pipeline, source)
    assert "AwaitWebhook" in states
    assert "CheckStatus" not in states
    request = pipeline.emulator.get(notification.request_id or "")
    assert request.status_polls == 0
    # And the webhook's verified payload was the result: no second fetch
    assert request.result_fetches == 0


@pytest.mark.parametrize("fault", ["webhook-duplicate", "webhook-forged", "webhook-late"])
def test_duplicate_forged_and_late_webhooks_complete_exactly_once(
    pipeline: LocalPipeline, fault: str
) -> None:
    # Given a webhook delivered twice, alongside a forged one, or late (one fault each)
    source = pipeline.upload(
        make_image(), key=f"inputs/hook/{fault}.png", prompt=f"make it green [fault:{fault}]"
    )
    # When the job completes
    notification = pipeline.wait_for_notification(source, timeout=40).notification
    # Then it succeeded, and it was notified once only
    assert notification.status == "SUCCEEDED", notification.failure
    time.sleep(1.5)  # room for a duplicate or late delivery to do harm, if it could
    keys = [item.notification.source.key for item in pipeline.notifications()]
    assert keys.count(source.key) == 1


def test_an_error_webhook_fails_the_job_with_the_models_reason(pipeline: LocalPipeline) -> None:
    # Given a model that reports an error in its webhook
    source = pipeline.upload(
        make_image(), key="inputs/hook/error.png", prompt="make it red [fault:model-error]"
    )
    # When the job ends
    notification = pipeline.wait_for_notification(source, timeout=30).notification
    # Then it failed as the model's failure
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.error == "ModelRequestFailedError"
    # (The detail from the ERROR webhook's payload travels in SendTaskFailure's cause,
    # which moto's server drops: tests/unit/test_webhooks.py checks it reaches the cause.)


@pytest.mark.parametrize(
    ("fault", "fetches"),
    [
        # fal retried the request internally: the header names the gateway request id
        ("webhook-gateway-id", 0),
        # the payload could not be included: the result is fetched from the response URL
        ("webhook-payload-error", 1),
        # the first two deliveries fail; fal's retries (scaled down) bring the third
        ("webhook-dropped*2", 0),
    ],
)
def test_webhooks_as_fal_sends_them_complete_the_job_without_polling(
    pipeline: LocalPipeline, fault: str, fetches: int
) -> None:
    # Given a webhook in one of the shapes fal really sends
    source = pipeline.upload(
        make_image(),
        key=f"inputs/hook/{fault.replace('*', '-x')}.png",
        prompt=f"make it blue [fault:{fault}]",
    )
    # When the model finishes
    notification = pipeline.wait_for_notification(source, timeout=30).notification
    # Then the webhook completes the job, never the poll fallback (WebhookWaitSeconds: 20 s)
    assert notification.status == "SUCCEEDED", notification.failure
    assert "CheckStatus" not in states_entered(pipeline, source)
    assert pipeline.emulator.get(notification.request_id or "").result_fetches == fetches


def test_without_a_webhook_polling_takes_over() -> None:
    # Given a model that never calls back and a short webhook wait
    parameters = {**WEBHOOK_MODE, "WebhookWaitSeconds": "2", "ExpectedModelSeconds": "1"}
    with LocalPipeline(
        emulator_timing=EmulatorTiming(queue_seconds=0.1, run_seconds=0.3), parameters=parameters
    ) as pipeline:
        source = pipeline.upload(
            make_image(), key="inputs/hook/silent.png", prompt="make it gold [fault:webhook-none]"
        )
        # When the wait times out / Then the poll loop completes the job
        notification = pipeline.wait_for_notification(source, timeout=40).notification
        assert notification.status == "SUCCEEDED", notification.failure
        assert "CheckStatus" in states_entered(pipeline, source)


# --- downstream integrations --------------------------------------------------------------


@pytest.fixture
def http_subscriber(httpserver: HTTPServer) -> HTTPServer:
    """An HTTP endpoint on loopback at /kontext-events; its log is what it received."""
    httpserver.expect_request("/kontext-events", method="POST").respond_with_data("")
    return httpserver


def test_an_http_subscriber_filtered_on_status_gets_only_failures(
    pipeline: LocalPipeline, http_subscriber: HTTPServer
) -> None:
    # Given an HTTP(S) endpoint subscribed with a filter policy on the status attribute
    endpoint = http_subscriber.url_for("/kontext-events")
    sns = pipeline.clients.sns
    sns.subscribe(
        TopicArn=pipeline.outputs["NotificationsTopicArn"],
        Protocol="http",
        Endpoint=endpoint,
        Attributes={"FilterPolicy": json.dumps({"status": ["FAILED"]})},
    )
    # When one job succeeds and one fails
    ok = pipeline.upload(make_image(), key="inputs/hook/sub-ok.png", prompt="make it blue")
    bad = pipeline.upload(make_image(), key="inputs/hook/sub-bad.png", metadata={})
    pipeline.wait_for_notification(ok, timeout=30)
    pipeline.wait_for_notification(bad, timeout=30)
    # Then the endpoint received the failure only (SNS posts to it after the queue's copy)
    deadline = time.monotonic() + 10
    while not http_subscriber.log and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # and nothing more arrives
    received = [json.loads(request.get_data()) for request, _ in http_subscriber.log]
    deliveries = [item for item in received if item.get("Type") == "Notification"]
    assert [json.loads(item["Message"])["source"]["key"] for item in deliveries] == [bad.key]


def test_eventbridge_rules_can_chain_on_outcomes(pipeline: LocalPipeline) -> None:
    # Given a rule on the pipeline's bus for succeeded edits, targeting a queue
    events, sqs = pipeline.clients.events, pipeline.clients.sqs
    bus = pipeline.outputs["JobEventsBusName"]
    queue_url = sqs.create_queue(QueueName="chained-pipeline")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="edits-succeeded",
        EventBusName=bus,
        EventPattern=json.dumps(
            {"source": ["kontext-pipeline"], "detail-type": ["Kontext Edit Succeeded"]}
        ),
    )
    targets = [{"Id": "queue", "Arn": queue_arn}]
    events.put_targets(Rule="edits-succeeded", EventBusName=bus, Targets=targets)
    # When a job succeeds
    source = pipeline.upload(make_image(), key="inputs/hook/chained.png", prompt="make it teal")
    pipeline.wait_for_notification(source, timeout=30)
    # Then the next pipeline's queue holds the event with the outputs (put on the bus just
    # after the SNS message the wait saw, so it may arrive a moment later)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=10)[
        "Messages"
    ]
    details = [json.loads(message["Body"])["detail"] for message in messages]
    assert [detail["source"]["key"] for detail in details] == [source.key]
    assert details[0]["outputs"][0]["s3_uri"].startswith("s3://")
