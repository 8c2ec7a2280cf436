"""AWS-side faults, each on a deployment of its own since each breaks something."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import unquote_plus

import pytest

from kontext_tools.emulator import EmulatorTiming
from kontext_tools.local.pipeline import LocalPipeline
from tests.conftest import make_image

FAST_MODEL = EmulatorTiming(queue_seconds=0.1, run_seconds=0.3)


@pytest.fixture
def fresh_pipeline() -> Iterator[LocalPipeline]:
    with LocalPipeline(emulator_timing=FAST_MODEL) as running:
        yield running


def test_a_trigger_that_keeps_failing_parks_the_event_in_the_dead_letter_queue(
    fresh_pipeline: LocalPipeline,
) -> None:
    # Given the state machine is gone (the trigger cannot start jobs)
    pipeline = fresh_pipeline
    pipeline.clients.stepfunctions.delete_state_machine(
        stateMachineArn=pipeline.outputs["StateMachineArn"]
    )
    # When an image is uploaded
    pipeline.upload(make_image(), key="inputs/parked.png", prompt="x")
    pipeline.lambdas.drain()  # type: ignore[union-attr]
    # Then after its retries the event waits in the dead-letter queue, nothing lost
    sqs = pipeline.clients.sqs
    messages = sqs.receive_message(
        QueueUrl=pipeline.outputs["TriggerDeadLetterQueueUrl"], MaxNumberOfMessages=10
    ).get("Messages", [])
    assert len(messages) == 1
    parked = json.loads(messages[0]["Body"])
    assert parked["requestContext"]["condition"] == "RetriesExhausted"
    assert parked["requestContext"]["approximateInvokeCount"] == 3
    parked_key = parked["requestPayload"]["Records"][0]["s3"]["object"]["key"]
    assert unquote_plus(parked_key) == "inputs/parked.png"
    trigger_calls = [
        i
        for i in pipeline.lambdas.invocations  # type: ignore[union-attr]
        if i.function_name.endswith("StartEditFunction")
    ]
    assert len(trigger_calls) == 3


def test_an_sns_outage_delays_the_notification_but_loses_nothing(
    fresh_pipeline: LocalPipeline,
) -> None:
    # Given the topic is unavailable when the job finishes
    pipeline = fresh_pipeline
    sns = pipeline.clients.sns
    topic_arn = pipeline.outputs["NotificationsTopicArn"]
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    sns.delete_topic(TopicArn=topic_arn)
    source = pipeline.upload(make_image(), key="inputs/outage.png", prompt="make it grey")
    # When the first publish attempt has failed and the topic comes back
    deadline = time.monotonic() + 30
    while not any(i.error_type == "NotificationError" for i in pipeline.lambdas.invocations):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the publish never failed"
        time.sleep(0.1)
    assert sns.create_topic(Name=topic_arn.rsplit(":", 1)[1])["TopicArn"] == topic_arn
    for subscription in subscriptions:
        sns.subscribe(
            TopicArn=topic_arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"]
        )
    # Then the retried step publishes exactly one success notification
    notification = pipeline.wait_for_notification(source, timeout=60).notification
    assert notification.status == "SUCCEEDED"
    time.sleep(1)
    keys = [item.notification.source.key for item in pipeline.notifications()]
    assert keys.count("inputs/outage.png") == 1
    assert pipeline.emulator.submit_count == 1


def test_an_output_bucket_that_refuses_writes_ends_in_a_failure_notification() -> None:
    # Given outputs configured into a bucket that does not exist
    with LocalPipeline(
        emulator_timing=FAST_MODEL, environment={"OUTPUT_BUCKET": "kontext-missing-bucket"}
    ) as pipeline:
        source = pipeline.upload(make_image(), key="inputs/nowhere.png", prompt="x")
        # When the job tries to store its outputs (and retries)
        notification = pipeline.wait_for_notification(source, timeout=90).notification
    # Then it fails as on AWS, where IAM refuses a bucket the role is not granted before S3
    # looks for it: access denied, with the request id, after one paid submit
    assert notification.status == "FAILED"
    assert notification.failure is not None
    assert notification.failure.reason == "access_denied"
    assert notification.request_id
