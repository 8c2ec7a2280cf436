"""The failure branch: the caught error becomes a clear notification, published once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kontext_pipeline.core.errors import CaughtError
from kontext_pipeline.core.models import TaskEnvelope
from kontext_pipeline.notifications.publish import Notifier
from kontext_pipeline.steps.report_failure import ReportFailureDeps, run

from tests.conftest import load_event


@pytest.fixture
def notifier(aws: Any, jobs_table: Any) -> tuple[Notifier, Any, str]:
    sns, sqs, dynamodb = aws.client("sns"), aws.client("sqs"), jobs_table
    topic = sns.create_topic(Name="jobs")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return (
        Notifier(
            sns=sns,
            topic_arn=topic,
            events=aws.client("events"),
            event_bus_name="default",
            dynamodb=dynamodb,
            table_name="jobs",
        ),
        sqs,
        queue,
    )


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(json.loads(message["Body"])["Message"]) for message in messages]


def test_a_model_failure_is_reported_with_its_reason_and_no_stack_trace(
    notifier: tuple[Notifier, Any, str],
) -> None:
    # Given the state the state machine hands the failure branch after a model error
    publisher, sqs, queue = notifier
    state = load_event("task_report_failure")["job"]
    # When reported
    notification = run(TaskEnvelope(job=state, execution_id="exec-1"), ReportFailureDeps(publisher))
    # Then subscribers learn the reason, the error, the message and the request id
    assert notification.failure is not None
    assert notification.failure.reason == "model_image_load_error"
    assert notification.failure.error == "ModelRequestFailedError"
    assert "Image could not be loaded" in notification.failure.message
    assert "Traceback" not in notification.failure.message
    [message] = received(sqs, queue)
    assert message["request_id"] == "e36fc67f-afa7-416a-a288-50d90a630d7a"
    assert message["status"] == "FAILED"


def test_invalid_input_is_reported_without_a_request_id(
    notifier: tuple[Notifier, Any, str],
) -> None:
    # Given the failure branch's state when SubmitEdit refused the upload
    publisher, _, _ = notifier
    state = load_event("task_report_failure_invalid_input")["job"]
    # When reported
    notification = run(TaskEnvelope(job=state), ReportFailureDeps(publisher))
    # Then the reason is the refusal's, and there is no model request to name
    assert notification.failure is not None
    assert notification.failure.reason == "missing_prompt"
    assert notification.request_id is None


def test_a_retried_failure_branch_publishes_once(notifier: tuple[Notifier, Any, str]) -> None:
    # Given the failure branch ran, and Step Functions runs it again (a retry)
    publisher, sqs, queue = notifier
    state = load_event("task_report_failure")["job"]
    # When it publishes twice
    run(TaskEnvelope(job=state), ReportFailureDeps(publisher))
    run(TaskEnvelope(job=state), ReportFailureDeps(publisher))
    # Then one notification went out
    assert len(received(sqs, queue)) == 1


@pytest.mark.parametrize(
    ("caught", "reason", "message"),
    [
        ({"Error": "States.Timeout", "Cause": "Task timed out"}, "timeout", "Task timed out"),
        (
            {"Error": "Lambda.ServiceException", "Cause": "Rate exceeded"},
            "lambda_error",
            "Rate exceeded",
        ),
        (
            {
                "Error": "KeyError",
                "Cause": json.dumps({"errorMessage": "'x'", "errorType": "KeyError"}),
            },
            "unexpected_error",
            "'x'",
        ),
        ({}, "unexpected_error", "States.Unknown"),
    ],
)
def test_errors_from_outside_the_package_get_a_reason(
    caught: dict[str, str], reason: str, message: str
) -> None:
    # Given an error a Catch caught that no pipeline code raised
    # When it is read back
    parsed = CaughtError.from_state(caught)
    # Then it gets the reason its name means, and its cause as the message
    assert (parsed.reason, parsed.message) == (reason, message)
